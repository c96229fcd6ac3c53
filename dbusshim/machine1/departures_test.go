package machine1

import (
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"testing"

	"github.com/godbus/dbus/v5"

	"github.com/machined-go/machined/dbusshim/busconn"
	"github.com/machined-go/machined/images"
	"github.com/machined-go/machined/internal/bustest"
	"github.com/machined-go/machined/service"
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

// A sender that leaves the bus ends its clone, removal or clean.
func TestSenderGoneEndsTheOperation(t *testing.T) {
	bus := bustest.Start(t, "")
	pool := &blockingPool{started: make(chan struct{}, 1), ended: make(chan error, 1)}
	mgr, err := service.New(service.Config{StateDir: filepath.Join(t.TempDir(), "machines"), Images: pool, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer mgr.Close()
	srv := New(Config{})
	conn, err := busconn.Dial(bus.Address, busconn.Config{AcceptFDs: AcceptFDs, Calls: srv})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	defer srv.Close()
	if err := srv.Start(context.Background(), conn, mgr); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		path   dbus.ObjectPath
		method string
		args   []any
	}{
		{managerPath, managerIface + ".CloneImage", []any{"a", "b", false}},
		{managerPath, managerIface + ".RemoveImage", []any{"a"}},
		{managerPath, managerIface + ".CleanPool", []any{"all"}},
		{ImagePath("a"), imageIface + ".Clone", []any{"b", true}},
		{ImagePath("a"), imageIface + ".Remove", nil},
	} {
		client, err := dbus.Connect(bus.Address)
		if err != nil {
			t.Fatal(err)
		}
		client.Object(BusName, c.path).Go(c.method, 0, make(chan *dbus.Call, 1), c.args...)
		<-pool.started
		client.Close()
		if err := <-pool.ended; !errors.Is(err, context.Canceled) {
			t.Errorf("%s: the operation ended with %v", c.method, err)
		}
	}
}
