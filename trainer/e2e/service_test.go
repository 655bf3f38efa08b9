package e2e

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/pdmstream/pdm/pdmkit/stacktest"
	"github.com/pdmstream/pdm/pdmkit/wire"
)

// proxy forwards TCP connections from addr to upstream once started, so a
// test can hold a server "down" (nothing listening) and bring it back.
type proxy struct {
	addr, upstream string
	mu             sync.Mutex
	l              net.Listener
}

func (p *proxy) start(t *testing.T) {
	t.Helper()
	l, err := net.Listen("tcp", p.addr)
	if err != nil {
		t.Fatal(err)
	}
	p.mu.Lock()
	p.l = l
	p.mu.Unlock()
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				u, err := net.Dial("tcp", p.upstream)
				if err != nil {
					return
				}
				defer u.Close()
				go func() { _, _ = io.Copy(u, c) }()
				_, _ = io.Copy(c, u)
			}()
		}
	}()
}

type jobList struct {
	Jobs []struct {
		ID     string `json:"id"`
		State  string `json:"state"`
		Reason string `json:"reason"`
	} `json:"jobs"`
}

// TestTrainerServiceOneJobThroughAnOutage: two requests for one asset make
// one job; while InfluxDB is unreachable the job fails with a clear reason,
// is retried with backoff, logs one line per attempt about InfluxDB and
// publishes nothing; once InfluxDB answers, the same job trains and
// promotes version 1.
func TestTrainerServiceOneJobThroughAnOutage(t *testing.T) {
	brokers := stacktest.KafkaBrokers(t) // skips under -short before the build
	bins := stacktest.Build(t, "github.com/pdmstream/pdm/scorer/cmd/scorer", "github.com/pdmstream/pdm/trainer/cmd/trainer")
	scorerBin, trainerBin := bins[0], bins[1]
	influxURL := stacktest.InfluxURL(t)
	bucket := stacktest.InfluxBucket(t)
	site := stacktest.Unique("svc")

	// An hour of one pump's readings, a second apart, ending now.
	stacktest.InfluxWrite(t, influxURL, bucket, pumpLines(site, "p1", 3600, time.Now().Truncate(time.Second)))
	scorer := startScorer(t, scorerBin, "svc", brokers, influxURL, bucket)

	// The trainer reaches InfluxDB through a proxy that is not up yet.
	px := &proxy{addr: stacktest.FreeAddr(t), upstream: strings.TrimPrefix(influxURL, "http://")}
	requests := stacktest.Topic(t, "svc-retrain", 3)
	trainer := stacktest.FreeAddr(t)
	proc := stacktest.Start(t, []string{"PDM_API_TOKEN=" + token, trainerKey(t)}, trainerBin, "serve", "-log.level", "info",
		"-kafka.brokers", strings.Join(brokers, ","), "-kafka.retrain", requests, "-kafka.group", stacktest.Unique("svc-trainer"),
		"-influx.url", "http://"+px.addr, "-influx.bucket", bucket, "-influx.retry-for", "2s",
		"-scorer.url", "http://"+scorer, "-http.addr", trainer, "-data-dir", t.TempDir(),
		"-job.site", site, "-job.step", "1s", "-job.history", "2h", "-job.min-rows", "500", "-job.epochs", "40",
		"-job.promote.min-detection", "0.25")
	stacktest.WaitReady(t, "http://"+trainer+"/readyz")

	// Two requests for the pump, a moment apart.
	kc := stacktest.KafkaConn(t)
	w := &kafka.Writer{Addr: kafka.TCP(kc.Brokers...), Transport: kc.Transport(), Topic: requests, Balancer: &kafka.Hash{}}
	defer w.Close()
	at := time.Now().UTC()
	for k := range 2 {
		b, _ := json.Marshal(wire.TrainingRequest{Site: site, Asset: "p1", Reason: wire.ReasonManual, By: "test", At: at.Add(time.Duration(k) * time.Millisecond)})
		if err := w.WriteMessages(context.Background(), kafka.Message{Key: []byte("p1"), Value: b}); err != nil {
			t.Fatal(err)
		}
	}

	// InfluxDB down: the job fails and is retried; nothing is published.
	stacktest.Eventually(t, time.Minute, func() bool { return strings.Count(proc.Log(), "job could not finish") >= 2 },
		"the job was not retried while InfluxDB was down")
	var list jobList
	get(t, "http://"+trainer+"/v1/jobs", &list)
	if len(list.Jobs) != 1 || list.Jobs[0].State != "failed" || !strings.Contains(list.Jobs[0].Reason, "unavailable") {
		t.Fatalf("jobs while InfluxDB is down: %+v", list.Jobs)
	}
	if code := get(t, "http://"+scorer+"/v1/models/p1", nil); code != 404 {
		t.Fatalf("the registry answers %d for the pump's model while its job cannot read history", code)
	}

	// InfluxDB back: the same job trains and promotes version 1.
	px.start(t)
	var m model
	stacktest.Eventually(t, 2*time.Minute, func() bool {
		return get(t, "http://"+scorer+"/v1/models/p1", &m) == 200 && m.Active != ""
	}, "no version after InfluxDB came back")
	// The version is published before the job's record ends and the
	// second request is read.
	stacktest.Eventually(t, 30*time.Second, func() bool {
		get(t, "http://"+trainer+"/v1/jobs", &list)
		return len(list.Jobs) == 1 && list.Jobs[0].State == "promoted" &&
			strings.Contains(proc.Log(), "training request satisfied by a later job")
	}, "two requests for one asset: not one promoted job with the second request satisfied by it")
	log := proc.Log()
	attempts := strings.Count(log, "job could not finish") + 1
	failing := strings.Count(log, "influxdb is failing")
	if failing < 1 || failing > attempts {
		t.Errorf("%d lines about InfluxDB failing over %d attempts", failing, attempts)
	}
	if n := strings.Count(log, "training request satisfied by a later job"); n != 1 {
		t.Errorf("the second request: %d 'satisfied' lines", n)
	}
	t.Logf("one job %s over %d attempts, version %s", list.Jobs[0].ID, attempts, m.Active)
}
