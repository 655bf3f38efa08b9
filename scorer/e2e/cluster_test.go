package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/pdmstream/pdm/pdmkit/stacktest"
)

// TestScorersOnAThreeBrokerCluster: two scorers on a three-broker KRaft
// cluster of the test's own (replication factor 3, min.insync.replicas 2).
// The scorers create the registry topic themselves, replicated by the
// cluster's default, not 1. Mid-stream the broker leading the registry
// topic is killed with SIGKILL: every reading is still scored, and a new
// model version uploaded and activated afterwards (a hot swap, through
// the registry topic's new leader) reaches both scorers and scores the
// readings that follow.
func TestScorersOnAThreeBrokerCluster(t *testing.T) {
	cluster := stacktest.StartKafka(t, 3) // skips under -short
	scorerBin := stacktest.Build(t, "github.com/pdmstream/pdm/scorer/cmd/scorer")[0]
	brokers := cluster.Brokers()
	readings, scores, alerts := cluster.Topic("readings", 6), cluster.Topic("scores", 6), cluster.Topic("alerts", 1)
	models := stacktest.Unique("models") // created by the scorers
	group := stacktest.Unique("cluster")

	var apis []string
	for i := range 2 {
		addr := stacktest.FreeAddr(t)
		apis = append(apis, "http://"+addr)
		stacktest.Start(t, append(cluster.Env("scorer"), "PDM_API_TOKEN=e2e", trustTestKey()),
			scorerBin, "serve", "-log.level", "warn", "-kafka.group", group, "-kafka.readings", readings,
			"-kafka.scores", scores, "-kafka.alerts", alerts, "-kafka.models", models, "-kafka.retrain", "",
			"-kafka.session-timeout", "6s", "-mqtt.url", "", "-influx.url", "", "-http.addr", addr,
			"-mqtt.client-id", fmt.Sprintf("cluster-%d", i))
		stacktest.WaitReady(t, apis[i]+"/v2/health/ready")
	}
	deploy := func(api, version string, artifact []byte) {
		t.Helper()
		if code, body := call(t, "PUT", api+"/v1/models/bearing/versions/"+version, "e2e", artifact); code != http.StatusCreated {
			t.Fatalf("upload %s: %d %s", version, code, body)
		}
		if code, body := call(t, "POST", api+"/v1/models/bearing/activate", "e2e", []byte(`{"version":"`+version+`","default":true}`)); code != http.StatusOK {
			t.Fatalf("activate %s: %d %s", version, code, body)
		}
		for _, a := range apis {
			stacktest.Eventually(t, 30*time.Second, func() bool {
				code, body := call(t, "GET", a+"/v1/models/bearing", "e2e", nil)
				var m struct {
					Active string `json:"active"`
				}
				return code == http.StatusOK && json.Unmarshal(body, &m) == nil && m.Active == version
			}, "%s does not serve bearing %s", a, version)
		}
	}
	deploy(apis[0], "1", forecaster(t))

	// The registry topic: replicated three ways, and who leads it.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := kafka.DialContext(ctx, "tcp", brokers[1])
	if err != nil {
		t.Fatal(err)
	}
	parts, err := conn.ReadPartitions(models)
	conn.Close()
	if err != nil || len(parts) != 1 {
		t.Fatalf("partitions of %s: %v %v", models, parts, err)
	}
	if n := len(parts[0].Replicas); n != 3 {
		t.Fatalf("the registry topic has %d replicas, want the cluster's default of 3", n)
	}
	leader := cluster.Leader(models, 0)

	assets := []string{"c1", "c2", "c3", "c4"}
	w := &kafka.Writer{Addr: kafka.TCP(brokers...), Topic: readings, Balancer: &kafka.Murmur2Balancer{},
		RequiredAcks: kafka.RequireAll, BatchTimeout: time.Millisecond, MaxAttempts: 20}
	defer w.Close()
	// Every score record of each reading: a reading may be scored twice
	// when its partition is replayed from the last commit (the group's
	// coordinator may have been the killed broker); ids are deterministic,
	// so a replay repeats a record rather than inventing one.
	versions := map[string]map[string]bool{}
	scored := func(n int) {
		t.Helper()
		stacktest.Eventually(t, 2*time.Minute, func() bool {
			for _, m := range readAll(t, cluster.Conn(""), scores, 6, 2*n, 3*time.Second) {
				var s struct {
					ID      string `json:"id"`
					Version string `json:"version"`
				}
				if json.Unmarshal(m.Value, &s) == nil {
					if versions[s.ID] == nil {
						versions[s.ID] = map[string]bool{}
					}
					versions[s.ID][s.Version] = true
				}
			}
			return len(versions) >= n
		}, "%d of %d readings scored with a broker down", func() any { return len(versions) }, n)
	}

	sendMachine(t, w, "cluster", assets, 1, 200)
	cluster.Kill(leader)
	killed := time.Now()
	t.Logf("broker %d, leader of the registry topic, killed with SIGKILL after 200 readings per asset", leader)
	sendMachine(t, w, "cluster", assets, 201, 400)
	// The swap comes once every reading sent so far is scored: a reading
	// still waiting for its partition's new leader when version 2 arrives
	// is rightly scored by version 2.
	scored(400 * len(assets))
	t.Logf("all %d readings sent before the swap scored %.1fs after the kill", 400*len(assets), time.Since(killed).Seconds())
	deploy(apis[1], "2", forecasterVersion(t, "2", "1"))
	sendMachine(t, w, "cluster", assets, 401, 500)

	const total = 500
	scored(total * len(assets))
	for _, a := range assets {
		for seq := 1; seq <= total; seq++ {
			v, ok := versions[fmt.Sprintf("%s/%d", a, seq)]
			switch {
			case !ok:
				t.Fatalf("reading %s/%d not scored", a, seq)
			case seq <= 400 && !v["1"]:
				t.Errorf("reading %s/%d, scored before the swap, never scored by version 1: %v", a, seq, v)
			case seq > 400 && (len(v) != 1 || !v["2"]):
				t.Errorf("reading %s/%d, sent after the swap to 2, scored by %v", a, seq, v)
			}
		}
	}
}
