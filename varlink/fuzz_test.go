package varlink

import (
	"bytes"
	"context"
	"testing"
)

// FuzzReadMessage feeds arbitrary bytes through a socket into the framer: it
// never panics, and every message it returns is NUL-free and within the cap.
func FuzzReadMessage(f *testing.F) {
	f.Add([]byte("{\"method\":\"a.b\"}\x00"), uint8(3))
	f.Add([]byte("\x00\x00x\x00"), uint8(1))
	f.Add(bytes.Repeat([]byte("z"), 5000), uint8(7))
	f.Fuzz(func(t *testing.T, data []byte, split uint8) {
		lim := DefaultLimits()
		lim.MaxMessageSize = 4096
		a, b := socketpair(t)
		c := newConn(b, lim, Peer{})
		defer c.freeInput()
		go func() {
			step := int(split%64) + 1
			for i := 0; i < len(data); i += step {
				a.Write(data[i:min(i+step, len(data))])
			}
			a.Close()
		}()
		for {
			msg, _, err := c.ReadMessage(context.Background())
			if err != nil {
				return
			}
			if bytes.IndexByte(msg, 0) >= 0 || len(msg) > lim.MaxMessageSize+readChunk {
				t.Fatalf("bad message of %d bytes", len(msg))
			}
		}
	})
}
