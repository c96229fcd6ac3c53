package main

import (
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/machined-go/machined/internal/sockio"
)

// journalSocket is where journald takes entries in its native protocol.
const journalSocket = "/run/systemd/journal/socket"

// journalSender sends each log record to journald as one datagram of fields,
// so that structured fields (MESSAGE_ID above all, which `journalctl
// MESSAGE_ID=…` and the catalog look up) reach the journal as fields: a line
// on the stderr stream carries only its text and priority.
type journalSender struct {
	fd    int
	addr  *sockio.UnixAddr
	ident string
}

// journalFor returns a sender when stderr is connected to journald, nil
// otherwise. JOURNAL_STREAM names the stream systemd connected; it must be
// stderr itself, not a descriptor a parent had (the check systemd documents).
func journalFor(stderr *os.File) *journalSender {
	var st syscall.Stat_t
	if syscall.Fstat(int(stderr.Fd()), &st) != nil {
		return nil
	}
	if os.Getenv("JOURNAL_STREAM") != fmt.Sprintf("%d:%d", st.Dev, st.Ino) {
		return nil
	}
	return newJournalSender(journalSocket, filepath.Base(os.Args[0]))
}

func newJournalSender(path, ident string) *journalSender {
	if _, err := os.Stat(path); err != nil {
		return nil
	}
	addr, err := sockio.NewUnixAddr(path)
	if err != nil {
		return nil
	}
	fd, err := syscall.Socket(syscall.AF_UNIX, syscall.SOCK_DGRAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil
	}
	return &journalSender{fd: fd, addr: addr, ident: ident}
}

// send sends one entry. It does not wait for a busy journald: the caller
// writes the record to stderr instead when this fails. The call is raw: it
// cannot wait, and through the syscall package each record (two per
// registration) woke the Go runtime's monitor thread.
func (j *journalSender) send(entry []byte) error {
	return sockio.SendDatagramNow(j.fd, entry, j.addr)
}

// appendJournalField appends KEY=value in the native protocol: a value with
// a newline goes as KEY, newline, its length as 64-bit little endian, the
// bytes and a newline.
func appendJournalField(b []byte, key, value string) []byte {
	b = append(b, key...)
	if !strings.Contains(value, "\n") {
		b = append(b, '=')
		b = append(b, value...)
		return append(b, '\n')
	}
	b = append(b, '\n')
	b = binary.LittleEndian.AppendUint64(b, uint64(len(value)))
	b = append(b, value...)
	return append(b, '\n')
}

// isJournalField reports whether an attribute key is a journal field name
// (upper case letters, digits and underscores, not starting with one of
// journald's trusted underscore fields, at most 64 bytes). Upstream's
// structured fields (NAME, LEADER, MESSAGE_ID) are; other attributes stay in
// the message text, as on the console.
func isJournalField(key string) bool {
	if key == "" || len(key) > 64 || key[0] == '_' || (key[0] >= '0' && key[0] <= '9') {
		return false
	}
	for i := 0; i < len(key); i++ {
		c := key[i]
		if !(c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	switch key {
	case "MESSAGE", "PRIORITY", "SYSLOG_IDENTIFIER":
		return false
	}
	return true
}

// appendJournalEntry builds the datagram for one record: PRIORITY,
// SYSLOG_IDENTIFIER, MESSAGE (the text with the attributes that are not
// fields, as key="value") and one field per attribute that is.
func appendJournalEntry(b []byte, priority int, ident, msg string, attrs [][2]string) []byte {
	text := make([]byte, 0, len(msg)+32)
	text = append(text, msg...)
	for _, a := range attrs {
		if !isJournalField(a[0]) {
			text = append(text, ' ')
			text = append(text, a[0]...)
			text = append(text, '=')
			text = strconv.AppendQuote(text, a[1])
		}
	}
	b = appendJournalField(b, "PRIORITY", strconv.Itoa(priority))
	b = appendJournalField(b, "SYSLOG_IDENTIFIER", ident)
	b = appendJournalField(b, "MESSAGE", string(text))
	for _, a := range attrs {
		if isJournalField(a[0]) {
			b = appendJournalField(b, a[0], a[1])
		}
	}
	return b
}
