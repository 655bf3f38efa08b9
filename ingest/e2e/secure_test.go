package e2e

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/segmentio/kafka-go"

	"github.com/pdmstream/pdm/pdmkit/kafkaconn"
	"github.com/pdmstream/pdm/pdmkit/stacktest"
	"github.com/pdmstream/pdm/pdmkit/wire"
)

// TestSecuredKafka runs the ingest binary's bridge and historian against a
// broker of the test's own that wants SASL/SCRAM-SHA-512 over TLS, the
// credentials given as the environment of a deployment gives them: the CA
// file, the mechanism, the user and a password file. With the ingest
// user's password the readings published to the local Mosquitto reach the
// secured topic, exactly those, and InfluxDB; with a wrong one nothing
// reaches the topic, the historian is not ready, and both logs name SASL
// authentication without showing the password.
func TestSecuredKafka(t *testing.T) {
	ingestBin := stacktest.Build(t, "github.com/pdmstream/pdm/ingest/cmd/ingest")[0]
	cluster := stacktest.StartSecureKafka(t, 1)
	admin := cluster.Conn("admin")
	// The password comes from the file alone.
	if v, ok := os.LookupEnv("PDM_KAFKA_SASL_PASSWORD"); ok {
		t.Setenv("PDM_KAFKA_SASL_PASSWORD", v)
		os.Unsetenv("PDM_KAFKA_SASL_PASSWORD")
	}
	secured := func(t *testing.T) *pipeline {
		p := &pipeline{
			site:      stacktest.Unique("e2e-secure"),
			topic:     cluster.Topic("e2e-secure-readings", 3),
			dlq:       cluster.Topic("e2e-secure-dlq", 1),
			bucket:    stacktest.InfluxBucket(t),
			group:     stacktest.Unique("e2e-historian"),
			bridgeID:  stacktest.Unique("e2e-bridge"),
			mqttURL:   stacktest.MQTTURL(t),
			brokers:   strings.Join(cluster.Brokers(), ","),
			influxURL: stacktest.InfluxURL(t),
		}
		t.Cleanup(func() { stacktest.ForgetSession(t, p.bridgeID) })
		return p
	}
	env := func(t *testing.T, password string) []string {
		file := filepath.Join(t.TempDir(), "ingest.password")
		if err := os.WriteFile(file, []byte(password+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		return []string{"PDM_KAFKA_TLS_CA_FILE=" + cluster.CAFile(), "PDM_KAFKA_SASL_MECHANISM=" + kafkaconn.ScramSHA512,
			"PDM_KAFKA_SASL_USERNAME=ingest", "PDM_KAFKA_SASL_PASSWORD_FILE=" + file}
	}

	t.Run("password", func(t *testing.T) {
		p := secured(t)
		e := env(t, cluster.Password("ingest"))
		bridge := p.launch(t, e, ingestBin, "bridge")
		historian := p.launch(t, e, ingestBin, "historian")
		stacktest.WaitReady(t, "http://"+bridge.admin+"/readyz")
		stacktest.WaitReady(t, "http://"+historian.admin+"/readyz")
		const n = 50
		assets := []string{"pump-1", "motor-1"}
		want := publish(t, p, assets, n)

		got := readAll(t, admin, p.topic, len(want), 30*time.Second)
		seen := map[string]bool{}
		for _, m := range got {
			items, err := wire.DefaultLimits().Decode(m.Value, time.Now())
			if err != nil {
				t.Fatalf("record %d@%d: %v", m.Partition, m.Offset, err)
			}
			for _, it := range items {
				k := fmt.Sprintf("%s/%d", it.Reading.Asset, it.Reading.Seq)
				if w, ok := want[k]; !ok || seen[k] || !sameReading(it.Reading, w) {
					t.Errorf("the secured topic has %s (%+v), published: %v, seen before: %v", k, it.Reading, ok, seen[k])
				}
				seen[k] = true
			}
		}
		if len(seen) != len(want) {
			t.Fatalf("the secured topic has %d of the %d readings published", len(seen), len(want))
		}
		waitPoints(t, p, assets, n)
		t.Logf("%d readings published = in the secured topic = in InfluxDB", len(want))
	})

	t.Run("wrong password", func(t *testing.T) {
		p := secured(t)
		const wrong = "not-the-ingest-password"
		e := env(t, wrong)
		bridge := p.launch(t, e, ingestBin, "bridge")
		historian := p.launch(t, e, ingestBin, "historian")
		stacktest.WaitReady(t, "http://"+bridge.admin+"/readyz") // MQTT is up; its Kafka writes fail
		publish(t, p, []string{"pump-1"}, 3)
		for _, s := range []struct {
			name string
			svc  *service
		}{{"bridge", bridge}, {"historian", historian}} {
			stacktest.Eventually(t, 30*time.Second, func() bool { return strings.Contains(s.svc.Log(), "SASL Authentication") },
				"the %s's log does not name SASL authentication:\n%s", s.name, func() any { return s.svc.Log() })
			if log := s.svc.Log(); strings.Contains(log, wrong) || strings.Contains(log, cluster.Password("ingest")) {
				t.Errorf("the %s's log shows a password:\n%s", s.name, log)
			}
		}
		code, body := readyz(t, historian)
		if code != http.StatusServiceUnavailable || !strings.Contains(body, "SASL Authentication") {
			t.Errorf("historian /readyz: %d %q, want 503 naming SASL authentication", code, body)
		}
		if strings.Contains(body, wrong) {
			t.Errorf("historian /readyz shows the password: %q", body)
		}
		if got := readAll(t, admin, p.topic, 0, 5*time.Second); len(got) != 0 {
			t.Errorf("%d records reached the secured topic with a wrong password", len(got))
		}
	})
}

// publish publishes n readings per asset, one message each, at QoS 1 to
// the site's readings topics and returns them keyed by asset/seq.
func publish(t *testing.T, p *pipeline, assets []string, n int) map[string]wire.Reading {
	t.Helper()
	c := mqtt.NewClient(stacktest.MQTTOptions(t).SetClientID(stacktest.Unique("publish")))
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("publish: connect: %v", tok.Error())
	}
	defer c.Disconnect(100)
	start := time.Now().Add(-time.Minute).Truncate(time.Millisecond)
	out := map[string]wire.Reading{}
	for _, a := range assets {
		for i := 1; i <= n; i++ {
			r := wire.Reading{Site: p.site, Asset: a, Seq: uint64(i), Time: start.Add(time.Duration(i) * 100 * time.Millisecond),
				Sensors: map[string]float64{"vibration_rms": float64(i) / 8, "bearing_temp": 50}}
			b, err := r.MarshalJSON()
			if err != nil {
				t.Fatal(err)
			}
			if tok := c.Publish("pdm/v1/"+p.site+"/"+a+"/readings", 1, false, b); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
				t.Fatalf("publish %s/%d: %v", a, i, tok.Error())
			}
			out[fmt.Sprintf("%s/%d", a, i)] = r
		}
	}
	return out
}

// readAll reads topic from the start through conn until it has want
// records, then a second more for records that should not be there, or
// until timeout has passed.
func readAll(t *testing.T, conn *kafkaconn.Conn, topic string, want int, timeout time.Duration) []kafka.Message {
	t.Helper()
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: conn.Brokers, Dialer: conn.Dialer(0), Topic: topic,
		GroupID: stacktest.Unique("e2e-check"), StartOffset: kafka.FirstOffset, MaxWait: 100 * time.Millisecond})
	defer r.Close()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var out []kafka.Message
	for {
		if len(out) == want && want > 0 {
			var more context.CancelFunc
			ctx, more = context.WithTimeout(ctx, time.Second)
			defer more()
		}
		m, err := r.ReadMessage(ctx)
		if errors.Is(err, context.DeadlineExceeded) {
			return out
		}
		if err != nil {
			t.Fatalf("read %s: %v", topic, err)
		}
		out = append(out, m)
	}
}

func readyz(t *testing.T, s *service) (int, string) {
	t.Helper()
	resp, err := http.Get("http://" + s.admin + "/readyz")
	if err != nil {
		t.Fatalf("readyz: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}
