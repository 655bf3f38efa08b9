package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/pdmstream/pdm/pdmkit/stacktest"
	"github.com/pdmstream/pdm/pdmkit/wire"
)

// TestTrainersShareTheRequests: two trainer instances in one consumer
// group split the request topic's partitions between them, so requests for
// assets on different partitions are trained by different instances, and
// every asset gets exactly one job and one active version, with no
// coordination beyond Kafka's group.
func TestTrainersShareTheRequests(t *testing.T) {
	brokers := stacktest.KafkaBrokers(t) // skips under -short before the build
	bins := stacktest.Build(t, "github.com/pdmstream/pdm/scorer/cmd/scorer", "github.com/pdmstream/pdm/trainer/cmd/trainer")
	scorerBin, trainerBin := bins[0], bins[1]
	influxURL := stacktest.InfluxURL(t)
	bucket := stacktest.InfluxBucket(t)
	site := stacktest.Unique("scale")

	// Assets whose keys cover the three partitions of the request topic
	// (kafka.Hash, as the scorer and the trainer's API publish them).
	const partitions = 3
	var assets []string
	covered := map[int]bool{}
	for i := 0; len(covered) < partitions || len(assets) < 4; i++ {
		a := fmt.Sprintf("pump-%d", i)
		p := (&kafka.Hash{}).Balance(kafka.Message{Key: []byte(a)}, 0, 1, 2)
		if !covered[p] || len(covered) == partitions {
			covered[p] = true
			assets = append(assets, a)
		}
	}

	// Forty minutes of each asset's readings, a second apart, ending now.
	now := time.Now().Truncate(time.Second)
	for _, a := range assets {
		stacktest.InfluxWrite(t, influxURL, bucket, pumpLines(site, a, 2400, now))
	}
	scorer := startScorer(t, scorerBin, "scale", brokers, influxURL, bucket)

	requests := stacktest.Topic(t, "scale-retrain", partitions)
	group := stacktest.Unique("scale-trainer")
	var trainers []string
	for range 2 {
		addr := stacktest.FreeAddr(t)
		stacktest.Start(t, []string{"PDM_API_TOKEN=" + token, trainerKey(t)}, trainerBin, "serve", "-log.level", "info",
			"-kafka.brokers", strings.Join(brokers, ","), "-kafka.retrain", requests, "-kafka.group", group,
			"-influx.url", influxURL, "-influx.bucket", bucket, "-scorer.url", "http://"+scorer, "-http.addr", addr, "-data-dir", t.TempDir(),
			"-job.site", site, "-job.step", "1s", "-job.history", "2h", "-job.min-rows", "500", "-job.epochs", "40",
			"-job.promote.min-detection", "0.25")
		stacktest.WaitReady(t, "http://"+addr+"/readyz")
		trainers = append(trainers, addr)
	}

	// Both instances hold partitions before any request is published.
	kc := stacktest.KafkaConn(t)
	client := kc.Client(0)
	stacktest.Eventually(t, time.Minute, func() bool {
		res, err := client.DescribeGroups(context.Background(), &kafka.DescribeGroupsRequest{GroupIDs: []string{group}})
		if err != nil || len(res.Groups) != 1 || res.Groups[0].GroupState != "Stable" || len(res.Groups[0].Members) != 2 {
			return false
		}
		for _, m := range res.Groups[0].Members {
			n := 0
			for _, tp := range m.MemberAssignments.Topics {
				n += len(tp.Partitions)
			}
			if n == 0 {
				return false
			}
		}
		return true
	}, "the two trainers did not share the request topic's partitions")

	w := &kafka.Writer{Addr: kafka.TCP(kc.Brokers...), Transport: kc.Transport(), Topic: requests, Balancer: &kafka.Hash{}}
	defer w.Close()
	for _, a := range assets {
		b, _ := json.Marshal(wire.TrainingRequest{Site: site, Asset: a, Reason: wire.ReasonManual, By: "test", At: time.Now().UTC()})
		if err := w.WriteMessages(context.Background(), kafka.Message{Key: []byte(a), Value: b}); err != nil {
			t.Fatal(err)
		}
	}

	for _, a := range assets {
		var m model
		stacktest.Eventually(t, 3*time.Minute, func() bool {
			return get(t, "http://"+scorer+"/v1/models/"+a, &m) == 200 && m.Active != ""
		}, "no active version of "+a)
	}
	// A version is published before its job's record ends.
	ended := func(addr string) bool {
		var list jobList
		get(t, "http://"+addr+"/v1/jobs", &list)
		for _, j := range list.Jobs {
			if j.State == "running" {
				return false
			}
		}
		return true
	}
	stacktest.Eventually(t, 30*time.Second, func() bool { return ended(trainers[0]) && ended(trainers[1]) }, "jobs still running")
	var all []string
	for i, addr := range trainers {
		var list jobList
		get(t, "http://"+addr+"/v1/jobs", &list)
		if len(list.Jobs) == 0 {
			t.Errorf("trainer %d ran no job: the requests did not spread", i+1)
		}
		for _, j := range list.Jobs {
			if j.State != "promoted" {
				t.Errorf("trainer %d job %s: %s (%s)", i+1, j.ID, j.State, j.Reason)
			}
			all = append(all, j.ID)
		}
		t.Logf("trainer %d: %d jobs", i+1, len(list.Jobs))
	}
	if len(all) != len(assets) {
		t.Fatalf("%d jobs for %d assets: %v", len(all), len(assets), all)
	}
	for _, a := range assets {
		if !slices.ContainsFunc(all, func(id string) bool { return strings.HasPrefix(id, a+"-") }) {
			t.Errorf("no job for %s among %v", a, all)
		}
	}
}
