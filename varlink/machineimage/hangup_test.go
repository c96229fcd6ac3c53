package machineimage

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"path/filepath"
	"testing"

	"github.com/machined-go/machined/images"
	"github.com/machined-go/machined/service"
	"github.com/machined-go/machined/varlink"
)

// blockingPool is a pool of one image whose Clone, Remove and Clean block
// until their context ends, and report that they saw it end.
type blockingPool struct {
	service.ImagePool // unused methods panic
	started           chan struct{}
	ended             chan error
}

func (p *blockingPool) Get(name string) (images.Image, error) {
	if name != "a" {
		return images.Image{}, images.ErrNoSuchImage
	}
	return images.Image{Name: "a", Path: "/a", Type: images.TypeDirectory}, nil
}

func (p *blockingPool) block(ctx context.Context) error {
	p.started <- struct{}{}
	<-ctx.Done()
	p.ended <- ctx.Err()
	return ctx.Err()
}

func (p *blockingPool) Clone(ctx context.Context, _, _ string, _ bool) error { return p.block(ctx) }
func (p *blockingPool) Remove(ctx context.Context, _ string) error           { return p.block(ctx) }
func (p *blockingPool) Clean(ctx context.Context, _ images.CleanMode) ([]images.Removed, error) {
	return nil, p.block(ctx)
}

// A client that hangs up ends its clone, removal or clean: the operation's
// context is cancelled, so the pool stops working for nobody.
func TestHangupEndsTheOperation(t *testing.T) {
	pool := &blockingPool{started: make(chan struct{}, 1), ended: make(chan error, 1)}
	mgr, err := service.New(service.Config{StateDir: filepath.Join(t.TempDir(), "machines"), Images: pool, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer mgr.Close()
	sock := filepath.Join(t.TempDir(), "sock")
	l, err := varlink.Listen(sock, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	srv := varlink.NewServer("test", varlink.NewDispatcher(varlink.Identity{}, slog.New(slog.DiscardHandler), New(mgr)).Handle, varlink.DefaultLimits(), nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go srv.Serve(ctx, l)
	defer l.Close()

	for _, msg := range []string{
		`{"method":"io.systemd.MachineImage.Clone","parameters":{"name":"a","newName":"b"}}`,
		`{"method":"io.systemd.MachineImage.Remove","parameters":{"name":"a"}}`,
		`{"method":"io.systemd.MachineImage.CleanPool","parameters":{"mode":"all"},"more":true}`,
	} {
		c, err := net.Dial("unix", sock)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Write(append([]byte(msg), 0)); err != nil {
			t.Fatal(err)
		}
		<-pool.started
		c.Close()
		if err := <-pool.ended; !errors.Is(err, context.Canceled) {
			t.Errorf("%s: the operation ended with %v", msg, err)
		}
	}
}
