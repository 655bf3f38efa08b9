package stream_test

import (
	"context"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pdmstream/pdm/pdmkit/anomaly"
	"github.com/pdmstream/pdm/pdmkit/model"
	"github.com/pdmstream/pdm/pdmkit/model/modeltest"
	"github.com/pdmstream/pdm/pdmkit/stacktest"
	"github.com/pdmstream/pdm/scorer/internal/registry"
	"github.com/pdmstream/pdm/scorer/internal/stream"
	"github.com/segmentio/kafka-go"
)

// counting wraps an output: it counts acknowledged scores, keeps the delay
// from each reading's Kafka timestamp to its acknowledgement, and signals
// the first score by a wanted version.
type counting struct {
	inner  stream.Output
	scores atomic.Int64
	mu     sync.Mutex
	delays []time.Duration
	// first and last acknowledgement, and the scores of the first.
	first, last time.Time
	firstN      int64
	want        atomic.Value // string
	seen        chan struct{}
}

func newCounting(inner stream.Output) *counting {
	c := &counting{inner: inner, seen: make(chan struct{}, 1)}
	c.want.Store("")
	return c
}

func (c *counting) Name() string { return c.inner.Name() }

func (c *counting) Write(ctx context.Context, b *stream.Batch) error {
	if err := c.inner.Write(ctx, b); err != nil {
		return err
	}
	now := time.Now()
	want := c.want.Load().(string)
	c.mu.Lock()
	if c.first.IsZero() && len(b.Scores) > 0 {
		c.first, c.firstN = now, int64(len(b.Scores))
	}
	if len(b.Scores) > 0 {
		c.last = now
	}
	for i := range b.Scores {
		c.delays = append(c.delays, now.Sub(b.Scores[i].Source.Time))
		if want != "" && b.Scores[i].Version == want {
			c.want.Store("")
			want = ""
			select {
			case c.seen <- struct{}{}:
			default:
			}
		}
	}
	c.mu.Unlock()
	c.scores.Add(int64(len(b.Scores)))
	return nil
}

func (c *counting) span() (first, last time.Time, firstN int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.first, c.last, c.firstN
}

func (c *counting) percentiles() (p50, p99 time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	d := slices.Clone(c.delays)
	if len(d) == 0 {
		return 0, 0
	}
	slices.Sort(d)
	return d[len(d)/2], d[len(d)*99/100]
}

func realOnline() (anomaly.Detector, error) { return anomaly.NewOnline(anomaly.DefaultOnlineConfig()) }

// produceBacklog writes readings from..to of every asset, in chunks.
func produceBacklog(b *testing.B, p *producer, assets []string, from, to uint64) {
	ctx := context.Background()
	for seq := from; seq <= to; seq += 500 {
		if err := p.send(ctx, assets, seq, min(seq+499, to)); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkThroughput measures the scorer writing scores to Kafka with
// acks=all beside a bare kafka-go consumer group reader, both reading the
// same backlog of b.N single-reading messages produced beforehand:
//
//   - model: every asset scored by a trained forecaster artifact, active as
//     the default model (the production case);
//   - online: every asset scored by the online learner new assets get; its
//     warm-up training and its retraining every 200 readings happen in the
//     scoring path and are part of the figure.
//
// The scorer's time runs from its first acknowledged batch to its last, so
// joining the group is not counted; the bare reader's from its first
// message to its last. ns/op is not meaningful and reported as zero.
//
//	go test -run '^$' -bench Throughput -benchtime 120000x ./internal/stream/
func BenchmarkThroughput(b *testing.B) {
	b.Run("model", func(b *testing.B) {
		benchThroughput(b, activeForecaster(b), online)
	})
	b.Run("online", func(b *testing.B) {
		benchThroughput(b, onlineOnly{}, realOnline)
	})
}

// activeForecaster returns a registry in which a trained forecaster, model
// "load" version 1, is active.
func activeForecaster(b *testing.B) *registry.Registry {
	reg := registry.NewMemory(func(a *model.Artifact) (anomaly.Detector, error) { return anomaly.FromArtifact(a) }, nil, testLog(b))
	reg.SetTrust(modeltest.Trust())
	if _, err := reg.Upload(context.Background(), "", "", forecaster(b)); err != nil {
		b.Fatal(err)
	}
	if _, err := reg.Activate(context.Background(), "load", "1", registry.Scope{Default: true}); err != nil {
		b.Fatal(err)
	}
	return reg
}

func benchThroughput(b *testing.B, res stream.Resolver, onl func() (anomaly.Detector, error)) {
	tp := newTopics(b, 6)
	assets := assetNames(12)
	p := newProducer(b, tp.kc, tp.readings)
	p.singles = true
	per := uint64(b.N/len(assets)) + 1
	n := int64(per) * int64(len(assets))
	produceBacklog(b, p, assets, 1, per)

	b.ResetTimer()
	var cnt *counting
	startWith(b, tp, res, func(o *stream.Options) { o.Online = onl; o.MaxBatch = 2000 },
		func(o stream.Output) stream.Output { cnt = newCounting(o); return cnt })
	stacktest.Eventually(b, 10*time.Minute, func() bool { return cnt.scores.Load() >= n }, "%d of %d scored", cnt.scores.Load(), n)
	b.StopTimer()
	first, last, firstN := cnt.span()
	scored := last.Sub(first)

	r := kafka.NewReader(kafka.ReaderConfig{Brokers: tp.kc.Brokers, Dialer: tp.kc.Dialer(0), GroupID: stacktest.Unique("bare"), Topic: tp.readings,
		MinBytes: 1, MaxBytes: 16 << 20, MaxWait: 100 * time.Millisecond, StartOffset: kafka.FirstOffset})
	defer r.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	var pending []kafka.Message
	var bareStart time.Time
	for got := 0; got < int(n); got++ {
		m, err := r.FetchMessage(ctx)
		if err != nil {
			b.Fatal(err)
		}
		if got == 0 {
			bareStart = time.Now()
		}
		pending = append(pending, m)
		if len(pending) == 2000 || got == int(n)-1 {
			if err := r.CommitMessages(ctx, pending...); err != nil {
				b.Fatal(err)
			}
			pending = pending[:0]
		}
	}
	bare := time.Since(bareStart)

	bareRate := float64(n-1) / bare.Seconds()
	rate := float64(n-firstN) / scored.Seconds()
	cores := float64(runtime.GOMAXPROCS(0))
	b.ReportMetric(bareRate, "bare-readings/s")
	b.ReportMetric(rate, "scored-readings/s")
	b.ReportMetric(rate/cores, "scored-readings/s/core")
	b.ReportMetric(rate/bareRate, "scorer/bare")
	b.ReportMetric(0, "ns/op")
	b.Logf("%d readings: bare consumer %.0f/s, scorer %.0f/s (%.0f/s per core on %d), ratio %.2f", n, bareRate, rate, rate/cores, int(cores), rate/bareRate)
}

// forecaster trains a small forecaster on the readings the producer makes.
func forecaster(b *testing.B) []byte {
	var rows [][]float64
	var times []time.Time
	for seq := uint64(1); seq <= 600; seq++ {
		if load(seq) > 0.5 {
			continue
		}
		rows = append(rows, []float64{load(seq), 40 + float64(seq%7)})
		times = append(times, t0.Add(time.Duration(seq)*time.Second))
	}
	a, err := anomaly.TrainForecaster(rows, times, []string{"load", "temp"}, anomaly.ForecasterConfig{Name: "load", Version: "1", Epochs: 20})
	if err != nil {
		b.Fatal(err)
	}
	return modeltest.Encode(b, a)
}

// BenchmarkLatency streams readings at a steady pace to a caught-up scorer
// and reports the delay from each reading's Kafka timestamp to the
// acknowledgement of its score, with a trained model (model) and with the
// online learner (online), whose retraining shows in the tail.
//
//	go test -run '^$' -bench Latency -benchtime 20000x ./internal/stream/
func BenchmarkLatency(b *testing.B) {
	b.Run("model", func(b *testing.B) {
		benchLatency(b, activeForecaster(b), online)
	})
	b.Run("online", func(b *testing.B) {
		benchLatency(b, onlineOnly{}, realOnline)
	})
}

func benchLatency(b *testing.B, res stream.Resolver, onl func() (anomaly.Detector, error)) {
	tp := newTopics(b, 6)
	assets := assetNames(12)
	var cnt *counting
	startWith(b, tp, res, func(o *stream.Options) { o.Online = onl },
		func(o stream.Output) stream.Output { cnt = newCounting(o); return cnt })
	p := newProducer(b, tp.kc, tp.readings)
	p.singles = true
	ctx := context.Background()
	per := uint64(b.N/len(assets)) + 1
	n := int(per) * len(assets)
	b.ResetTimer()
	// 5 readings per asset every 10 ms: 6,000 readings/s.
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for seq := uint64(1); seq <= per; seq += 5 {
		<-tick.C
		if err := p.send(ctx, assets, seq, min(seq+4, per)); err != nil {
			b.Fatal(err)
		}
	}
	stacktest.Eventually(b, 5*time.Minute, func() bool { return cnt.scores.Load() >= int64(n) }, "%d of %d scored", cnt.scores.Load(), n)
	b.StopTimer()
	p50, p99 := cnt.percentiles()
	b.ReportMetric(float64(p50.Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(p99.Microseconds())/1000, "p99-ms")
	b.ReportMetric(0, "ns/op")
	b.Logf("%d readings at 6000/s: Kafka timestamp to score acknowledged p50 %s p99 %s", n, p50, p99)
}

// BenchmarkSwap measures, while readings stream, the time from publishing
// an activation to the first score by the newly active version. One op is
// one swap.
//
//	go test -run '^$' -bench Swap -benchtime 10x ./internal/stream/
func BenchmarkSwap(b *testing.B) {
	tp := newTopics(b, 6)
	modelsTopic := stacktest.Topic(b, "scorer-models", 1)
	reg := followRegistryTB(b, tp.kc, modelsTopic)
	admin := followRegistryTB(b, tp.kc, modelsTopic)
	ctx := context.Background()
	for _, v := range []string{"1", "2"} {
		if _, err := reg.Upload(ctx, "bearing", v, artifactBytes(b, "bearing", v)); err != nil {
			b.Fatal(err)
		}
	}
	if _, err := reg.Activate(ctx, "bearing", "1", registry.Scope{Default: true}); err != nil {
		b.Fatal(err)
	}
	var cnt *counting
	startWith(b, tp, reg, nil, func(o stream.Output) stream.Output { cnt = newCounting(o); return cnt })
	p := newProducer(b, tp.kc, tp.readings)
	sctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for seq := uint64(1); sctx.Err() == nil; seq += 2 {
			select {
			case <-sctx.Done():
				return
			case <-tick.C:
			}
			_ = p.send(sctx, assetNames(12), seq, seq+1)
		}
	}()
	defer func() { stop(); wg.Wait() }()
	stacktest.Eventually(b, time.Minute, func() bool { return cnt.scores.Load() > 100 }, "scoring did not start")
	b.ResetTimer()
	var total time.Duration
	for i := range b.N {
		v := []string{"2", "1"}[i%2]
		cnt.want.Store(v)
		start := time.Now()
		if _, err := admin.Activate(ctx, "bearing", v, registry.Scope{}); err != nil {
			b.Fatal(err)
		}
		select {
		case <-cnt.seen:
		case <-time.After(30 * time.Second):
			b.Fatalf("no score by version %s", v)
		}
		total += time.Since(start)
	}
	b.ReportMetric(float64(total.Microseconds())/1000/float64(b.N), "ms/swap")
}
