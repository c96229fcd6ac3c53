// Package ops bounds and tracks the daemon's long-running operations: copies into
// and out of containers, image clones, removals and pool cleaning. Each operation
// is bound to the caller that asked for it (its context ends when the caller
// disconnects), to the machine it works on (ended when that machine goes) and to
// the daemon (ended on shutdown), and at most a fixed number run at once, so no
// local user can make the daemon hold unbounded work.
//
// The package knows nothing of machines, images or transports: it must not import
// service, any front end or back end; TestImports enforces that.
package ops
