package busconn

import "github.com/godbus/dbus/v5"

// headerCache keeps, per header field, the value of the last method call
// decoded: a client sends the same path, interface, member, destination,
// sender and signature call after call, and decoding each anew cost two
// allocations (the string and its box in the Variant). A Variant holds
// immutable values, so one can go into any number of messages. Only the
// relay's reading goroutine uses the cache.
type headerCache struct {
	fields [10]cachedHeader // by field code (1 to 9)
}

type cachedHeader struct {
	raw string // the value as sent
	v   dbus.Variant
}

// maxCachedHeader bounds what the cache keeps of one field: D-Bus names are
// at most 255 bytes; a longer path is decoded anew each time rather than
// held.
const maxCachedHeader = 255

// lookup returns the cached field code when its value is raw, else nil. A nil
// cache has nothing.
func (c *headerCache) lookup(code byte, raw []byte) *cachedHeader {
	if c == nil || int(code) >= len(c.fields) {
		return nil
	}
	f := &c.fields[code]
	if f.raw == "" || f.raw != string(raw) {
		return nil
	}
	return f
}

// store caches v as field code's value raw.
func (c *headerCache) store(code byte, raw []byte, v dbus.Variant) {
	if c == nil || int(code) >= len(c.fields) || len(raw) == 0 || len(raw) > maxCachedHeader {
		return
	}
	c.fields[code] = cachedHeader{raw: string(raw), v: v}
}
