// Package bufpool recycles the byte buffers the hot paths build messages,
// files and log lines in, so that a registration does not allocate them anew.
//
// It must import nothing of this module.
package bufpool
