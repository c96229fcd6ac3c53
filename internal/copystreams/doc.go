// Package copystreams moves the content of large files in background streams
// while a tree copy's walk goes on. Moving bytes between page caches keeps a
// CPU busy for as long as it lasts, and a tree of large files copies in about
// half the time when a second CPU moves some of them. Both tree copies of the
// daemon use it: the container copy of service/containerfs (in the copy
// helper) and the image clone of images.
//
// The walk keeps everything that names a path or orders the copy (opens,
// creates, links, renames, a directory's times after its children); a stream
// gets fds of its own and does only one file's content, its attributes and the
// closing. The walk settles the streams before it renames or removes anything
// they write below.
//
// It must import nothing of this module.
package copystreams
