package stacktest

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// TestMQTTDroppedSeesDrops runs a private Mosquitto whose queues hold five
// messages, overflows the queue of an offline persistent subscriber, and
// checks MQTTDropped reports the drops (and 0 before them).
func TestMQTTDroppedSeesDrops(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a Mosquitto process")
	}
	bin, err := exec.LookPath("mosquitto")
	if err != nil {
		if bin, err = exec.LookPath("/usr/sbin/mosquitto"); err != nil {
			t.Fatalf("mosquitto not installed (make up installs it): %v", err)
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	conf := filepath.Join(t.TempDir(), "m.conf")
	body := fmt.Sprintf("listener %d 127.0.0.1\nallow_anonymous true\nmax_queued_messages 5\nsys_interval 1\n", port)
	if os.Geteuid() == 0 {
		body += "user root\n"
	}
	if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-c", conf)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	url := fmt.Sprintf("tcp://127.0.0.1:%d", port)
	Eventually(t, 10*time.Second, func() bool {
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err == nil {
			c.Close()
		}
		return err == nil
	}, "private mosquitto did not start")

	if n := MQTTDropped(t, mqtt.NewClientOptions().AddBroker(url)); n != 0 {
		t.Fatalf("fresh broker reports %d drops", n)
	}
	sub := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(url).SetClientID("slow").SetCleanSession(false))
	if tok := sub.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	if tok := sub.Subscribe("t", 1, nil); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	sub.Disconnect(100) // offline, session kept: the broker queues for it
	pub := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(url).SetClientID("pub"))
	if tok := pub.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	defer pub.Disconnect(100)
	for i := 0; i < 50; i++ {
		pub.Publish("t", 1, false, "x").WaitTimeout(5 * time.Second)
	}
	var n int64
	Eventually(t, 10*time.Second, func() bool { n = MQTTDropped(t, mqtt.NewClientOptions().AddBroker(url)); return n > 0 }, "no drops reported after overflowing a queue of 5 with 50 messages")
	t.Logf("dropped %d", n)
}

// fatalTB records the message of Fatalf and stops the calling function by
// panicking with it.
type fatalTB struct {
	testing.TB
	msg string
}

func (f *fatalTB) Helper() {}
func (f *fatalTB) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	panic(f)
}

// TestEventuallyMessage: plain arguments are the values of the call, func()
// any arguments the values at the failure.
func TestEventuallyMessage(t *testing.T) {
	n := 1
	f := &fatalTB{TB: t}
	func() {
		defer func() {
			if r := recover(); r != f {
				t.Fatalf("Eventually did not fail: %v", r)
			}
		}()
		Eventually(f, 100*time.Millisecond, func() bool { n++; return false }, "then %d, now %d", n, func() any { return n })
	}()
	if want := fmt.Sprintf("after 100ms: then 1, now %d", n); f.msg != want || n < 3 {
		t.Errorf("message %q, want %q", f.msg, want)
	}
}
