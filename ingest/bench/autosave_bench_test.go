package bench

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/pdmstream/pdm/pdmkit/stacktest"
)

// BenchmarkBrokerAutosave is the cost of Mosquitto's autosave_interval
// while a backlog builds: a persistent subscriber (the bridge) is away, so
// every QoS 1 message published is queued in the broker's store, which
// each autosave writes out whole. The same load is published to a broker
// of the test's own at the interval in the stack's configuration and at
// 300 s, the default, and the rates are reported with their ratio.
func BenchmarkBrokerAutosave(b *testing.B) {
	const messages = 1_000_000 // the stack's max_queued_messages: the largest store
	payload := []byte(`{"v":1,"site":"s","asset":"pump-1","ts":"2026-12-02T06:00:00.000Z","seq":1,"sensors":{"vibration_rms":0.42,"bearing_temp":61.5,"current":12.25}}`)
	rate := func(b *testing.B, overrides ...string) float64 {
		broker := stacktest.StartMosquitto(b, overrides...)
		opts := func(id string) *mqtt.ClientOptions {
			return mqtt.NewClientOptions().AddBroker(broker.URL()).SetClientID(id).SetMaxResumePubInFlight(2000)
		}
		// The away subscriber: a persistent session that is not connected.
		sub := mqtt.NewClient(opts("away").SetCleanSession(false))
		if t := sub.Connect(); !t.WaitTimeout(10*time.Second) || t.Error() != nil {
			b.Fatal(t.Error())
		}
		if t := sub.Subscribe("$share/bridge/pdm/v1/+/+/readings", 1, nil); !t.WaitTimeout(10*time.Second) || t.Error() != nil {
			b.Fatal(t.Error())
		}
		sub.Disconnect(100)
		pub := mqtt.NewClient(opts("pub"))
		if t := pub.Connect(); !t.WaitTimeout(10*time.Second) || t.Error() != nil {
			b.Fatal(t.Error())
		}
		defer pub.Disconnect(100)
		start := time.Now()
		window := make(chan mqtt.Token, 1000) // messages awaiting their PUBACK
		go func() {
			for i := range messages {
				window <- pub.Publish(fmt.Sprintf("pdm/v1/s/pump-%d/readings", i%8), 1, false, payload)
			}
			close(window)
		}()
		for t := range window {
			if !t.WaitTimeout(time.Minute) || t.Error() != nil {
				b.Fatalf("publish: %v", t.Error())
			}
		}
		return messages / time.Since(start).Seconds()
	}
	stack := stackAutosave(b)
	var withStack, with300 float64
	for b.Loop() {
		withStack += rate(b)
		with300 += rate(b, "autosave_interval 300")
	}
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(withStack/float64(b.N), "msgs/s-autosave-"+stack)
	b.ReportMetric(with300/float64(b.N), "msgs/s-autosave-300")
	b.ReportMetric(withStack/with300, "ratio")
}

// stackAutosave is the stack configuration's autosave_interval.
func stackAutosave(b *testing.B) string {
	b.Helper()
	conf := readFile(b, "../../deployments/mosquitto/mosquitto.conf")
	for _, l := range strings.Split(conf, "\n") {
		if v, ok := strings.CutPrefix(l, "autosave_interval "); ok {
			return v
		}
	}
	b.Fatal("no autosave_interval in deployments/mosquitto/mosquitto.conf")
	return ""
}

func readFile(b *testing.B, path string) string {
	b.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		b.Fatal(err)
	}
	return string(data)
}
