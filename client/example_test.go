package client_test

// These examples run under `go test` against a daemon TestMain starts
// (daemon_test.go); socketPath is its socket. A program passes "" to Dial for
// the system's machine socket.

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"os/exec"
	"syscall"
	"time"

	"github.com/machined-go/machined/client"
	"golang.org/x/sys/unix"
)

// Register a process as the leader of a container, pinned by its pidfd, then
// stop it.
func Example() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := client.Dial(ctx, socketPath)
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	leader := exec.Command("sleep", "infinity")
	if err := leader.Start(); err != nil {
		log.Fatal(err)
	}
	fd, err := unix.PidfdOpen(leader.Process.Pid, 0)
	if err != nil {
		log.Fatal(err)
	}
	pidfd := os.NewFile(uintptr(fd), "pidfd")
	defer pidfd.Close()

	err = c.Register(ctx, client.RegisterRequest{Name: "demo", Class: client.ClassContainer, Leader: pidfd})
	if errors.Is(err, client.ErrMachineExists) {
		log.Fatal("a machine called demo is already registered")
	} else if err != nil {
		log.Fatal(err)
	}
	m, err := c.Get(ctx, client.ByName("demo"), client.MetadataNo)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(m.Name, m.Class, m.Leader.PID == leader.Process.Pid)
	if err := c.Terminate(ctx, client.ByName("demo")); err != nil {
		log.Fatal(err)
	}
	leader.Wait()
	// The machine goes away as soon as the daemon sees its leader exit.
	for {
		_, err := c.Get(ctx, client.ByName("demo"), client.MetadataNo)
		if errors.Is(err, client.ErrNoSuchMachine) {
			fmt.Println("demo is gone")
			return
		} else if err != nil {
			log.Fatal(err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	// Output:
	// demo container true
	// demo is gone
}

func ExampleClient_List() {
	ctx := context.Background()
	c, err := client.Dial(ctx, socketPath)
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	for m, err := range c.List(ctx, client.MetadataGraceful) {
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(m.Name, m.Class, m.Unit)
	}
	// Output:
	// .host host -.slice
}

// Watch one machine come and go.
func ExampleClient_Subscribe() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := client.Dial(ctx, socketPath)
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	done := make(chan struct{})
	for ev, err := range c.Subscribe(ctx, client.SubscribeOptions{Name: "watched"}) {
		switch {
		case errors.Is(err, client.ErrBacklogExceeded):
			log.Print("fell behind; subscribe again for a fresh snapshot")
			return
		case err != nil:
			log.Fatal(err)
		case ev.Kind == client.EventSnapshotComplete:
			fmt.Println("-- live from here --")
			go func() { // the same Client serves both
				comeAndGo(ctx, c, "watched")
				close(done)
			}()
		case ev.Kind == client.EventRemoved:
			fmt.Println(ev.Kind, ev.Machine.Name, ev.Reason)
			<-done
			return
		default:
			fmt.Println(ev.Kind, ev.Machine.Name)
		}
	}
	// Output:
	// -- live from here --
	// registered watched
	// removed watched unregistered
}

// comeAndGo registers this process as a VM called name, and unregisters it.
func comeAndGo(ctx context.Context, c *client.Client, name string) {
	if err := c.Register(ctx, client.RegisterRequest{Name: name, Class: client.ClassVM, LeaderPID: os.Getpid()}); err != nil {
		log.Fatal(err)
	}
	if err := c.Unregister(ctx, client.ByName(name)); err != nil {
		log.Fatal(err)
	}
}

// Errors of the daemon are typed: sentinels for the Varlink error names, the
// errno of io.systemd.System, the parameter of InvalidParameter.
func ExampleError() {
	ctx := context.Background()
	c, err := client.Dial(ctx, socketPath)
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	err = c.Register(ctx, client.RegisterRequest{Name: "vm0", Class: client.ClassVM, LeaderPID: os.Getpid()})
	var e *client.Error
	switch {
	case err == nil:
		fmt.Println("registered")
	case errors.Is(err, client.ErrPermissionDenied):
		fmt.Println("not allowed")
	case errors.Is(err, syscall.ENOBUFS):
		fmt.Println("too many machines for this user")
	case errors.Is(err, client.ErrInvalidParameter) && errors.As(err, &e):
		fmt.Println("bad", e.Parameter())
	default:
		log.Fatal(err)
	}
	if err := c.Unregister(ctx, client.ByName("vm0")); err != nil {
		log.Fatal(err)
	}
	// Output: registered
}

func ExampleClient_Open() {
	ctx := context.Background()
	c, err := client.Dial(ctx, socketPath)
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	pty, path, err := c.Open(ctx, client.ByName(".host"), client.OpenRequest{Mode: client.OpenShell, User: "root"})
	if errors.Is(err, client.ErrNoIPC) {
		// The shell is a service of the host's service manager, asked over
		// the system bus, which this example's host does not run.
		fmt.Println("no system bus to start a shell")
		return
	} else if err != nil {
		log.Fatal(err)
	}
	defer pty.Close()
	fmt.Println("shell on", path)
	// Output: no system bus to start a shell
}
