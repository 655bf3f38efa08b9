package stream_test

import (
	"context"
	"fmt"
	"sort"
	"testing"
	"time"

	"github.com/pdmstream/pdm/pdmkit/alert"
	"github.com/pdmstream/pdm/pdmkit/stacktest"
	"github.com/pdmstream/pdm/pdmkit/wire"
	"github.com/pdmstream/pdm/scorer/internal/stream"
	"github.com/segmentio/kafka-go"
)

// Every reading is scored once, alerts follow the scores, and offsets are
// committed to the end.
func TestScoresExactlyOnce(t *testing.T) {
	tp := newTopics(t, 3)
	assets := assetNames(6)
	const perAsset = 200
	n := len(assets) * perAsset
	p := newProducer(t, tp.kc, tp.readings)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := p.send(ctx, assets, 1, perAsset); err != nil {
		t.Fatal(err)
	}
	// The same readings again: upstream at-least-once duplicates.
	if err := p.send(ctx, assets[:2], 150, 160); err != nil {
		t.Fatal(err)
	}
	scores := collect(t, tp.kc, tp.scores, 3)
	alerts := collect(t, tp.kc, tp.alerts, 3)
	start(t, tp, onlineOnly{}, 100)
	stacktest.Eventually(t, 60*time.Second, func() bool { return scores.len() >= n }, "%d of %d scores", scores.len(), n)
	stacktest.Eventually(t, 10*time.Second, func() bool { return alerts.len() >= 2*len(assets) }, "%d alert events", alerts.len())

	got := scoresOf(t, scores.snapshot())
	seen := map[string]int{}
	for _, s := range got {
		seen[s.ID]++
		if want := load(s.Seq); s.Score != want || s.Version != "0" || s.Model != "online" {
			t.Fatalf("score %+v, want %v by online 0", s, want)
		}
		if s.ID != stream.ScoreID(s.Asset, s.Seq) || len(s.Contributions) != 2 || s.Site != "plant-1" {
			t.Fatalf("score content %+v", s)
		}
	}
	if len(seen) != n || len(got) != n {
		t.Fatalf("%d records, %d distinct ids, want %d of each", len(got), len(seen), n)
	}
	evs := alertsOf(t, alerts.snapshot())
	byAsset := map[string][]string{}
	for _, a := range evs {
		byAsset[a.Asset] = append(byAsset[a.Asset], fmt.Sprintf("%s@%d", a.State, a.LastSeq))
		if a.ID != alert.ID(a.Asset, alert.KindAnomaly, 100) || a.FirstSeq != 100 || len(a.TopSensors) != 2 || a.TopSensors[0].Name != "load" {
			t.Fatalf("alert %+v", a)
		}
	}
	for _, a := range assets {
		if got := fmt.Sprint(byAsset[a]); got != "[opened@102 resolved@122]" {
			t.Errorf("%s alert events %s, want one opened at 102 and resolved at 122", a, got)
		}
	}
	// Offsets are committed to the end of every partition.
	stacktest.Eventually(t, 10*time.Second, func() bool { return committedAll(t, tp) }, "offsets not committed to the end")
}

// committedAll reports whether the group's committed offsets reached the
// end of every partition of the readings topic.
func committedAll(t testing.TB, tp topics) bool {
	t.Helper()
	client := tp.kc.Client(5 * time.Second)
	ctx := context.Background()
	meta, err := client.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{tp.readings}})
	if err != nil || len(meta.Topics) != 1 {
		return false
	}
	var ids []int
	var reqs []kafka.OffsetRequest
	for _, p := range meta.Topics[0].Partitions {
		ids = append(ids, p.ID)
		reqs = append(reqs, kafka.LastOffsetOf(p.ID))
	}
	sort.Ints(ids)
	ends, err := client.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{tp.readings: reqs}})
	if err != nil {
		return false
	}
	got, err := client.OffsetFetch(ctx, &kafka.OffsetFetchRequest{GroupID: tp.group, Topics: map[string][]int{tp.readings: ids}})
	if err != nil {
		return false
	}
	end := map[int]int64{}
	for _, po := range ends.Topics[tp.readings] {
		end[po.Partition] = po.LastOffset
	}
	for _, po := range got.Topics[tp.readings] {
		if po.CommittedOffset != end[po.Partition] {
			return false
		}
	}
	return true
}

// Readings that reach Kafka out of order, as two bridges sharing a
// subscription write them (blocks of an asset's readings swapped), are
// each scored once and in seq order, and the alerts open and resolve at
// the same readings as in order. A reading that never comes is given up
// after the reorder wait; when it does come later it is not scored.
func TestReadingsOutOfOrder(t *testing.T) {
	tp := newTopics(t, 3)
	assets := assetNames(4)
	const perAsset, block, missing = 200, 10, 77
	n := len(assets)*perAsset - 1
	w := newProducer(t, tp.kc, tp.readings).w
	reading := func(a string, seq uint64) kafka.Message {
		r := wire.Reading{Site: "plant-1", Asset: a, Seq: seq, Time: t0.Add(time.Duration(seq) * time.Second),
			Sensors: map[string]float64{"load": load(seq), "temp": 40 + float64(seq%7)}}
		b, err := r.MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		return kafka.Message{Key: []byte(a), Value: b}
	}
	var msgs []kafka.Message
	for ai, a := range assets {
		for from := uint64(1); from <= perAsset; from += 2 * block {
			for _, start := range []uint64{from + block, from} { // the later block first
				for seq := start; seq < start+block && seq <= perAsset; seq++ {
					if ai == 0 && seq == missing {
						continue
					}
					msgs = append(msgs, reading(a, seq))
				}
			}
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := w.WriteMessages(ctx, msgs...); err != nil {
		t.Fatal(err)
	}
	scores := collect(t, tp.kc, tp.scores, 3)
	alerts := collect(t, tp.kc, tp.alerts, 3)
	startWith(t, tp, onlineOnly{}, func(o *stream.Options) { o.ReorderWait = 500 * time.Millisecond }, nil)
	stacktest.Eventually(t, 60*time.Second, func() bool { return scores.len() >= n }, "%d of %d scores", func() any { return scores.len() }, n)
	// The missing reading, long after its gap was given up.
	if err := w.WriteMessages(ctx, reading(assets[0], missing)); err != nil {
		t.Fatal(err)
	}
	stacktest.Eventually(t, 10*time.Second, func() bool { return committedAll(t, tp) }, "offsets not committed to the end")
	stacktest.Eventually(t, 10*time.Second, func() bool { return alerts.len() >= 2*len(assets) }, "%d alert events", func() any { return alerts.len() })

	last := map[string]uint64{}
	seen := map[string]bool{}
	for _, s := range scoresOf(t, scores.snapshot()) {
		if seen[s.ID] {
			t.Fatalf("%s scored twice", s.ID)
		}
		seen[s.ID] = true
		if s.Seq <= last[s.Asset] {
			t.Fatalf("%s scored after %s/%d: out of order", s.ID, s.Asset, last[s.Asset])
		}
		last[s.Asset] = s.Seq
	}
	if len(seen) != n || seen[stream.ScoreID(assets[0], missing)] {
		t.Fatalf("%d readings scored, want %d: every one but the late %s/%d", len(seen), n, assets[0], missing)
	}
	byAsset := map[string][]string{}
	for _, a := range alertsOf(t, alerts.snapshot()) {
		byAsset[a.Asset] = append(byAsset[a.Asset], fmt.Sprintf("%s@%d", a.State, a.LastSeq))
	}
	for _, a := range assets {
		if got := fmt.Sprint(byAsset[a]); got != "[opened@102 resolved@122]" {
			t.Errorf("%s alert events %s, want one opened at 102 and resolved at 122", a, got)
		}
	}
}
