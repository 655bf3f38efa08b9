package stacktest

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Proc is a binary under test, running as its own process.
type Proc struct {
	Cmd  *exec.Cmd
	done chan struct{} // closed when the process has exited
	log  logBuffer
}

// Start runs bin with args, env added to its environment and its standard
// error the test's (and kept: Log). When the test ends the process is
// stopped as Stop does.
func Start(t testing.TB, env []string, bin string, args ...string) *Proc {
	t.Helper()
	p := &Proc{Cmd: exec.Command(bin, args...), done: make(chan struct{})}
	p.Cmd.Env = append(os.Environ(), env...)
	p.Cmd.Stderr = io.MultiWriter(os.Stderr, &p.log)
	if err := p.Cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = p.Cmd.Wait(); close(p.done) }()
	t.Cleanup(func() { p.Stop(t) })
	return p
}

// Exited reports whether the process has exited.
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Log returns what the process has written to its standard error so far.
func (p *Proc) Log() string { return p.log.String() }

type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// Stop sends SIGTERM and waits for the process to exit; one that has not
// after 30 seconds is killed and fails the test. Stopping a process that has
// already exited does nothing.
func (p *Proc) Stop(t testing.TB) {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.Cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		_ = p.Cmd.Process.Kill()
		<-p.done
		t.Errorf("stacktest: %s did not stop within 30s of SIGTERM", filepath.Base(p.Cmd.Path))
	}
}

// Kill ends the process with SIGKILL, as a crash would, and waits for it.
func (p *Proc) Kill(t testing.TB) {
	if err := p.Cmd.Process.Kill(); err != nil {
		t.Fatalf("stacktest: kill %s: %v", filepath.Base(p.Cmd.Path), err)
	}
	<-p.done
}

// WaitReady waits up to a minute for url to answer 200 OK, as a service's
// /readyz does once it is connected.
func WaitReady(t testing.TB, url string) {
	t.Helper()
	Eventually(t, time.Minute, func() bool {
		resp, err := http.Get(url)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, "%s not ready", url)
}

// Run runs fn on its own goroutine until the test ends, then cancels fn's
// context and waits for it to return; an error from fn fails the test,
// naming what.
func Run(t testing.TB, what string, fn func(context.Context) error) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- fn(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("%s: %v", what, err)
		}
	})
}

// Proxy forwards TCP connections from listen to target until the test
// ends, then closes them all: a server that is away until the proxy
// starts, for tests of what a client does while its server is down. stop
// does the same at once (the client sees its connections reset, as when
// the server's process dies), and may be called more than once; after it a
// new Proxy may listen on the same address.
func Proxy(t testing.TB, listen, target string) (stop func()) {
	t.Helper()
	var ln net.Listener
	Eventually(t, 5*time.Second, func() bool {
		var err error
		ln, err = net.Listen("tcp", listen)
		return err == nil
	}, "cannot listen on %s", listen)
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		conns  []net.Conn
		closed bool
	)
	stop = func() {
		ln.Close()
		mu.Lock()
		closed = true
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	}
	t.Cleanup(stop)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			u, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			mu.Lock()
			if closed {
				mu.Unlock()
				c.Close()
				u.Close()
				return
			}
			conns = append(conns, c, u)
			mu.Unlock()
			wg.Add(2)
			go func() { defer wg.Done(); _, _ = io.Copy(u, c); u.Close() }()
			go func() { defer wg.Done(); _, _ = io.Copy(c, u); c.Close() }()
		}
	}()
	return stop
}
