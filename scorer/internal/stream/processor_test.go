package stream

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/pdmstream/pdm/pdmkit/anomaly"
	"github.com/pdmstream/pdm/pdmkit/corpus"
	"github.com/pdmstream/pdm/pdmkit/model"
	"github.com/pdmstream/pdm/pdmkit/wire"
	"github.com/pdmstream/pdm/scorer/internal/registry"
	"github.com/segmentio/kafka-go"
)

// countingDetector scores the number of readings it has seen, so warming
// on history is visible in its first score.
type countingDetector struct {
	version string
	seen    int
}

func (d *countingDetector) Observe(time.Time, map[string]float64) (anomaly.Result, error) {
	d.seen++
	return anomaly.Result{Score: float64(d.seen) / 1000, Model: "m", Version: d.version}, nil
}

type fixedResolver struct {
	b       registry.Binding
	refused []string
}

func (f *fixedResolver) Resolve(string, string) registry.Binding { return f.b }
func (f *fixedResolver) Refuse(v *registry.Version, reason string) {
	f.refused = append(f.refused, v.Key()+": "+reason)
}
func (f *fixedResolver) RecordShadow(_, _ *registry.Version, _, _ anomaly.Result, _, _ bool) {}

func version(v string, features ...string) *registry.Version {
	return &registry.Version{Name: "m", Version: v, Features: features,
		Artifact: &model.Artifact{Name: "m", Version: v, Features: features},
		New:      func() (anomaly.Detector, error) { return &countingDetector{version: v}, nil }}
}

func msg(t *testing.T, seq uint64) *kafka.Message {
	t.Helper()
	r := wire.Reading{Site: "s", Asset: "a", Seq: seq, Time: time.Unix(int64(seq), 0).UTC(), Sensors: map[string]float64{"temp": 1, "vib": 2}}
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	return &kafka.Message{Value: b, Offset: int64(seq)}
}

// The processor swaps versions between readings, warms the new detector on
// recent readings, refuses a version whose features the readings lack and
// keeps the current one, and skips repeated readings.
func TestProcessorSwapsAndRefuses(t *testing.T) {
	res := &fixedResolver{}
	online := func() (anomaly.Detector, error) { return &countingDetector{version: "online"}, nil }
	p := newProcessor(0, &Options{History: 4, Online: online},
		res, NewCatalog(), NewMetrics(nil), slog.New(slog.NewTextHandler(io.Discard, nil)))
	steps := []struct {
		name    string
		bind    registry.Binding
		seq     uint64
		version string
		score   float64
	}{
		{"online first", registry.Binding{}, 1, "online", 0.001},
		{"online again", registry.Binding{}, 2, "online", 0.002},
		{"duplicate skipped", registry.Binding{}, 2, "", 0},
		{"mismatch refused", registry.Binding{Active: version("2", "temp", "oil")}, 3, "online", 0.003},
		{"fitting version swapped in, warmed on 3 readings", registry.Binding{Active: version("3", "temp")}, 4, "3", 0.004},
		{"stays", registry.Binding{Active: version("3", "temp")}, 5, "3", 0.005},
	}
	for _, s := range steps {
		res.b = s.bind
		b := &Batch{}
		p.handle(msg(t, s.seq), true, b)
		if s.version == "" {
			if len(b.Scores) != 0 {
				t.Fatalf("%s: %d scores, want none", s.name, len(b.Scores))
			}
			continue
		}
		if len(b.Scores) != 1 || b.Scores[0].Version != s.version || b.Scores[0].Score != s.score {
			t.Fatalf("%s: scores %+v, want version %s score %v", s.name, b.Scores, s.version, s.score)
		}
		// The score carries the reading's values for the fleet store.
		if sv := b.Scores[0].Sensors; len(sv) != 2 || sv["temp"] != 1 || sv["vib"] != 2 {
			t.Fatalf("%s: score's sensors %v, want the reading's", s.name, sv)
		}
	}
	// The refusal names the asset, its site and what it reports.
	if len(res.refused) != 1 || !strings.HasPrefix(res.refused[0], `m@2: asset a of site "s" (reports [temp vib]): model: feature mismatch: asset lacks [oil]`) {
		t.Fatalf("refusals %v, want one of m@2 naming asset a", res.refused)
	}
	if got := p.catalog.Sensors("a"); len(got) != 2 || got[0] != "temp" {
		t.Fatalf("catalog %v", got)
	}
}

// The processor asks the trainer for a model: every ColdStart readings an
// asset spends on the online learner, and when an asset's decision learns
// a new normal (the new set point of a corpus stream).
func TestProcessorRequestsTraining(t *testing.T) {
	s := corpus.SetPoints()[0]
	online := func() (anomaly.Detector, error) {
		return anomaly.NewOnline(anomaly.OnlineConfig{WarmupRows: s.Warmup})
	}
	p := newProcessor(0, &Options{Online: online, ColdStart: 1000}, &fixedResolver{}, NewCatalog(), NewMetrics(nil), slog.New(slog.NewTextHandler(io.Discard, nil)))
	var got []string
	for i, row := range s.Rows {
		r := wire.Reading{Site: "s", Asset: "tank", Seq: uint64(i + 1), Time: s.Times[i], Sensors: map[string]float64{s.Sensors[0]: row[0]}}
		v, _ := json.Marshal(r)
		b := &Batch{}
		p.handle(&kafka.Message{Value: v, Offset: int64(i)}, true, b)
		for _, q := range b.Requests {
			if q.Asset != "tank" || q.Site != "s" || !q.At.Equal(r.Time) {
				t.Fatalf("request %+v at reading %d", q, i)
			}
			got = append(got, fmt.Sprintf("%d:%s", i, q.Reason))
		}
	}
	// Cold start at readings 1000, 2000, 3000 after the warm-up; the set
	// point at row 2000 is learnt as the new normal about a day later.
	var cold, drift int
	for _, g := range got {
		switch {
		case strings.HasSuffix(g, wire.ReasonColdStart):
			cold++
		case strings.HasSuffix(g, wire.ReasonDrift):
			drift++
		}
	}
	if cold != 3 || drift != 1 {
		t.Fatalf("requests %v: want 3 cold starts and 1 drift", got)
	}
}

// TestProcessorForgetsSilentAssets: beyond MaxAssets the longest silent
// asset is forgotten at once, and assets silent for IdleAfter (reading
// time) at the next sweep; the catalog forgets them too.
func TestProcessorForgetsSilentAssets(t *testing.T) {
	o := &Options{IdleAfter: time.Hour, MaxAssets: 3,
		Online: func() (anomaly.Detector, error) { return &countingDetector{version: "o"}, nil }}
	m := NewMetrics(nil)
	cat := NewCatalog()
	p := newProcessor(0, o, &fixedResolver{}, cat, m, slog.New(slog.NewTextHandler(io.Discard, nil)))
	t0 := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	feed := func(asset string, seq uint64, at time.Time) {
		t.Helper()
		b, err := json.Marshal(wire.Reading{Site: "s", Asset: asset, Seq: seq, Time: at, Sensors: map[string]float64{"temp": 1}})
		if err != nil {
			t.Fatal(err)
		}
		p.handle(&kafka.Message{Value: b}, true, &Batch{})
	}
	assets := func() string { return strings.Join(cat.Assets(), ",") }
	for i, a := range []string{"a1", "a2", "a3"} {
		feed(a, 1, t0.Add(time.Duration(i)*10*time.Second))
	}
	feed("a4", 1, t0.Add(time.Minute))
	if got := assets(); got != "a2,a3,a4" || len(p.assets) != 3 {
		t.Fatalf("after a fourth asset: %s (%d kept), want a2,a3,a4", got, len(p.assets))
	}
	for seq := uint64(2); seq <= sweepEvery+1; seq++ {
		feed("a4", seq, t0.Add(2*time.Hour+time.Duration(seq)*time.Millisecond))
	}
	if got := assets(); got != "a4" || len(p.assets) != 1 {
		t.Fatalf("after two hours of a4 alone: %s (%d kept), want a4", got, len(p.assets))
	}
	if n := testutil.ToFloat64(m.Forgotten); n != 3 {
		t.Fatalf("forgotten %v, want 3", n)
	}
}

// Readings of an asset that arrive out of order are scored in seq order:
// one that skips ahead waits for the missing ones, and commits stay
// behind it; a gap never filled is given up after the wait (or maxHeld
// readings), and the missing reading arriving after that is late, not
// scored.
func TestProcessorReorders(t *testing.T) {
	online := func() (anomaly.Detector, error) { return &countingDetector{version: "online"}, nil }
	m := NewMetrics(nil)
	p := newProcessor(0, &Options{Online: online, ReorderWait: time.Minute}, &fixedResolver{}, NewCatalog(), m, slog.New(slog.NewTextHandler(io.Discard, nil)))
	var got []uint64
	offset := int64(0)
	feed := func(seqs ...uint64) {
		t.Helper()
		for _, seq := range seqs {
			mg := msg(t, seq)
			mg.Offset = offset
			offset++
			b := &Batch{}
			p.handle(mg, true, b)
			for _, s := range b.Scores {
				got = append(got, s.Seq)
			}
		}
	}
	want := func(what string, seqs ...uint64) {
		t.Helper()
		if fmt.Sprint(got) != fmt.Sprint(seqs) {
			t.Fatalf("%s: scored %v, want %v", what, got, seqs)
		}
		got = nil
	}

	feed(1, 2, 4, 6)
	want("4 and 6 wait for 3 and 5", 1, 2)
	if h := p.heldFrom(); h != 2 {
		t.Fatalf("held from offset %d, want 2 (reading 4's message)", h)
	}
	feed(3)
	want("3 releases 4", 3, 4)
	feed(4, 5)
	want("a repeat of a held reading is skipped", 5, 6)
	if h := p.heldFrom(); h != -1 {
		t.Fatalf("held from offset %d with nothing held", h)
	}

	feed(8)
	b := &Batch{}
	p.flush(time.Now(), b)
	if len(b.Scores) != 0 {
		t.Fatalf("flushed %d readings before the wait", len(b.Scores))
	}
	p.flush(time.Now().Add(time.Minute), b)
	if len(b.Scores) != 1 || b.Scores[0].Seq != 8 {
		t.Fatalf("after the wait the gap is given up and 8 scored; got %+v", b.Scores)
	}
	feed(7, 8)
	want("7 is late, 8 a repeat")
	if late, dupes := testutil.ToFloat64(m.Late), testutil.ToFloat64(m.Dupes); late != 1 || dupes != 2 {
		t.Fatalf("late %v, duplicates %v; want 1 and 2", late, dupes)
	}

	// More than maxHeld readings past a gap: the gap is given up.
	var ahead []uint64
	for seq := uint64(10); seq <= 10+maxHeld; seq++ {
		ahead = append(ahead, seq)
	}
	feed(ahead...)
	if len(got) != len(ahead) || got[0] != 10 || got[len(got)-1] != 10+maxHeld {
		t.Fatalf("with %d readings held: scored %d (%v…), want 10..%d", len(ahead), len(got), got[:min(3, len(got))], 10+maxHeld)
	}
}
