package sink

import (
	"context"
	"io"
	"log/slog"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/pdmstream/pdm/pdmkit/stacktest"
	"github.com/pdmstream/pdm/scorer/internal/stream"
)

// TestInfluxDoesNotHoldBackScoring: with InfluxDB away Write returns at
// once and the points wait in the queue; once InfluxDB answers they are
// all written, in order, and the queue is empty.
func TestInfluxDoesNotHoldBackScoring(t *testing.T) {
	base := stacktest.InfluxURL(t)
	bucket := stacktest.InfluxBucket(t)
	addr := stacktest.FreeAddr(t) // nothing listens here until the proxy starts
	dropped := prometheus.NewCounter(prometheus.CounterOpts{Name: "dropped"})
	out := NewInflux("http://"+addr, stacktest.InfluxToken(t), "", bucket, 50, dropped, slog.New(slog.NewTextHandler(io.Discard, nil)))
	defer out.Close(context.Background())

	t0 := time.Now().Add(-time.Hour).Truncate(time.Millisecond)
	start := time.Now()
	for k := range 10 {
		var b stream.Batch
		for j := range 30 {
			seq := uint64(k*30 + j + 1)
			b.Scores = append(b.Scores, stream.Score{Site: "s", Asset: "a1", Seq: seq, Time: t0.Add(time.Duration(seq) * time.Second), Score: 0.5})
		}
		if err := out.Write(context.Background(), &b); err != nil {
			t.Fatal(err)
		}
	}
	if took := time.Since(start); took > time.Second {
		t.Fatalf("Write took %v with InfluxDB away", took)
	}
	if q := out.Queued(); q != 300 {
		t.Fatalf("%d points queued, want 300", q)
	}

	stacktest.Proxy(t, addr, strings.TrimPrefix(base, "http://"))
	stacktest.Eventually(t, 30*time.Second, func() bool { return out.Queued() == 0 }, "%d points still queued after InfluxDB came back", out.Queued())
	db, _, _ := strings.Cut(bucket, "/")
	resp, err := stacktest.InfluxQuery(t, base, url.Values{"db": {db}, "q": {"SELECT count(seq) FROM scores"}})
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), `"values":[["1970-01-01T00:00:00Z",300]]`) {
		t.Fatalf("InfluxDB holds %s, want 300 scores", body)
	}
	if d := testutil.ToFloat64(dropped); d != 0 {
		t.Fatalf("%v points dropped", d)
	}
}

// TestInfluxDropsTheOldestFromAFullQueue: while InfluxDB stays away the
// queue holds QueuePoints points; what passes it drops the oldest, counted.
func TestInfluxDropsTheOldestFromAFullQueue(t *testing.T) {
	dropped := prometheus.NewCounter(prometheus.CounterOpts{Name: "dropped"})
	out := NewInflux("http://"+stacktest.FreeAddr(t), "", "", "db/autogen", 5000, dropped, slog.New(slog.NewTextHandler(io.Discard, nil)))
	defer out.Close(context.Background())
	t0 := time.Now().Truncate(time.Millisecond)
	const batch, batches = 10_000, QueuePoints/10_000 + 1
	for k := range batches {
		b := stream.Batch{Scores: make([]stream.Score, batch)}
		for j := range b.Scores {
			seq := uint64(k*batch + j + 1)
			b.Scores[j] = stream.Score{Site: "s", Asset: "a1", Seq: seq, Time: t0.Add(time.Duration(seq) * time.Millisecond)}
		}
		if err := out.Write(context.Background(), &b); err != nil {
			t.Fatal(err)
		}
	}
	if q, d := out.Queued(), testutil.ToFloat64(dropped); q != QueuePoints || d != batch {
		t.Fatalf("queued %d, dropped %v; want %d and %d", q, d, QueuePoints, batch)
	}
}

// Close is safe twice, and the writer it waits for ends at once even while
// InfluxDB is away with points queued.
func TestInfluxCloseTwice(t *testing.T) {
	dropped := prometheus.NewCounter(prometheus.CounterOpts{Name: "dropped"})
	out := NewInflux("http://"+stacktest.FreeAddr(t), "", "", "db/autogen", 5000, dropped, slog.New(slog.NewTextHandler(io.Discard, nil)))
	b := stream.Batch{Scores: []stream.Score{{Site: "s", Asset: "a1", Seq: 1, Time: time.Now()}}}
	if err := out.Write(context.Background(), &b); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := out.Close(ctx); err != nil {
		t.Fatalf("first close: %v", err)
	}
	if err := out.Close(ctx); err != nil {
		t.Fatalf("second close: %v", err)
	}
}
