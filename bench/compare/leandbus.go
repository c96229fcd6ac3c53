package main

import (
	"bufio"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"
)

// dconn is a lean D-Bus client: a plain unix connection to a bus, messages
// built once and sent as they are, and replies read only as far as the header
// (the body is skipped by its length). godbus decodes every reply into
// reflected values, which for 1,000 images costs the client more than some
// daemons spend answering, on the same two vCPUs, and the same for every
// daemon: a cap on any wall-clock ratio. With this client the client's share
// is a read of the bytes.
type dconn struct {
	c      net.Conn
	r      *bufio.Reader
	serial uint32
}

// D-Bus message types and header fields (the specification's numbers).
const (
	dbusMethodCall   = 1
	dbusMethodReturn = 2
	dbusError        = 3

	dbusFieldPath        = 1
	dbusFieldInterface   = 2
	dbusFieldMember      = 3
	dbusFieldErrorName   = 4
	dbusFieldReplySerial = 5
	dbusFieldDestination = 6
	dbusFieldSignature   = 8

	// dbusMaxMessage is the specification's bound on a whole message.
	dbusMaxMessage = 128 << 20
)

// dbusDial connects to a "unix:path=" address, authenticates as uid with SASL
// EXTERNAL and says Hello.
func dbusDial(addr string, uid int) (*dconn, error) {
	path, ok := strings.CutPrefix(addr, "unix:path=")
	if !ok {
		return nil, fmt.Errorf("lean D-Bus client: only unix:path= addresses, not %q", addr)
	}
	c, err := net.Dial("unix", path)
	if err != nil {
		return nil, err
	}
	d := &dconn{c: c, r: bufio.NewReaderSize(c, 256<<10)}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if err := d.auth(uid); err != nil {
		c.Close()
		return nil, err
	}
	hello := dbusCall("org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus", "Hello", "", nil)
	if _, err := d.call(hello); err != nil {
		c.Close()
		return nil, fmt.Errorf("Hello: %w", err)
	}
	c.SetDeadline(time.Time{})
	return d, nil
}

// auth runs the SASL exchange: a NUL, AUTH EXTERNAL with the uid's decimal
// digits in hex, OK from the bus, BEGIN.
func (d *dconn) auth(uid int) error {
	if _, err := io.WriteString(d.c, "\x00AUTH EXTERNAL "+hex.EncodeToString([]byte(strconv.Itoa(uid)))+"\r\n"); err != nil {
		return err
	}
	line, err := d.r.ReadString('\n')
	if err != nil {
		return fmt.Errorf("SASL: %w", err)
	}
	if !strings.HasPrefix(line, "OK ") {
		return fmt.Errorf("SASL: bus answered %q", strings.TrimSpace(line))
	}
	_, err = io.WriteString(d.c, "BEGIN\r\n")
	return err
}

func (d *dconn) Close() error { return d.c.Close() }

// dbusCall builds a little-endian METHOD_CALL with serial 0 (call sets it);
// body is the arguments already marshalled for signature sig.
func dbusCall(dest, path, iface, member, sig string, body []byte) []byte {
	m := []byte{'l', dbusMethodCall, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}
	field := func(code byte, typ byte, v string) {
		m = dbusPad(m, 8)
		m = append(m, code, 1, typ, 0)
		if typ == 'g' {
			m = append(m, byte(len(v)))
		} else {
			m = binary.LittleEndian.AppendUint32(m, uint32(len(v)))
		}
		m = append(m, v...)
		m = append(m, 0)
	}
	field(dbusFieldPath, 'o', path)
	field(dbusFieldDestination, 's', dest)
	field(dbusFieldInterface, 's', iface)
	field(dbusFieldMember, 's', member)
	if sig != "" {
		field(dbusFieldSignature, 'g', sig)
	}
	binary.LittleEndian.PutUint32(m[12:], uint32(len(m)-16))
	m = dbusPad(m, 8)
	binary.LittleEndian.PutUint32(m[4:], uint32(len(body)))
	return append(m, body...)
}

// dbusString marshals one string argument (signature "s") at the start of a
// body.
func dbusString(s string) []byte {
	b := binary.LittleEndian.AppendUint32(nil, uint32(len(s)))
	return append(append(b, s...), 0)
}

func dbusPad(b []byte, to int) []byte {
	for len(b)%to != 0 {
		b = append(b, 0)
	}
	return b
}

// call sends msg (a dbusCall, whose serial it overwrites) and returns the
// length of its reply's body, which it skips. Messages that are not replies
// (signals such as NameAcquired) are passed over; a reply to another serial
// or an error is an error.
func (d *dconn) call(msg []byte) (int, error) {
	d.serial++
	if d.serial == 0 {
		d.serial = 1
	}
	binary.LittleEndian.PutUint32(msg[8:], d.serial)
	if _, err := d.c.Write(msg); err != nil {
		return 0, err
	}
	for {
		typ, replyTo, errName, bodyLen, err := dbusReadMessage(d.r)
		if err != nil {
			return 0, err
		}
		switch typ {
		case dbusMethodReturn, dbusError:
		default:
			continue
		}
		if replyTo != d.serial {
			return 0, fmt.Errorf("reply to serial %d, want %d", replyTo, d.serial)
		}
		if typ == dbusError {
			return 0, fmt.Errorf("D-Bus error %s", errName)
		}
		return bodyLen, nil
	}
}

// dbusReadMessage reads one message: its type, the serial it replies to (0:
// none), the error name of an error, and the length of its body, which it
// skips.
func dbusReadMessage(r *bufio.Reader) (typ byte, replyTo uint32, errName string, bodyLen int, err error) {
	var fixed [16]byte
	if _, err = io.ReadFull(r, fixed[:]); err != nil {
		return
	}
	var order binary.ByteOrder = binary.LittleEndian
	switch fixed[0] {
	case 'l':
	case 'B':
		order = binary.BigEndian
	default:
		err = fmt.Errorf("bad endianness byte %q", fixed[0])
		return
	}
	typ = fixed[1]
	body := order.Uint32(fixed[4:])
	fieldsLen := order.Uint32(fixed[12:])
	if uint64(body)+uint64(fieldsLen)+24 > dbusMaxMessage {
		err = fmt.Errorf("message of %d + %d bytes", fieldsLen, body)
		return
	}
	fields := make([]byte, (fieldsLen+7)&^7)
	if _, err = io.ReadFull(r, fields); err != nil {
		return
	}
	if replyTo, errName, err = dbusReplyFields(fields[:fieldsLen], order); err != nil {
		return
	}
	bodyLen = int(body)
	_, err = r.Discard(bodyLen)
	return
}

// dbusReplyFields walks the header fields array (each field 8-aligned, the
// array starting 16 bytes into the message, itself 8-aligned) for the reply
// serial and the error name.
func dbusReplyFields(f []byte, order binary.ByteOrder) (replyTo uint32, errName string, err error) {
	bad := errors.New("malformed header fields")
	for i := 0; i < len(f); {
		i = (i + 7) &^ 7
		if i+4 > len(f) {
			return 0, "", bad
		}
		code, sigLen := f[i], int(f[i+1])
		if i+2+sigLen+1 > len(f) || sigLen != 1 {
			return 0, "", bad
		}
		typ := f[i+2]
		i += 4 // code, signature length, one type code, its NUL
		switch typ {
		case 'u':
			i = (i + 3) &^ 3
			if i+4 > len(f) {
				return 0, "", bad
			}
			if code == dbusFieldReplySerial {
				replyTo = order.Uint32(f[i:])
			}
			i += 4
		case 's', 'o':
			i = (i + 3) &^ 3
			if i+4 > len(f) {
				return 0, "", bad
			}
			n := int(order.Uint32(f[i:]))
			i += 4
			if n < 0 || i+n+1 > len(f) {
				return 0, "", bad
			}
			if code == dbusFieldErrorName {
				errName = string(f[i : i+n])
			}
			i += n + 1
		case 'g':
			n := int(f[i])
			i += 1 + n + 1
		default:
			return 0, "", fmt.Errorf("header field of type %q", typ)
		}
		if i > len(f) {
			return 0, "", bad
		}
	}
	return replyTo, errName, nil
}
