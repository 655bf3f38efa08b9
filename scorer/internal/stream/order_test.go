package stream

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"testing"
)

// flakyOutput fails the first attempt of every batch, as the writes in
// flight all fail when Kafka goes away, and records the order in which
// batches are written.
type flakyOutput struct {
	mu      sync.Mutex
	tried   map[*Batch]bool
	written []*Batch
}

func (f *flakyOutput) Name() string { return "flaky" }

func (f *flakyOutput) Write(_ context.Context, b *Batch) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.tried[b] {
		f.tried[b] = true
		return errors.New("kafka away")
	}
	f.written = append(f.written, b)
	return nil
}

// TestRetriedWritesLandInOrder: writes in flight that all fail are
// retried each after the one before it, so they land in batch order.
func TestRetriedWritesLandInOrder(t *testing.T) {
	out := &flakyOutput{tried: map[*Batch]bool{}}
	c := &Consumer{outs: []Output{out}}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	batches := make([]*Batch, 4)
	var wg sync.WaitGroup
	var prev chan struct{}
	for i := range batches {
		batches[i] = &Batch{Scores: []Score{{Seq: uint64(i + 1)}}}
		written, after := make(chan struct{}), prev
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer close(written)
			if err := c.write(context.Background(), log, batches[i], after); err != nil {
				t.Error(err)
			}
		}()
		prev = written
	}
	wg.Wait()
	for i, b := range out.written {
		if b != batches[i] {
			t.Fatalf("write %d was batch %d: retries out of order", i, b.Scores[0].Seq)
		}
	}
}
