package bridge

import (
	"bytes"
	"io"
	"net"
	"testing"
	"time"
)

// pair returns a bufferedConn and the other end of its TCP connection.
func pair(t *testing.T) (*bufferedConn, net.Conn) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	peer, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { peer.Close() })
	return newBufferedConn(c), peer
}

func TestBufferedConnKeepsOrderAndFlushesOnClose(t *testing.T) {
	c, peer := pair(t)
	var want bytes.Buffer
	for i := range 10_000 {
		p := []byte{byte(i), byte(i >> 8), 0xAA}
		want.Write(p)
		if n, err := c.Write(p); n != len(p) || err != nil {
			t.Fatalf("write %d: %d, %v", i, n, err)
		}
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(peer)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want.Bytes()) {
		t.Fatalf("peer read %d bytes, want %d in order", len(got), want.Len())
	}
	if _, err := c.Write([]byte{1}); err == nil {
		t.Fatal("write after Close succeeded")
	}
}

func TestBufferedConnReadsThroughBuffer(t *testing.T) {
	c, peer := pair(t)
	defer c.Close()
	if _, err := peer.Write([]byte("\x40\x02\x00\x07")); err != nil { // a PUBACK
		t.Fatal(err)
	}
	b := make([]byte, 1)
	var got []byte
	for range 4 {
		if _, err := io.ReadFull(c, b); err != nil {
			t.Fatal(err)
		}
		got = append(got, b[0])
	}
	if string(got) != "\x40\x02\x00\x07" {
		t.Fatalf("read %q", got)
	}
}

func TestBufferedConnFailsWritesAfterThePeerIsGone(t *testing.T) {
	c, peer := pair(t)
	defer c.Close()
	peer.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := c.Write(make([]byte, 64<<10)); err != nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("writes to a closed peer kept succeeding")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestBufferedConnBoundsWhatWaits: with a peer that does not read, what
// waits unsent stays within maxUnsent (Write waits instead), and once the
// peer reads every byte arrives in order.
func TestBufferedConnBoundsWhatWaits(t *testing.T) {
	c, peer := pair(t)
	const total = 64 << 20 // far more than the sockets' buffers hold
	chunk := bytes.Repeat([]byte{0x5A}, 4096)
	wrote := make(chan error, 1)
	go func() {
		for n := 0; n < total; n += len(chunk) {
			if _, err := c.Write(chunk); err != nil {
				wrote <- err
				return
			}
		}
		wrote <- c.Close()
	}()
	time.Sleep(500 * time.Millisecond) // the writer fills what the network takes
	c.mu.Lock()
	unsent := len(c.out)
	c.mu.Unlock()
	if unsent > maxUnsent {
		t.Fatalf("%d bytes wait unsent, bound %d", unsent, maxUnsent)
	}
	select {
	case err := <-wrote:
		t.Fatalf("all %d bytes written to a peer that reads nothing (err %v)", total, err)
	default:
	}
	n, err := io.Copy(io.Discard, peer)
	if err != nil || n != total {
		t.Fatalf("peer read %d of %d bytes: %v", n, total, err)
	}
	if err := <-wrote; err != nil {
		t.Fatal(err)
	}
}
