// Package leasetest holds files still for tests: a write lease on a file makes
// every other open of it wait until the lease is released, which stops a copy
// at exactly that file for as long as a test needs (within the kernel's
// lease-break-time, 45 s by default). The tests of copyhelper and the
// integration tests in tests/ use it. It is imported by tests only.
//
// It must import nothing of this module.
package leasetest
