// Package mqtttest gives the edge agent's integration tests a private
// Mosquitto process (free loopback port, persistence on, stoppable and
// restartable) and a subscriber that records what arrives per asset.
package mqtttest

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/pdmstream/pdm/pdmkit/stacktest"
	"github.com/pdmstream/pdm/pdmkit/wire"
)

// Broker is a private Mosquitto process on a free loopback port, with
// persistence, so it can be stopped and started again under a test.
type Broker struct {
	t    testing.TB
	bin  string
	conf string
	addr string
	cmd  *exec.Cmd
}

func mosquittoBin(t testing.TB) string {
	t.Helper()
	if p, err := exec.LookPath("mosquitto"); err == nil {
		return p
	}
	for _, p := range []string{"/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto"} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	t.Fatal("mosquitto not found (Debian package mosquitto; deployments/stack/stack.sh installs it)")
	return ""
}

func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func NewBroker(t testing.TB) *Broker {
	t.Helper()
	if testing.Short() {
		t.Skip("private mosquitto test skipped under -short")
	}
	dir := t.TempDir()
	port := freePort(t)
	conf := filepath.Join(dir, "mosquitto.conf")
	// Run as root, Mosquitto switches to the user "mosquitto", which could
	// not write the persistence file into a root-owned temp dir.
	body := ""
	if os.Geteuid() == 0 {
		body = "user root\n"
	}
	body += fmt.Sprintf("listener %d 127.0.0.1\nallow_anonymous true\npersistence true\npersistence_location %s/\nmax_queued_messages 0\nlog_dest file %s/mosquitto.log\n", port, dir, dir)
	if err := os.WriteFile(conf, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	b := &Broker{t: t, bin: mosquittoBin(t), conf: conf, addr: fmt.Sprintf("127.0.0.1:%d", port)}
	t.Cleanup(func() {
		if b.cmd != nil {
			b.cmd.Process.Kill()
			b.cmd.Wait()
		}
	})
	return b
}

func (b *Broker) URL() string { return "tcp://" + b.addr }

// Options are paho options for the broker (anonymous, plain TCP).
func (b *Broker) Options() *mqtt.ClientOptions { return mqtt.NewClientOptions().AddBroker(b.URL()) }

func (b *Broker) Start() {
	b.t.Helper()
	b.cmd = exec.Command(b.bin, "-c", b.conf)
	if err := b.cmd.Start(); err != nil {
		b.t.Fatalf("start mosquitto: %v", err)
	}
	stacktest.Eventually(b.t, 10*time.Second, func() bool {
		c, err := net.DialTimeout("tcp", b.addr, 200*time.Millisecond)
		if err != nil {
			return false
		}
		c.Close()
		return true
	}, "mosquitto did not listen on %s", b.addr)
}

// Stop ends the broker with SIGTERM, on which Mosquitto saves its
// persistence file: queued messages for a persistent subscriber survive.
func (b *Broker) Stop() {
	b.t.Helper()
	b.cmd.Process.Signal(syscall.SIGTERM)
	b.cmd.Wait()
	b.cmd = nil
}

// Got is one reading as the subscriber saw it.
type Got struct {
	Seq     uint64
	Sensors map[string]float64
	Quality map[string]string
}

// Subscriber collects the readings of one site with a persistent session.
type Subscriber struct {
	mu       sync.Mutex
	byAsset  map[string][]Got
	invalid  int
	messages int
	client   mqtt.Client
}

// Subscribe records the readings of site that reach the broker opts
// connect to (Broker.Options for a private one, stacktest.MQTTOptions for
// the shared stack), over a persistent session.
func Subscribe(t testing.TB, opts *mqtt.ClientOptions, site string) *Subscriber {
	t.Helper()
	s := &Subscriber{byAsset: map[string][]Got{}}
	filter := wire.TopicRoot + "/" + site + "/+/readings"
	handler := func(_ mqtt.Client, m mqtt.Message) {
		items, err := wire.DefaultLimits().Decode(m.Payload(), time.Now())
		s.mu.Lock()
		defer s.mu.Unlock()
		s.messages++
		if err != nil {
			s.invalid++
			return
		}
		for _, it := range items {
			if it.Err != nil {
				s.invalid++
				continue
			}
			s.byAsset[it.Reading.Asset] = append(s.byAsset[it.Reading.Asset], Got{it.Reading.Seq, it.Reading.Sensors, it.Reading.Quality})
		}
	}
	opts.SetClientID(stacktest.Unique("sub")).
		SetCleanSession(false).SetAutoReconnect(true).SetConnectRetry(true).
		SetConnectRetryInterval(100 * time.Millisecond).SetMaxReconnectInterval(200 * time.Millisecond).
		SetOnConnectHandler(func(c mqtt.Client) { c.Subscribe(filter, 1, handler) })
	opts.SetDefaultPublishHandler(handler)
	s.client = mqtt.NewClient(opts)
	tok := s.client.Connect()
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("subscriber connect %v: %v", opts.Servers, tok.Error())
	}
	st := s.client.Subscribe(filter, 1, handler)
	if !st.WaitTimeout(10*time.Second) || st.Error() != nil {
		t.Fatalf("subscribe %s: %v", filter, st.Error())
	}
	t.Cleanup(func() { s.client.Disconnect(100) })
	return s
}

// Distinct counts the distinct sequence numbers seen per asset.
func (s *Subscriber) Distinct() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]int{}
	for a, gs := range s.byAsset {
		seen := map[uint64]bool{}
		for _, g := range gs {
			seen[g.Seq] = true
		}
		out[a] = len(seen)
	}
	return out
}

// FirstArrivals returns each asset's readings in order of first arrival,
// and how many duplicates were dropped.
func (s *Subscriber) FirstArrivals() (map[string][]Got, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string][]Got{}
	dups := 0
	for a, gs := range s.byAsset {
		seen := map[uint64]bool{}
		for _, g := range gs {
			if seen[g.Seq] {
				dups++
				continue
			}
			seen[g.Seq] = true
			out[a] = append(out[a], g)
		}
	}
	return out, dups
}

// Missing lists, per asset, the ranges of seq 1..n not seen, for failure
// messages.
func (s *Subscriber) Missing(n int) map[string][][2]uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string][][2]uint64{}
	for a, gs := range s.byAsset {
		seen := map[uint64]bool{}
		for _, g := range gs {
			seen[g.Seq] = true
		}
		for q := uint64(1); q <= uint64(n); q++ {
			if seen[q] {
				continue
			}
			r := out[a]
			if len(r) > 0 && r[len(r)-1][1] == q-1 {
				r[len(r)-1][1] = q
			} else {
				r = append(r, [2]uint64{q, q})
			}
			out[a] = r
		}
	}
	return out
}

// Invalid counts readings that failed validation on arrival.
func (s *Subscriber) Invalid() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.invalid
}

// Kill ends the broker with SIGKILL: nothing is saved.
func (b *Broker) Kill() {
	b.t.Helper()
	b.cmd.Process.Kill()
	b.cmd.Wait()
	b.cmd = nil
}

// CheckComplete fails the test unless every asset's first arrivals are seq
// 1..n in order, and returns them.
func (s *Subscriber) CheckComplete(t testing.TB, assets []string, n int) map[string][]Got {
	t.Helper()
	first, dups := s.FirstArrivals()
	if dups > 0 {
		t.Logf("%d duplicate readings (at least once delivery)", dups)
	}
	for _, a := range assets {
		gs := first[a]
		if len(gs) != n {
			t.Fatalf("asset %s: %d distinct readings, want %d; missing %v", a, len(gs), n, s.Missing(n)[a])
		}
		for i, g := range gs {
			if g.Seq != uint64(i+1) {
				t.Fatalf("asset %s: reading %d has seq %d: out of order or missing", a, i, g.Seq)
			}
		}
	}
	return first
}
