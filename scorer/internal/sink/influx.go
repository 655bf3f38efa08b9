package sink

import (
	"context"
	"fmt"

	influxdb2 "github.com/influxdata/influxdb-client-go/v2"
	"github.com/influxdata/influxdb-client-go/v2/api"
	"github.com/influxdata/influxdb-client-go/v2/api/write"
	"github.com/pdmstream/pdm/scorer/internal/stream"
)

// Influx writes scores (measurement "scores") and alert events
// (measurement "alerts"). Points are keyed by series and reading time, so
// a replay overwrites instead of duplicating.
//
// Schema:
//
//	scores,site,asset,model,version  score,alert,warming_up,seq,ttf_seconds,ttf_low_seconds,ttf_high_seconds,share_<sensor>,shadow_score,shadow_version
//	alerts,site,asset,kind,severity,state  id,score,peak,revision,first_seq,last_seq,first_ms,model,version,top_sensor,acked[,resolution][,ttf_seconds]
type Influx struct {
	client influxdb2.Client
	write  api.WriteAPIBlocking
	batch  int
}

// NewInflux returns an output writing to bucket; one WriteAPI for the
// life of the process.
func NewInflux(url, token, org, bucket string, batch, retries int) *Influx {
	opts := influxdb2.DefaultOptions().SetBatchSize(uint(batch)).SetMaxRetries(uint(retries)).SetHTTPRequestTimeout(30)
	c := influxdb2.NewClientWithOptions(url, token, opts)
	return &Influx{client: c, write: c.WriteAPIBlocking(org, bucket), batch: batch}
}

// Name implements stream.Output.
func (i *Influx) Name() string { return "influxdb" }

// Write implements stream.Output. A failure is returned to the loop, which
// retries the batch with backoff.
func (i *Influx) Write(ctx context.Context, b *stream.Batch) error {
	pts := make([]*write.Point, 0, len(b.Scores)+len(b.Alerts))
	for k := range b.Scores {
		pts = append(pts, ScorePoint(&b.Scores[k]))
	}
	for k := range b.Alerts {
		a := &b.Alerts[k]
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
		pts = append(pts, p)
	}
	for len(pts) > 0 {
		n := min(len(pts), i.batch)
		if err := i.write.WritePoint(ctx, pts[:n]...); err != nil {
			return fmt.Errorf("sink: influxdb: %w", err)
		}
		pts = pts[n:]
	}
	return nil
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

// Close releases the client.
func (i *Influx) Close() { i.client.Close() }
