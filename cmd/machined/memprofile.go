package main

import "runtime"

// The heap profiler is off unless MACHINED_ALLOCPROFILE asks for it. Go
// samples an allocation every 512 KiB by default, and each new call stack it
// samples takes a record and a slot in a hash table of 1.4 MiB that is
// touched a page at a time: a daemon that has been through a burst of
// registrations (new code paths, new stacks) held hundreds of KiB more for a
// profile nobody reads. Set in a variable's initializer, before main, so that
// the allocations of the daemon's own start are not sampled either.
var _ = func() int {
	runtime.MemProfileRate = 0
	return 0
}()
