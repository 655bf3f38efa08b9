package stream_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pdmstream/pdm/pdmkit/alert"
	"github.com/pdmstream/pdm/pdmkit/anomaly"
	"github.com/pdmstream/pdm/pdmkit/kafkaconn"
	"github.com/pdmstream/pdm/pdmkit/model"
	"github.com/pdmstream/pdm/pdmkit/model/modeltest"
	"github.com/pdmstream/pdm/pdmkit/monitor"
	"github.com/pdmstream/pdm/pdmkit/nn"
	"github.com/pdmstream/pdm/pdmkit/stacktest"
	"github.com/pdmstream/pdm/pdmkit/wire"
	"github.com/pdmstream/pdm/scorer/internal/registry"
	"github.com/pdmstream/pdm/scorer/internal/sink"
	"github.com/pdmstream/pdm/scorer/internal/stream"
	"github.com/segmentio/kafka-go"
)

// loadDetector reports the "load" sensor as the score, so every score and
// alert can be predicted from the readings; it is tagged with the version
// that built it.
type loadDetector struct{ name, version string }

func (d loadDetector) Observe(_ time.Time, s map[string]float64) (anomaly.Result, error) {
	v, ok := s["load"]
	if !ok {
		return anomaly.Result{}, errors.New("load missing")
	}
	return anomaly.Result{Score: v, Evidence: v, Model: d.name, Version: d.version,
		Contributions: []anomaly.Contribution{{Sensor: "load", Share: 0.7}, {Sensor: "temp", Share: 0.3}}}, nil
}

func factory(a *model.Artifact) (anomaly.Detector, error) {
	return loadDetector{a.Name, a.Version}, nil
}

func online() (anomaly.Detector, error) { return loadDetector{"online", "0"}, nil }

// decision opens an alert on the third reading at or above 0.8 (two
// seconds of reading time) and resolves it on the third below 0.5.
var decision = monitor.Config{Alert: alert.Thresholds{Open: 0.8, Resolve: 0.5, Major: 0.9, Critical: 0.99, MinReadings: 3, MinDuration: 2 * time.Second}}

func testLog(t testing.TB) *slog.Logger {
	if os.Getenv("PDM_TEST_LOG") == "debug" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})).With("test", t.Name())
	}
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo})).With("test", t.Name())
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// artifactBytes is a sealed, valid artifact reading load and temp.
func artifactBytes(t testing.TB, name, version string) []byte {
	t.Helper()
	a := model.Artifact{
		Kind: model.RUL, Name: name, Version: version, CreatedAt: time.Unix(0, 0).UTC(),
		Features: []string{"load", "temp"}, Window: 1,
		Architecture: model.Architecture{Sizes: []int{2, 1}, Activations: []string{"linear"}},
		Weights:      []float64{1, 0, 0},
		Scaler:       nn.Scaler{Mean: []float64{0, 0}, Std: []float64{1, 1}},
	}
	return modeltest.Encode(t, &a)
}

var t0 = time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)

// load is the score each reading will get: alert episodes on seq 100..119
// and 400..419 of every asset, quiet otherwise.
func load(seq uint64) float64 {
	if (seq >= 100 && seq < 120) || (seq >= 400 && seq < 420) {
		return 0.95
	}
	return 0.1
}

// producer writes readings of assets, one reading per asset per second of
// reading time, in messages of up to batch readings.
type producer struct {
	w *kafka.Writer
	// singles sends every reading as its own message.
	singles bool
}

func newProducer(t testing.TB, kc *kafkaconn.Conn, topic string) *producer {
	w := &kafka.Writer{Addr: kafka.TCP(kc.Brokers...), Transport: kc.Transport(), Topic: topic, Balancer: &kafka.Murmur2Balancer{},
		RequiredAcks: kafka.RequireAll, BatchTimeout: time.Millisecond, BatchSize: 1000}
	t.Cleanup(func() { w.Close() })
	return &producer{w: w}
}

// send writes seqs from..to (inclusive) of every asset; even assets as
// batches of 5, odd assets one reading per message.
func (p *producer) send(ctx context.Context, assets []string, from, to uint64) error {
	var msgs []kafka.Message
	for ai, a := range assets {
		var pend []wire.Reading
		for seq := from; seq <= to; seq++ {
			r := wire.Reading{Site: "plant-1", Asset: a, Seq: seq, Time: t0.Add(time.Duration(seq) * time.Second),
				Sensors: map[string]float64{"load": load(seq), "temp": 40 + float64(seq%7)}}
			if ai%2 == 1 || p.singles {
				b, err := r.MarshalJSON()
				if err != nil {
					return err
				}
				msgs = append(msgs, kafka.Message{Key: []byte(a), Value: b})
				continue
			}
			pend = append(pend, r)
			if len(pend) == 5 || seq == to {
				b, err := wire.EncodeBatch(pend)
				if err != nil {
					return err
				}
				msgs = append(msgs, kafka.Message{Key: []byte(a), Value: b})
				pend = pend[:0]
			}
		}
	}
	return p.w.WriteMessages(ctx, msgs...)
}

// collector reads every record of a topic as it arrives.
type collector struct {
	mu      sync.Mutex
	records []kafka.Message
	cancel  context.CancelFunc
	wg      sync.WaitGroup
}

func collect(t testing.TB, kc *kafkaconn.Conn, topic string, partitions int) *collector {
	ctx, cancel := context.WithCancel(context.Background())
	c := &collector{cancel: cancel}
	for p := range partitions {
		r := kafka.NewReader(kafka.ReaderConfig{Brokers: kc.Brokers, Dialer: kc.Dialer(0), Topic: topic, Partition: p, MinBytes: 1, MaxBytes: 16 << 20, MaxWait: 100 * time.Millisecond})
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			defer r.Close()
			for {
				m, err := r.FetchMessage(ctx)
				if err != nil {
					return
				}
				c.mu.Lock()
				c.records = append(c.records, m)
				c.mu.Unlock()
			}
		}()
	}
	t.Cleanup(func() { cancel(); c.wg.Wait() })
	return c
}

func (c *collector) snapshot() []kafka.Message {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]kafka.Message(nil), c.records...)
}

func (c *collector) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.records)
}

func scoresOf(t testing.TB, ms []kafka.Message) []stream.Score {
	t.Helper()
	out := make([]stream.Score, len(ms))
	for i, m := range ms {
		if err := json.Unmarshal(m.Value, &out[i]); err != nil {
			t.Fatalf("score record %d: %v", i, err)
		}
	}
	return out
}

func alertsOf(t testing.TB, ms []kafka.Message) []alert.Alert {
	t.Helper()
	out := make([]alert.Alert, len(ms))
	for i, m := range ms {
		if err := json.Unmarshal(m.Value, &out[i]); err != nil {
			t.Fatalf("alert record %d: %v", i, err)
		}
	}
	return out
}

// instance runs one consumer until it crashes or the test ends.
type instance struct {
	c       *stream.Consumer
	cancel  context.CancelFunc
	done    chan error
	crasher *crashAfterWrite
	once    sync.Once
	err     error
}

// wait returns Run's result once it has returned.
func (i *instance) wait() error {
	i.once.Do(func() { i.err = <-i.done })
	return i.err
}

// crash makes the instance die right after its next batch reached Kafka
// and before it commits: the worst moment, as the batch must be replayed
// by another instance.
func (i *instance) crash() error {
	i.crasher.armed.Store(true)
	return i.wait()
}

// crashAfterWrite passes writes through until armed; the first write after
// that succeeds, then the instance's context is cancelled and the write
// reports failure, so the loop never commits the batch.
type crashAfterWrite struct {
	inner  stream.Output
	armed  atomic.Bool
	cancel context.CancelFunc
}

func (c *crashAfterWrite) Name() string { return c.inner.Name() }

func (c *crashAfterWrite) Write(ctx context.Context, b *stream.Batch) error {
	if err := c.inner.Write(ctx, b); err != nil {
		return err
	}
	if c.armed.CompareAndSwap(true, false) {
		c.cancel()
		return errors.New("crashed after writing")
	}
	return nil
}

type topics struct {
	kc                       *kafkaconn.Conn
	readings, scores, alerts string
	group                    string
}

func newTopics(t testing.TB, partitions int) topics {
	t.Helper()
	return topics{
		kc:       stacktest.KafkaConn(t),
		readings: stacktest.Topic(t, "scorer-readings", partitions),
		scores:   stacktest.Topic(t, "scorer-scores", partitions),
		alerts:   stacktest.Topic(t, "scorer-alerts", 3),
		group:    stacktest.Unique("scorer-group"),
	}
}

func start(t testing.TB, tp topics, res stream.Resolver, replay int) *instance {
	t.Helper()
	return startWith(t, tp, res, func(o *stream.Options) { o.Replay = replay }, nil)
}

// startWith starts an instance with edited options and, when wrap is set,
// its Kafka output wrapped.
func startWith(t testing.TB, tp topics, res stream.Resolver, edit func(*stream.Options), wrap func(stream.Output) stream.Output) *instance {
	t.Helper()
	k := sink.NewKafka(tp.kc, tp.scores, tp.alerts, "")
	t.Cleanup(func() { k.Close(context.Background()) })
	var out stream.Output = k
	if wrap != nil {
		out = wrap(k)
	}
	ctx, cancel := context.WithCancel(context.Background())
	crasher := &crashAfterWrite{inner: out, cancel: cancel}
	opt := stream.Options{
		Conn: tp.kc, Group: tp.group, Topic: tp.readings, SessionTimeout: 6 * time.Second,
		Replay: 100, MaxBatch: 500, History: 16, Decision: decision, Online: online,
	}
	if edit != nil {
		edit(&opt)
	}
	inst := &instance{cancel: cancel, done: make(chan error, 1), crasher: crasher}
	c, err := stream.New(opt, res, []stream.Output{crasher}, nil, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	inst.c = c
	go func() { inst.done <- c.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := inst.wait(); err != nil {
			t.Errorf("consumer: %v", err)
		}
	})
	return inst
}

// onlineOnly resolves every asset to the online learner.
type onlineOnly struct{}

func (onlineOnly) Resolve(string, string) registry.Binding                             { return registry.Binding{} }
func (onlineOnly) Refuse(*registry.Version, string)                                    {}
func (onlineOnly) RecordShadow(_, _ *registry.Version, _, _ anomaly.Result, _, _ bool) {}

func assetNames(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = "asset-" + string(rune('a'+i))
	}
	return out
}
