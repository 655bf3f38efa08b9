package bridge

import (
	"bufio"
	"net"
	"net/url"
	"sync"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// dialBuffered opens a tcp:// or mqtt:// broker connection that batches
// system calls. paho reads each packet straight from the socket, its fixed
// header a byte at a time, and writes every packet with its own call: under
// load, three reads and one write per message were the largest cost in the
// bridge's CPU profile, above decoding. The bridge acknowledges a whole
// batch at once, so its PUBACKs coalesce well.
func dialBuffered(uri *url.URL, o mqtt.ClientOptions) (net.Conn, error) {
	d := net.Dialer{Timeout: o.ConnectTimeout}
	c, err := d.Dial("tcp", uri.Host)
	if err != nil {
		return nil, err
	}
	return newBufferedConn(c), nil
}

// bufferedConn reads through a buffer and hands writes to a goroutine that
// sends everything written since its last send in one call. Write waits
// for the network only when maxUnsent bytes wait already (a peer that does
// not read holds Write as it would on a plain socket, instead of growing
// the buffer without bound); a failed send closes the connection, which
// paho's reader then reports as lost, and fails later writes. Close sends what is
// left first, so a DISCONNECT written just before it still goes out.
type bufferedConn struct {
	net.Conn
	r *bufio.Reader

	mu      sync.Mutex
	room    *sync.Cond // signalled when out is taken or sending stops
	out     []byte     // written, not yet sent
	err     error      // why sending stopped
	kick    chan struct{}
	stop    chan struct{}
	stopped chan struct{}
	once    sync.Once
}

func newBufferedConn(c net.Conn) *bufferedConn {
	bc := &bufferedConn{Conn: c, r: bufio.NewReaderSize(c, 64<<10),
		kick: make(chan struct{}, 1), stop: make(chan struct{}), stopped: make(chan struct{})}
	bc.room = sync.NewCond(&bc.mu)
	go bc.send()
	return bc
}

// maxUnsent bounds the bytes written and not yet handed to the network.
const maxUnsent = 1 << 20

func (c *bufferedConn) Read(p []byte) (int, error) { return c.r.Read(p) }

func (c *bufferedConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	for c.err == nil && len(c.out) > 0 && len(c.out)+len(p) > maxUnsent {
		c.room.Wait()
	}
	if c.err != nil {
		err := c.err
		c.mu.Unlock()
		return 0, err
	}
	c.out = append(c.out, p...)
	c.mu.Unlock()
	select {
	case c.kick <- struct{}{}:
	default: // a send is already due; it will take p too
	}
	return len(p), nil
}

// send writes out what has been written, until stop closes.
func (c *bufferedConn) send() {
	defer close(c.stopped)
	var buf []byte
	for {
		select {
		case <-c.kick:
		case <-c.stop:
			return
		}
		c.mu.Lock()
		buf, c.out = c.out, buf[:0]
		c.room.Broadcast()
		c.mu.Unlock()
		if _, err := c.Conn.Write(buf); err != nil {
			c.mu.Lock()
			c.err = err
			c.room.Broadcast()
			c.mu.Unlock()
			c.Conn.Close()
			return
		}
	}
}

// Close sends what is left and closes the connection.
func (c *bufferedConn) Close() error {
	c.once.Do(func() {
		_ = c.Conn.SetWriteDeadline(time.Now().Add(time.Second)) // a dead peer must not hold Close
		close(c.stop)
		<-c.stopped
		c.mu.Lock()
		if c.err == nil && len(c.out) > 0 {
			_, _ = c.Conn.Write(c.out)
		}
		c.err = net.ErrClosed
		c.room.Broadcast()
		c.mu.Unlock()
	})
	return c.Conn.Close()
}
