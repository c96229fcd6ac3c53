// Package getdents reads the entries of an open directory with getdents64,
// in batches into a buffer its caller owns, and yields each entry's name and
// type without allocating: the image listing packs the names of a whole
// directory into one string, the tree copy opens each entry as it comes.
//
// It holds the rules of reading a directory once for the whole daemon: which
// records are malformed, which entries are left out, and that only a read of
// nothing ends a directory.
//
// It must import nothing of this module.
package getdents
