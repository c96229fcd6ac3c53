package busconn

// Appender is a body value that writes its own wire form: for a reply whose
// size makes the reflection path cost as much as the rest of the call
// (ListImages of a thousand images). It writes what godbus would write for a
// value of its signature, and never goes in a body with unix fds (those are
// encoded by godbus, which would not know it).
type Appender interface {
	// DBusSignature is the signature of what AppendDBus writes.
	DBusSignature() string
	AppendDBus(w *Writer) error
}

// Writer is the reply encoder as an Appender sees it: alignment and the
// checks on strings and object paths stay the encoder's.
type Writer struct{ e encoder }

// ArrayMark is where an array's length goes.
type ArrayMark struct{ at, start int }

// ArrayStart begins an array whose elements align to align (8 for structs).
func (w *Writer) ArrayStart(align int) ArrayMark {
	at, start := w.e.array(align)
	return ArrayMark{at, start}
}

// ArrayEnd sets the array's length, refusing one over the specification's
// bound.
func (w *Writer) ArrayEnd(m ArrayMark) error { return w.e.endArray(m.at, m.start) }

// StructStart aligns to the start of a struct.
func (w *Writer) StructStart() { w.e.pad(8) }

func (w *Writer) String(s string) error { return w.e.str(s) }
func (w *Writer) Bool(x bool)           { w.e.bool(x) }
func (w *Writer) Uint64(x uint64)       { w.e.u64(x) }

// ObjectPath writes p, refused unless it is a valid object path.
func (w *Writer) ObjectPath(p []byte) error {
	if !validPath(p) {
		return errInvalidPath
	}
	counted(&w.e, p)
	return nil
}

// EncodeBody is the wire form of body as a reply carries it (little-endian,
// from an 8-aligned start): a front end's tests hold its Appenders to the
// bytes of the values godbus would be given instead.
func EncodeBody(body ...any) ([]byte, error) {
	e := encoder{}
	for _, v := range body {
		if err := e.value(v, 0); err != nil {
			return nil, err
		}
	}
	return e.b, nil
}
