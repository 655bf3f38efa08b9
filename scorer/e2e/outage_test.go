package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/pdmstream/pdm/pdmkit/stacktest"
)

// TestScorerWaitsOutAKafkaOutage: a scorer whose only Kafka broker is
// killed for 20 s keeps running, says in its readiness that it waits for
// Kafka, and once the broker is back scores the readings of before and
// after the outage, every one of them.
func TestScorerWaitsOutAKafkaOutage(t *testing.T) {
	cluster := stacktest.StartKafka(t, 1) // skips under -short
	_, _, scorerBin := binaries(t)
	brokers := cluster.Brokers()
	readings, scores := cluster.Topic("readings", 3), cluster.Topic("scores", 3)
	alerts, models := cluster.Topic("alerts", 1), cluster.Topic("models", 1)
	addr := stacktest.FreeAddr(t)
	scorer := stacktest.Start(t, cluster.Env("scorer"), scorerBin, "serve", "-log.level", "warn",
		"-kafka.brokers", strings.Join(brokers, ","), "-kafka.group", stacktest.Unique("outage"), "-kafka.readings", readings,
		"-kafka.scores", scores, "-kafka.alerts", alerts, "-kafka.models", models, "-kafka.session-timeout", "6s",
		"-mqtt.url", "", "-influx.url", "", "-http.addr", addr)
	ready := "http://" + addr + "/v2/health/ready"
	stacktest.WaitReady(t, ready)

	assets := []string{"o1", "o2", "o3"}
	w := &kafka.Writer{Addr: kafka.TCP(brokers...), Topic: readings, Balancer: &kafka.Murmur2Balancer{},
		RequiredAcks: kafka.RequireAll, BatchTimeout: time.Millisecond}
	defer w.Close()
	send := func(from, to uint64) { sendMachine(t, w, "outage", assets, from, to) }
	scoredIDs := func(want int) map[string]bool {
		ids := map[string]bool{}
		for _, m := range readAll(t, cluster.Conn(""), scores, 3, want, 3*time.Second) {
			var s struct {
				ID string `json:"id"`
			}
			if json.Unmarshal(m.Value, &s) == nil {
				ids[s.ID] = true
			}
		}
		return ids
	}
	send(1, 100)
	stacktest.Eventually(t, time.Minute, func() bool { return len(scoredIDs(300)) >= 300 }, "readings before the outage not scored")

	cluster.Kill(0)
	stacktest.Eventually(t, 15*time.Second, func() bool {
		resp, err := http.Get(ready)
		if err != nil {
			return false
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp.StatusCode != http.StatusOK && strings.Contains(string(body), "kafka")
	}, "readiness does not say the scorer waits for Kafka")
	time.Sleep(20 * time.Second)
	if scorer.Exited() {
		t.Fatalf("the scorer exited while Kafka was away:\n%s", scorer.Log())
	}
	cluster.Restart(0)
	send(101, 200)
	var ids map[string]bool
	stacktest.Eventually(t, 2*time.Minute, func() bool { ids = scoredIDs(600); return len(ids) >= 600 },
		"%d of 600 readings scored after the outage", len(ids))
	for _, a := range assets {
		for seq := 1; seq <= 200; seq++ {
			if !ids[fmt.Sprintf("%s/%d", a, seq)] {
				t.Fatalf("reading %s/%d not scored", a, seq)
			}
		}
	}
	stacktest.WaitReady(t, ready)
	if scorer.Exited() {
		t.Fatalf("the scorer exited:\n%s", scorer.Log())
	}
}
