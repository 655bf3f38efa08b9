package bridge

import (
	"context"
	"io"
	"log/slog"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eclipse/paho.mqtt.golang/packets"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/pdmstream/pdm/ingest/internal/config"
)

// refusingBroker speaks just enough MQTT 3.1.1 to accept a connection and
// refuse the first refuse SUBSCRIBEs (return code 0x80), granting later
// ones. (Mosquitto 2.0 grants even an ACL-denied 3.1.1 subscription, so a
// refusal cannot be provoked from the real broker.)
func refusingBroker(t *testing.T, refuse int32) (url string, subscribes *atomic.Int32) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	subscribes = &atomic.Int32{}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				for {
					p, err := packets.ReadPacket(c)
					if err != nil {
						return
					}
					var out packets.ControlPacket
					switch p := p.(type) {
					case *packets.ConnectPacket:
						out = packets.NewControlPacket(packets.Connack)
					case *packets.SubscribePacket:
						ack := packets.NewControlPacket(packets.Suback).(*packets.SubackPacket)
						ack.MessageID = p.MessageID
						code := byte(1)
						if subscribes.Add(1) <= refuse {
							code = 0x80
						}
						for range p.Topics {
							ack.ReturnCodes = append(ack.ReturnCodes, code)
						}
						out = ack
					case *packets.PingreqPacket:
						out = packets.NewControlPacket(packets.Pingresp)
					case *packets.DisconnectPacket:
						return
					}
					if out != nil {
						if err := out.Write(c); err != nil {
							return
						}
					}
				}
			}()
		}
	}()
	return "tcp://" + ln.Addr().String(), subscribes
}

// TestRefusedSubscriptionIsRetried: a refused subscription leaves the
// bridge connected but not ready, and is tried again on the same
// connection until the broker grants it (it used to disconnect, which
// ended paho's auto-reconnect: the bridge idled for ever while healthy).
func TestRefusedSubscriptionIsRetried(t *testing.T) {
	url, subscribes := refusingBroker(t, 2)
	cfg := config.Default(config.Bridge)
	cfg.MQTT.URL, cfg.MQTT.ClientID = url, "refused"
	cfg.Kafka.Brokers = []string{"127.0.0.1:1"} // no record is written
	b, err := New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), NewMetrics(prometheus.NewRegistry()))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx) }()
	defer func() { cancel(); <-done }()
	deadline := time.Now().Add(20 * time.Second)
	for b.Ready(context.Background()) != nil {
		if time.Now().After(deadline) {
			t.Fatalf("not ready after %d subscribes", subscribes.Load())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if n, errs := subscribes.Load(), testutil.ToFloat64(b.metrics.SubscribeErrors); n != 3 || errs != 2 {
		t.Fatalf("%d subscribes and %v errors counted, want 3 and 2 (two refused, then granted)", n, errs)
	}
}
