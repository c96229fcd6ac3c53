// Package workerpool runs short jobs on reused goroutines, so that each
// Varlink connection and each D-Bus call does not start on a fresh stack.
//
// It must import nothing of this module.
package workerpool
