package stream_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/pdmstream/pdm/pdmkit/alert"
	"github.com/pdmstream/pdm/pdmkit/stacktest"
	"github.com/pdmstream/pdm/scorer/internal/stream"
)

// Three instances share the partitions; one dies mid-stream after writing
// a batch and before committing it. Its partitions move to the others,
// which replay from the last commit: every reading is scored, replayed
// records carry the ids and content they had, and no alert appears twice
// under different ids.
func TestKillOneOfThree(t *testing.T) {
	tp := newTopics(t, 6)
	scores := collect(t, tp.kc, tp.scores, 6)
	alerts := collect(t, tp.kc, tp.alerts, 3)
	var insts []*instance
	for range 3 {
		insts = append(insts, start(t, tp, onlineOnly{}, 500))
	}
	assets := assetNames(12)
	st := stream1(t, newProducer(t, tp.kc, tp.readings), assets, 10, 0)
	// Stop production once past the second alert episode.
	stacktest.Eventually(t, 60*time.Second, func() bool { return st.sent() >= 300 }, "producer stalled at %d", st.sent())
	stacktest.Eventually(t, 60*time.Second, func() bool { return scores.len() >= 2000 }, "scoring did not start: %d", scores.len())
	if err := insts[0].crash(); err != nil {
		t.Fatalf("instance 0: %v", err)
	}
	stacktest.Eventually(t, 60*time.Second, func() bool { return st.sent() >= 500 }, "producer stalled at %d", st.sent())
	perAsset := st.stop(t)
	n := int(perAsset) * len(assets)
	seen := func() int {
		ids := map[string]bool{}
		for _, s := range scoresOf(t, scores.snapshot()) {
			ids[s.ID] = true
		}
		return len(ids)
	}
	stacktest.Eventually(t, 90*time.Second, func() bool { return seen() >= n }, "%d of %d readings scored", seen(), n)

	got := scoresOf(t, scores.snapshot())
	first := map[string]stream.Score{}
	for _, s := range got {
		if prev, ok := first[s.ID]; ok && (prev.Score != s.Score || prev.Version != s.Version || prev.Source != s.Source) {
			t.Fatalf("replayed score %s differs: %+v vs %+v", s.ID, prev, s)
		}
		first[s.ID] = s
	}
	t.Logf("%d readings, %d score records (%d replayed after the crash)", n, len(got), len(got)-n)
	if len(got) == n {
		t.Errorf("no score was replayed: the crash did not leave an uncommitted batch")
	}
	for _, a := range assets {
		for seq := uint64(1); seq <= perAsset; seq++ {
			if _, ok := first[stream.ScoreID(a, seq)]; !ok {
				t.Fatalf("reading %s/%d lost", a, seq)
			}
		}
	}
	// Alerts: the two episodes of every asset, each under one id, with the
	// same content every time an event is repeated.
	stacktest.Eventually(t, 10*time.Second, func() bool {
		ids := map[string]bool{}
		for _, a := range alertsOf(t, alerts.snapshot()) {
			ids[a.EventID()] = true
		}
		return len(ids) >= 4*len(assets)
	}, "alert events missing")
	events := map[string]alert.Alert{}
	ids := map[string]map[string]bool{}
	for _, a := range alertsOf(t, alerts.snapshot()) {
		if prev, ok := events[a.EventID()]; ok && (prev.State != a.State || prev.LastSeq != a.LastSeq) {
			t.Fatalf("event %s repeated with different content: %+v vs %+v", a.EventID(), prev, a)
		}
		events[a.EventID()] = a
		if ids[a.Asset] == nil {
			ids[a.Asset] = map[string]bool{}
		}
		ids[a.Asset][a.ID] = true
	}
	for _, a := range assets {
		want := map[string]bool{alert.ID(a, alert.KindAnomaly, 100): true, alert.ID(a, alert.KindAnomaly, 400): true}
		if fmt.Sprint(ids[a]) != fmt.Sprint(want) {
			t.Errorf("%s: alert ids %v, want %v", a, ids[a], want)
		}
	}
	if len(events) != 4*len(assets) {
		t.Errorf("%d distinct alert events, want %d (opened and resolved per episode)", len(events), 4*len(assets))
	}
}
