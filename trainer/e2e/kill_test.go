package e2e

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/pdmstream/pdm/pdmkit/stacktest"
	"github.com/pdmstream/pdm/pdmkit/wire"
)

// TestKilledTrainerPublishesNothing: a trainer killed with SIGKILL while
// its job trains publishes nothing — the registry has no version — and,
// its request's offset not committed, the next member of the group runs
// the job to the end and publishes one version.
func TestKilledTrainerPublishesNothing(t *testing.T) {
	brokers := stacktest.KafkaBrokers(t) // skips under -short before the build
	bins := stacktest.Build(t, "github.com/pdmstream/pdm/scorer/cmd/scorer", "github.com/pdmstream/pdm/trainer/cmd/trainer")
	scorerBin, trainerBin := bins[0], bins[1]
	influxURL := stacktest.InfluxURL(t)
	bucket := stacktest.InfluxBucket(t)
	site := stacktest.Unique("kill")

	// Two days of one pump's readings, a second apart, ending now: enough
	// that its job trains for a second or more.
	stacktest.InfluxWrite(t, influxURL, bucket, pumpLines(site, "p1", 2*86400, time.Now().Truncate(time.Second)))
	scorer := startScorer(t, scorerBin, "kill", brokers, influxURL, bucket)

	requests := stacktest.Topic(t, "kill-retrain", 1)
	group := stacktest.Unique("kill-trainer")
	trainer := func() (*stacktest.Proc, string) {
		addr := stacktest.FreeAddr(t)
		p := stacktest.Start(t, []string{"PDM_API_TOKEN=" + token, trainerKey(t)}, trainerBin, "serve", "-log.level", "info",
			"-kafka.brokers", strings.Join(brokers, ","), "-kafka.retrain", requests, "-kafka.group", group,
			"-influx.url", influxURL, "-influx.bucket", bucket, "-scorer.url", "http://"+scorer, "-http.addr", addr, "-data-dir", t.TempDir(),
			"-job.site", site, "-job.step", "1s", "-job.history", "72h", "-job.min-rows", "500", "-job.promote.min-detection", "0.25")
		stacktest.WaitReady(t, "http://"+addr+"/readyz")
		return p, addr
	}
	first, _ := trainer()

	kc := stacktest.KafkaConn(t)
	w := &kafka.Writer{Addr: kafka.TCP(kc.Brokers...), Transport: kc.Transport(), Topic: requests, Balancer: &kafka.Hash{}}
	defer w.Close()
	b, _ := json.Marshal(wire.TrainingRequest{Site: site, Asset: "p1", Reason: wire.ReasonManual, By: "test", At: time.Now().UTC()})
	if err := w.WriteMessages(context.Background(), kafka.Message{Key: []byte("p1"), Value: b}); err != nil {
		t.Fatal(err)
	}

	// Killed while it trains.
	stacktest.Eventually(t, 2*time.Minute, func() bool { return strings.Contains(first.Log(), "msg=training") },
		"the first trainer never started training")
	first.Kill(t)
	if strings.Contains(first.Log(), "job ended") {
		t.Fatalf("the job ended before the kill; the test needs a longer training:\n%s", first.Log())
	}
	if code := get(t, "http://"+scorer+"/v1/models/p1", nil); code != 404 {
		t.Fatalf("the registry answers %d for the pump's model after its trainer was killed mid-job", code)
	}

	// The next member runs the request to the end.
	second, addr := trainer()
	var m model
	stacktest.Eventually(t, 3*time.Minute, func() bool {
		return get(t, "http://"+scorer+"/v1/models/p1", &m) == 200 && m.Active != ""
	}, "the second trainer published no version")
	// The version is published before the job's record ends.
	var list jobList
	stacktest.Eventually(t, 30*time.Second, func() bool {
		get(t, "http://"+addr+"/v1/jobs", &list)
		return len(list.Jobs) == 1 && list.Jobs[0].State == "promoted"
	}, "the second trainer has not one promoted job:\n%s", second.Log())
	if len(m.Versions) != 1 {
		t.Fatalf("versions after one kill and one finished job: %+v", m.Versions)
	}
	t.Logf("killed mid-training; the next trainer promoted %s", m.Active)
}
