package fleet

import (
	"context"
	"testing"
	"time"

	"github.com/pdmstream/pdm/pdmkit/alert"
	"github.com/pdmstream/pdm/scorer/internal/stream"
)

func TestStoreLatestHistoryAndBound(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := t0
	s := New(Options{History: 3, MaxAssets: 2, Now: func() time.Time { return clock }})
	ctx := context.Background()
	score := func(asset string, seq uint64, v float64) stream.Score {
		return stream.Score{Site: "s", Asset: asset, Seq: seq, Time: t0.Add(time.Duration(seq) * time.Second), Score: v,
			Model: "m", Version: "1", Contributions: []alert.Sensor{{Name: "temp", Share: 1}}}
	}
	for seq := uint64(1); seq <= 5; seq++ {
		_ = s.Write(ctx, &stream.Batch{Scores: []stream.Score{score("a", seq, float64(seq)/10)}})
	}
	// A redelivered older reading does not go back.
	_ = s.Write(ctx, &stream.Batch{Scores: []stream.Score{score("a", 2, 0.9)}})
	last, h, ok := s.Get("a")
	if !ok || last.Seq != 5 || last.Score != 0.5 || last.Version != "1" || len(last.Contributions) != 1 {
		t.Fatalf("latest %+v", last)
	}
	if len(h) != 3 || h[0].Score != 0.3 || h[2].Score != 0.5 {
		t.Fatalf("history %+v, want the last three oldest first", h)
	}
	clock = t0.Add(time.Minute)
	_ = s.Write(ctx, &stream.Batch{Scores: []stream.Score{score("b", 1, 0.1)}})
	clock = t0.Add(2 * time.Minute)
	_ = s.Write(ctx, &stream.Batch{Scores: []stream.Score{score("c", 1, 0.1)}})
	// Beyond two assets the longest silent (a) goes.
	var names []string
	for _, x := range s.List() {
		names = append(names, x.Asset)
	}
	if len(names) != 2 || names[0] != "b" || names[1] != "c" {
		t.Fatalf("assets %v, want [b c]", names)
	}
	if _, h, _ := s.Get("b"); len(h) != 1 {
		t.Fatalf("history of b %+v", h)
	}
}
