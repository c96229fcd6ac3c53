package containerfs

// dirent is a directory entry as getdents64 returns it: the name and the type
// the file system stored with it (DT_UNKNOWN where it stores none). The type
// is a hint, read before the entry is opened: the entry may be replaced in
// between, so whatever is opened on its strength is checked with fstat.
type dirent struct {
	name string
	typ  uint8
}
