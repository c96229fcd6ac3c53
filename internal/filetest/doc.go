// Package filetest writes the files of test trees with exactly the modes a test
// asks for: os.WriteFile leaves out what the umask removes, and a test of how
// modes are copied or refused needs the bits it names. The tests of images,
// copyhelper and the integration tests in tests/ use it. It is imported by
// tests only.
//
// It must import nothing of this module.
package filetest
