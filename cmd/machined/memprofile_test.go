package main

import (
	"flag"
	"runtime"
	"testing"
)

// The daemon starts with the heap profiler off (MACHINED_ALLOCPROFILE turns
// it on in main).
func TestHeapProfilerOffByDefault(t *testing.T) {
	if f := flag.Lookup("test.memprofile"); f != nil && f.Value.String() != "" {
		t.Skip("-memprofile turns the profiler on")
	}
	if runtime.MemProfileRate != 0 {
		t.Errorf("MemProfileRate is %d, want 0", runtime.MemProfileRate)
	}
}
