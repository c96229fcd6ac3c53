package envfile

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"syscall"
	"unicode/utf8"
)

// Assignment is one KEY=VALUE of a file, in file order.
type Assignment struct {
	Key, Value string
}

// Why a line is malformed. ParseLenient drops the kinds skipped names; the
// others still leave systemd's reading of the value.
var (
	errNoAssignment = errors.New("no assignment")
	errInvalidKey   = errors.New("invalid key")
	errNotUTF8      = errors.New("value is not UTF-8")
	errNUL          = errors.New("value contains a NUL byte")
	errUnterminated = errors.New("unterminated quote")
	errEscape       = errors.New("bad escape")
	errTrailing     = errors.New("trailing backslash")
)

func skipped(err error) bool {
	return err == errNoAssignment || err == errInvalidKey || err == errNotUTF8 || err == errNUL
}

// Parse returns the assignments of data in order, or an error naming the line
// (and key) of the first malformed one. A NUL byte is an error wrapping EINVAL.
func Parse(data []byte) ([]Assignment, error) {
	lines, err := scan(data)
	if err != nil {
		return nil, err
	}
	out := make([]Assignment, 0, len(lines))
	for _, l := range lines {
		if l.err != nil {
			if l.key == "" {
				return nil, fmt.Errorf("line %d: %w", l.line, l.err)
			}
			return nil, fmt.Errorf("line %d (%s): %w", l.line, l.key, l.err)
		}
		out = append(out, Assignment{l.key, l.value})
	}
	return out, nil
}

// ParseLenient returns what systemd reads of data, in order; duplicate keys
// are all kept. Only a NUL byte fails it, with an error wrapping EINVAL.
func ParseLenient(data []byte) ([]Assignment, error) {
	lines, err := scan(data)
	if err != nil {
		return nil, err
	}
	var out []Assignment
	for _, l := range lines {
		if !skipped(l.err) {
			out = append(out, Assignment{l.key, l.value})
		}
	}
	return out, nil
}

// line is one assignment as scanned, with what is wrong with it.
type line struct {
	line       int // where the assignment starts, from 1
	key, value string
	err        error
}

// state is where scan is within a line.
type state int

const (
	lineStart    state = iota // before a key, skipping blanks
	comment                   // inside a comment line
	key                       // reading a key
	valueStart                // after '=', skipping blanks
	value                     // unquoted value
	valueEscape               // after '\' in an unquoted value
	single                    // inside '...'
	double                    // inside "..."
	doubleEscape              // after '\' inside "..."
)

func scan(data []byte) ([]line, error) {
	if bytes.IndexByte(data, 0) >= 0 {
		return nil, fmt.Errorf("env file contains a NUL byte: %w", syscall.EINVAL)
	}
	var (
		out   []line
		k     []byte
		v     []byte
		keep  int // len(v) without trailing unquoted blanks
		start int // line number of the current assignment
		bad   error
		n     = 1 // current line number
		st    = lineStart
	)
	emit := func() {
		l := line{line: start, key: string(bytes.TrimRight(k, " \t\r")), value: string(v[:keep]), err: bad}
		switch {
		case !validKey(l.key):
			l.err = errInvalidKey
		case !utf8.ValidString(l.value): // whatever else is wrong: systemd skips it
			l.err = errNotUTF8
		case strings.IndexByte(l.value, 0) >= 0: // \000: no C string holds it
			l.err = errNUL
		}
		out = append(out, l)
		k, v, keep, bad = k[:0], v[:0], 0, nil
	}
	add := func(c ...byte) { v = append(v, c...); keep = len(v) }
	for i := 0; i < len(data); i++ {
		c := data[i]
		switch st {
		case lineStart:
			start = n
			switch c {
			case ' ', '\t', '\r', '\n':
			case '#', ';':
				st = comment
			case '=':
				k, st = k[:0], valueStart
			default:
				k, st = append(k[:0], c), key
			}
		case comment:
			if c == '\n' {
				st = lineStart
			}
		case key:
			switch c {
			case '=':
				st = valueStart
			case '\n':
				out = append(out, line{line: start, err: errNoAssignment})
				k, st = k[:0], lineStart
			default:
				k = append(k, c)
			}
		case valueStart, value:
			switch c {
			case '\n':
				emit()
				st = lineStart
			case ' ', '\t', '\r':
				if st == value {
					v = append(v, c) // kept only if something follows
				}
			case '\'':
				st = single
			case '"':
				st = double
			case '\\':
				st = valueEscape
			default:
				add(c)
				st = value
			}
		case valueEscape:
			st = value
			switch c {
			case '\n': // backslash-newline continues the line
			case 'n':
				add('\n')
			case 't':
				add('\t')
			case 'x':
				if i+2 < len(data) && isHex(data[i+1]) && isHex(data[i+2]) {
					add(unhex(data[i+1])<<4 | unhex(data[i+2]))
					i += 2
				} else {
					add(c)
					bad = firstErr(bad, errEscape)
				}
			case '0', '1', '2', '3':
				// cescape writes bytes outside printable ASCII as three octal
				// digits: 252 stores "é" as \303\251.
				if i+2 < len(data) && isOctal(data[i+1]) && isOctal(data[i+2]) {
					add((c-'0')<<6 | (data[i+1]-'0')<<3 | (data[i+2] - '0'))
					i += 2
				} else {
					add(c)
					bad = firstErr(bad, errEscape)
				}
			default:
				add(c)
			}
		case single:
			if c == '\'' {
				st = value
			} else {
				add(c)
			}
		case double:
			switch c {
			case '"':
				st = value
			case '\\':
				st = doubleEscape
			default:
				add(c)
			}
		case doubleEscape:
			switch c {
			case '\n':
			case '"', '\\', '`', '$':
				add(c)
			default:
				add('\\', c)
			}
			st = double
		}
		if c == '\n' {
			n++
		}
	}
	switch st {
	case key:
		out = append(out, line{line: start, err: errNoAssignment})
	case valueEscape:
		bad = firstErr(bad, errTrailing)
		emit()
	case single, double, doubleEscape:
		// systemd keeps what the unterminated quote holds.
		bad = firstErr(bad, errUnterminated)
		emit()
	case valueStart, value:
		emit()
	}
	return out, nil
}

// firstErr keeps the first error of a line.
func firstErr(have, next error) error {
	if have != nil {
		return have
	}
	return next
}

// validKey reports whether k is a portable environment variable name.
func validKey(k string) bool {
	if k == "" {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if c == '_' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || i > 0 && c >= '0' && c <= '9' {
			continue
		}
		return false
	}
	return true
}

func isOctal(c byte) bool { return c >= '0' && c <= '7' }

func isHex(c byte) bool { return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F' }

func unhex(c byte) byte {
	switch {
	case c >= 'a':
		return c - 'a' + 10
	case c >= 'A':
		return c - 'A' + 10
	}
	return c - '0'
}
