package sink

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	influxdb2 "github.com/influxdata/influxdb-client-go/v2"
	"github.com/influxdata/influxdb-client-go/v2/api"
	"github.com/influxdata/influxdb-client-go/v2/api/write"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/pdmstream/pdm/pdmkit/alert"
	"github.com/pdmstream/pdm/pdmkit/retry"
	"github.com/pdmstream/pdm/scorer/internal/stream"
)

// Influx writes scores (measurement "scores") and alert events
// (measurement "alerts"), off the scoring path: Write queues the batch's
// points and returns at once, and a goroutine writes them in order,
// retrying while InfluxDB is away. Kafka's pdm.scores and pdm.alerts are
// the record; InfluxDB is a view of them for dashboards, so an InfluxDB
// outage never holds back scoring or commits. While it lasts the queue
// holds up to QueuePoints points; beyond that the oldest are dropped,
// counted and logged. Points are keyed by series and reading time, so a
// replay overwrites instead of duplicating.
//
// Schema (docs/data.md has the fields' meanings and queries over them):
//
//	scores,site,asset,model,version  score,alert,warming_up,seq,ttf_seconds,ttf_low_seconds,ttf_high_seconds,share_<sensor>,shadow_score,shadow_version
//	alerts,site,asset,kind,severity,state  id,score,peak,revision,first_seq,last_seq,first_ms,model,version,top_sensor,acked[,resolution][,ttf_seconds]
type Influx struct {
	closeOnce sync.Once
	client    influxdb2.Client
	write     api.WriteAPIBlocking
	batch     int
	dropped   prometheus.Counter
	log       *slog.Logger
	wake      chan struct{}
	stop      chan struct{}
	done      chan struct{}

	mu    sync.Mutex
	queue []*write.Point // oldest first
	first int64          // how many points have left the queue, written or dropped
}

// QueuePoints bounds the points waiting for InfluxDB: about 100 MB, some
// minutes of a large fleet's scores.
const QueuePoints = 200_000

// NewInflux returns an output writing to bucket; one WriteAPI for the
// life of the process. dropped counts points dropped from a full queue.
func NewInflux(url, token, org, bucket string, batch int, dropped prometheus.Counter, log *slog.Logger) *Influx {
	opts := influxdb2.DefaultOptions().SetBatchSize(uint(batch)).SetHTTPRequestTimeout(30)
	c := influxdb2.NewClientWithOptions(url, token, opts)
	i := &Influx{client: c, write: c.WriteAPIBlocking(org, bucket), batch: batch, dropped: dropped, log: log,
		wake: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	go i.run()
	return i
}

// Name implements stream.Output.
func (i *Influx) Name() string { return "influxdb" }

// Write implements stream.Output: the batch's points join the queue.
func (i *Influx) Write(_ context.Context, b *stream.Batch) error {
	pts := make([]*write.Point, 0, len(b.Scores)+len(b.Alerts))
	for k := range b.Scores {
		pts = append(pts, ScorePoint(&b.Scores[k]))
	}
	for k := range b.Alerts {
		pts = append(pts, alertPoint(&b.Alerts[k]))
	}
	if len(pts) == 0 {
		return nil
	}
	i.mu.Lock()
	i.queue = append(i.queue, pts...)
	if over := len(i.queue) - QueuePoints; over > 0 {
		i.queue = append(i.queue[:0:0], i.queue[over:]...)
		i.first += int64(over)
		i.dropped.Add(float64(over))
		i.log.Warn("influxdb away: oldest points dropped from a full queue (pdm.scores in Kafka holds them)", "dropped", over, "queued", len(i.queue))
	}
	i.mu.Unlock()
	select {
	case i.wake <- struct{}{}:
	default:
	}
	return nil
}

// Queued is how many points wait for InfluxDB.
func (i *Influx) Queued() int {
	i.mu.Lock()
	defer i.mu.Unlock()
	return len(i.queue)
}

// run writes the queue's oldest points, a batch at a time, until Close.
func (i *Influx) run() {
	defer close(i.done)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { <-i.stop; cancel() }()
	backoff := retry.Backoff{Initial: 100 * time.Millisecond, Max: 5 * time.Second}
	for attempt := 0; ; {
		i.mu.Lock()
		n, from := min(len(i.queue), i.batch), i.first
		pts := i.queue[:n:n]
		i.mu.Unlock()
		if n == 0 {
			select {
			case <-i.stop:
				return
			case <-i.wake:
			}
			continue
		}
		if err := i.write.WritePoint(ctx, pts...); err != nil {
			if ctx.Err() != nil {
				return
			}
			wait := backoff.Next(attempt)
			attempt++
			i.log.Warn("influxdb write failed; points stay queued", "queued", i.Queued(), "attempt", attempt, "retry_in", wait, "err", err)
			if !retry.Sleep(ctx, wait) {
				return
			}
			continue
		}
		attempt = 0
		i.mu.Lock()
		// Points dropped while the write ran have left the queue already.
		if k := from + int64(n) - i.first; k > 0 {
			i.queue = i.queue[k:]
			i.first += k
		}
		i.mu.Unlock()
	}
}

func alertPoint(a *alert.Alert) *write.Point {
	top := ""
	if len(a.TopSensors) > 0 {
		top = a.TopSensors[0].Name
	}
	p := influxdb2.NewPoint("alerts",
		map[string]string{"site": a.Site, "asset": a.Asset, "kind": a.Kind, "severity": string(a.Severity), "state": string(a.State)},
		map[string]any{"id": a.ID, "score": a.Score, "peak": a.Peak, "revision": a.Revision, "first_seq": int64(a.FirstSeq), "last_seq": int64(a.LastSeq),
			"first_ms": a.FirstTime.UnixMilli(), "model": a.Model, "version": a.Version, "top_sensor": top, "acked": a.Acked},
		a.LastTime)
	if a.Resolution != "" {
		p.AddField("resolution", a.Resolution)
	}
	if a.Forecast != nil {
		p.AddField("ttf_seconds", a.Forecast.TimeToFailure)
	}
	return p
}

// ScorePoint is a score as an InfluxDB point.
func ScorePoint(s *stream.Score) *write.Point {
	p := influxdb2.NewPoint("scores",
		map[string]string{"site": s.Site, "asset": s.Asset, "model": s.Model, "version": s.Version},
		map[string]any{"score": s.Score, "alert": s.Alert, "warming_up": s.WarmingUp, "seq": int64(s.Seq)},
		s.Time)
	if s.Forecast != nil {
		p.AddField("ttf_seconds", s.Forecast.TimeToFailure)
		p.AddField("ttf_low_seconds", s.Forecast.Low)
		p.AddField("ttf_high_seconds", s.Forecast.High)
	}
	for _, c := range s.Contributions {
		p.AddField("share_"+c.Name, c.Share)
	}
	if s.Shadow != nil {
		p.AddField("shadow_score", s.Shadow.Score)
		p.AddField("shadow_version", s.Shadow.Version)
	}
	return p
}

// Ping reports whether InfluxDB answers.
func (i *Influx) Ping(ctx context.Context) error {
	ok, err := i.client.Ping(ctx)
	if err != nil {
		return fmt.Errorf("influxdb ping: %w", err)
	}
	if !ok {
		return fmt.Errorf("influxdb ping: not ok")
	}
	return nil
}

// Close stops writing and releases the client; points still queued are
// not written. It waits for the writer until ctx ends; safe to call twice.
func (i *Influx) Close(ctx context.Context) error {
	var err error
	i.closeOnce.Do(func() {
		close(i.stop)
		select {
		case <-i.done:
		case <-ctx.Done():
			err = fmt.Errorf("influxdb: close: %w", ctx.Err())
		}
		i.client.Close()
	})
	return err
}
