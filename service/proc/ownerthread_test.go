package proc

import (
	"errors"
	"os"
	"syscall"
	"testing"
)

// Every call on an unprivileged owner's thread runs with the owner's fs ids on
// the same thread; root's calls run where they are made.
func TestOwnerThread(t *testing.T) {
	secret := secretFile(t, "x")
	th, err := StartOwnerThread(Owner{UID: 65534, GID: 65534})
	if err != nil {
		t.Fatal(err)
	}
	var first, second string
	th.Do(func() error { first = threadStatus(t, "Uid:"); return nil })
	err = th.Do(func() error {
		second = threadStatus(t, "Uid:")
		_, err := os.ReadFile(secret)
		return err
	})
	if !errors.Is(err, syscall.EACCES) {
		t.Errorf("owner read root's file: %v", err)
	}
	if first != "0 0 0 65534" || second != first {
		t.Errorf("thread ids %q then %q, want fsuid 65534 on both", first, second)
	}
	th.Close()
	th.Close()

	root, err := StartOwnerThread(Owner{UID: 0})
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	if err := root.Do(func() error { _, err := os.ReadFile(secret); return err }); err != nil {
		t.Errorf("root's calls: %v", err)
	}
}

// A call that panics fails alone: the thread serves the next one.
func TestOwnerThreadPanic(t *testing.T) {
	needRoot(t)
	th, err := StartOwnerThread(Owner{UID: 65534, GID: 65534})
	if err != nil {
		t.Fatal(err)
	}
	defer th.Close()
	if err := th.Do(func() error { panic("boom") }); err == nil {
		t.Fatal("panic reported as success")
	}
	if err := th.Do(func() error { return nil }); err != nil {
		t.Fatal(err)
	}
}
