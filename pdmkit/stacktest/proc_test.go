package stacktest

import (
	"io"
	"net"
	"os/exec"
	"testing"
	"time"
)

func TestProcStopsAndKills(t *testing.T) {
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		t.Fatal(err)
	}
	p := Start(t, nil, sleep, "60")
	p.Stop(t)
	if p.Cmd.ProcessState == nil || p.Cmd.ProcessState.Success() {
		t.Fatalf("after Stop: %v, want ended by SIGTERM", p.Cmd.ProcessState)
	}
	q := Start(t, nil, sleep, "60")
	q.Kill(t)
	q.Stop(t) // already gone: nothing to do
	if q.Cmd.ProcessState == nil || q.Cmd.ProcessState.String() != "signal: killed" {
		t.Fatalf("after Kill: %v", q.Cmd.ProcessState)
	}
}

// stop resets live connections and frees the address for a new Proxy.
func TestProxyStopAndRestart(t *testing.T) {
	echo, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer echo.Close()
	go func() {
		for {
			c, err := echo.Accept()
			if err != nil {
				return
			}
			go func() { _, _ = io.Copy(c, c); c.Close() }()
		}
	}()
	addr := FreeAddr(t)
	roundTrip := func(c net.Conn) error {
		c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Write([]byte("x")); err != nil {
			return err
		}
		_, err := io.ReadFull(c, make([]byte, 1))
		return err
	}
	stop := Proxy(t, addr, echo.Addr().String())
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := roundTrip(c); err != nil {
		t.Fatalf("through the proxy: %v", err)
	}
	stop()
	stop() // twice is fine
	if err := roundTrip(c); err == nil {
		t.Fatal("a connection survived stop")
	}
	if c2, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		c2.Close()
		t.Fatal("the address still accepts after stop")
	}
	Proxy(t, addr, echo.Addr().String())
	c3, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c3.Close()
	if err := roundTrip(c3); err != nil {
		t.Fatalf("through the second proxy: %v", err)
	}
}
