package main

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// journaldStandIn is a datagram socket where a journalSender delivers.
func journaldStandIn(t *testing.T) (*net.UnixConn, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "socket")
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c, path
}

func readEntry(t *testing.T, c *net.UnixConn) string {
	t.Helper()
	buf := make([]byte, 1<<16)
	n, err := c.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	return string(buf[:n])
}

// nativeHandler is a line handler under a journal stream that sends its
// records to a journald stand-in, and what it writes to stderr instead.
func nativeHandler(t *testing.T, level slog.Level) (*net.UnixConn, *lineHandler, *bytes.Buffer) {
	t.Helper()
	t.Setenv("JOURNAL_STREAM", "8:1234")
	jd, path := journaldStandIn(t)
	out := &bytes.Buffer{}
	h := newLineHandler(out, level)
	h.native = newJournalSender(path, "machined")
	if h.native == nil {
		t.Fatal("no sender for an existing socket")
	}
	return jd, h, out
}

// Records reach journald as fields: upstream's upper-case ones (MESSAGE_ID,
// NAME, LEADER) as their own fields, other attributes in MESSAGE, with the
// syslog priority of the level.
func TestJournalNativeFields(t *testing.T) {
	jd, h, out := nativeHandler(t, slog.LevelDebug)
	log := slog.New(h).With("unit", "u")
	log.Info("New machine x.", "NAME", "x", "LEADER", 42, "MESSAGE_ID", "24d8d4452573402496068381a6312df2", "reason", "a b")
	want := "PRIORITY=6\nSYSLOG_IDENTIFIER=machined\nMESSAGE=New machine x. unit=\"u\" reason=\"a b\"\nNAME=x\nLEADER=42\nMESSAGE_ID=24d8d4452573402496068381a6312df2\n"
	if got := readEntry(t, jd); got != want {
		t.Errorf("entry %q, want %q", got, want)
	}
	log.Debug("d")
	if got := readEntry(t, jd); got != "PRIORITY=7\nSYSLOG_IDENTIFIER=machined\nMESSAGE=d unit=\"u\"\n" {
		t.Errorf("debug entry %q", got)
	}
	if out.Len() != 0 {
		t.Errorf("stderr got %q while journald took the records", out.String())
	}

	// The console target writes lines to stderr, bypassing the native connection.
	if err := h.SetTarget("console"); err != nil {
		t.Fatal(err)
	}
	log.Warn("w")
	if out.String() != "<4>w unit=\"u\"\n" {
		t.Errorf("console target: %q", out.String())
	}
	// A journald that is gone loses nothing: the line goes to stderr.
	h.SetTarget("auto")
	out.Reset()
	jd.Close()
	os.Remove(jd.LocalAddr().String())
	log.Error("e", "NAME", "n")
	if out.String() != "<3>e unit=\"u\" NAME=\"n\"\n" {
		t.Errorf("without journald: %q", out.String())
	}
}

// A journald that does not keep up is not waited for: once its socket's queue
// is full the record goes to stderr at once.
func TestJournalBusyIsNotWaitedFor(t *testing.T) {
	_, h, out := nativeHandler(t, slog.LevelInfo)
	filler := bytes.Repeat([]byte("x"), 1024)
	for i := 0; ; i++ {
		if err := h.native.send(filler); err != nil {
			if !errors.Is(err, syscall.EAGAIN) {
				t.Fatalf("filling the queue: %v", err)
			}
			break
		}
		if i > 1<<20 {
			t.Fatal("the queue never filled")
		}
	}
	slog.New(h).Info("busy", "NAME", "n")
	if out.String() != "<6>busy NAME=\"n\"\n" {
		t.Errorf("with journald busy, stderr got %q", out.String())
	}
}

// A value with a newline goes in the protocol's binary form, so it cannot end
// the field early or forge another one.
func TestJournalFieldWithNewline(t *testing.T) {
	got := appendJournalField(nil, "MESSAGE", "a\nMESSAGE_ID=forged")
	want := append([]byte("MESSAGE\n"), binary.LittleEndian.AppendUint64(nil, 19)...)
	want = append(want, "a\nMESSAGE_ID=forged\n"...)
	if !bytes.Equal(got, want) {
		t.Errorf("%q, want %q", got, want)
	}
}

// Only names journald accepts from a client become fields; the rest stays in
// the text, and the fields the sender sets itself cannot be given twice.
func TestJournalFieldNames(t *testing.T) {
	for key, want := range map[string]bool{
		"NAME": true, "MESSAGE_ID": true, "A1_B": true,
		"": false, "name": false, "Name": false, "_PID": false, "1A": false, "A-B": false,
		"MESSAGE": false, "PRIORITY": false, "SYSLOG_IDENTIFIER": false,
		string(bytes.Repeat([]byte("A"), 64)): true, string(bytes.Repeat([]byte("A"), 65)): false,
	} {
		if got := isJournalField(key); got != want {
			t.Errorf("isJournalField(%q) = %v", key, got)
		}
	}
}

// Only the stream systemd connected to stderr counts: a JOURNAL_STREAM that
// names another descriptor (inherited from a parent) leaves logging on stderr.
func TestJournalForChecksStderr(t *testing.T) {
	f, err := os.CreateTemp(t.TempDir(), "stderr")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var st syscall.Stat_t
	if err := syscall.Fstat(int(f.Fd()), &st); err != nil {
		t.Fatal(err)
	}
	t.Setenv("JOURNAL_STREAM", fmt.Sprintf("%d:%d", st.Dev, st.Ino+1))
	if journalFor(f) != nil {
		t.Error("a sender for a stream that is not stderr")
	}
	t.Setenv("JOURNAL_STREAM", "")
	if journalFor(f) != nil {
		t.Error("a sender without JOURNAL_STREAM")
	}
	if newJournalSender(filepath.Join(t.TempDir(), "none"), "x") != nil {
		t.Error("a sender for a socket that does not exist")
	}
}
