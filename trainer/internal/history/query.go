package history

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/pdmstream/pdm/pdmkit/wire"
)

// Query says which history to read. The zero values of Chunk, Pad and
// Lookback take the defaults noted.
type Query struct {
	// Site is the site tag of the readings.
	Site string
	// Assets is one asset, or an asset class: assets sharing one model,
	// read together and returned one Series each, in this order.
	Assets []string
	// From and To bound the range [From, To). From is rounded up and To
	// down to multiples of Step since the Unix epoch, so every step's
	// window lies wholly inside the range.
	From, To time.Time
	// Step is the resampling step (required, at least 1ms, the precision
	// readings are stored with): a row at t is the mean of each sensor's
	// readings in [t, t+Step).
	Step time.Duration
	// Sensors, when set, are the fields read, in this order; each is a
	// column of every Series even where it has no data. Default: every
	// field of "readings" except seq, sorted by name; an asset's sensors
	// are then the fields seen for it anywhere in the range.
	Sensors []string
	// Chunk is the span one Flux query reads, rounded down to a multiple
	// of Step. Default: about DefaultChunkRows rows, DefaultChunkRows ×
	// Step / len(Assets); with ResampleReader, DefaultChunkRows × min(Step,
	// 1s) / len(Assets), since every stored point is read. It bounds what
	// InfluxDB and the reader hold for one query.
	Chunk time.Duration
	// Pad widens every excluded span on both sides, because an alert opens
	// after the excursion began and resolves after the last abnormal
	// reading. Default 3 × Step; negative for none.
	Pad time.Duration
	// Lookback is how far before From alerts and annotations are looked
	// for, so that one begun earlier and still open at From excludes from
	// From (default 30 days).
	Lookback time.Duration
}

// DefaultChunkRows is about how many rows one chunk holds by default: large
// enough that per-query overhead is small, small enough that InfluxDB's
// pivot and the chunk held aside for retries stay a few MiB.
const DefaultChunkRows = 100_000

// readerChunk is the default chunk when the reader averages stored points
// (ResampleReader): about DefaultChunkRows points for readings a second
// apart (the edge agents' rate) or one per step when steps are shorter,
// shared by the assets.
func readerChunk(step int64, assets int) int64 {
	per := min(int64(time.Second), step)
	return max(floorStep(DefaultChunkRows*per/int64(max(assets, 1)), step), step)
}

// DefaultLookback is the default Query.Lookback.
const DefaultLookback = 30 * 24 * time.Hour

// Validate reports the first thing wrong with q.
func (q Query) Validate() error {
	if !wire.ValidID(q.Site) {
		return fmt.Errorf("history: site %q is not a valid name", q.Site)
	}
	if len(q.Assets) == 0 {
		return errors.New("history: no assets")
	}
	for i, a := range q.Assets {
		if !wire.ValidID(a) {
			return fmt.Errorf("history: asset %q is not a valid name", a)
		}
		if slices.Contains(q.Assets[:i], a) {
			return fmt.Errorf("history: asset %q listed twice", a)
		}
	}
	for i, s := range q.Sensors {
		if !wire.ValidID(s) || s == "seq" {
			return fmt.Errorf("history: sensor %q is not a sensor name", s)
		}
		if slices.Contains(q.Sensors[:i], s) {
			return fmt.Errorf("history: sensor %q listed twice", s)
		}
	}
	if q.Step < time.Millisecond {
		return fmt.Errorf("history: step (%v) must be at least 1ms", q.Step)
	}
	if q.Chunk != 0 && q.Chunk < q.Step {
		return fmt.Errorf("history: chunk (%v) cannot be shorter than step (%v)", q.Chunk, q.Step)
	}
	if q.Lookback < 0 {
		return fmt.Errorf("history: lookback (%v) cannot be negative", q.Lookback)
	}
	p := q.plan()
	if p.from >= p.to {
		return fmt.Errorf("history: range %s to %s holds no whole step of %v", q.From.UTC().Format(time.RFC3339Nano), q.To.UTC().Format(time.RFC3339Nano), q.Step)
	}
	return nil
}

// plan is a validated query in Unix nanoseconds, defaults applied.
type plan struct {
	from, to, step, chunk, pad, lookback int64
}

func (q Query) plan() plan {
	step := int64(q.Step)
	p := plan{step: step, from: ceilStep(q.From.UnixNano(), step), to: floorStep(q.To.UnixNano(), step)}
	p.chunk = int64(q.Chunk)
	if p.chunk == 0 {
		p.chunk = DefaultChunkRows * step / int64(max(len(q.Assets), 1))
	}
	p.chunk = max(floorStep(p.chunk, step), step)
	switch {
	case q.Pad == 0:
		p.pad = 3 * step
	case q.Pad > 0:
		p.pad = int64(q.Pad)
	}
	p.lookback = int64(q.Lookback)
	if p.lookback == 0 {
		p.lookback = int64(DefaultLookback)
	}
	return p
}

// chunks returns the number of chunk queries the range takes.
func (p plan) chunks() int { return int((p.to - p.from + p.chunk - 1) / p.chunk) }

// chunkRange returns chunk i's [from, to).
func (p plan) chunkRange(i int) (int64, int64) {
	from := p.from + int64(i)*p.chunk
	return from, min(from+p.chunk, p.to)
}

// steps returns the number of steps in the range: the most rows an asset
// can have.
func (p plan) steps() int { return int((p.to - p.from) / p.step) }

func floorStep(t, step int64) int64 {
	r := t % step
	if r < 0 {
		r += step
	}
	return t - r
}

func ceilStep(t, step int64) int64 {
	f := floorStep(t, step)
	if f == t {
		return t
	}
	return f + step
}

func unixTime(ns int64) time.Time { return time.Unix(0, ns).UTC() }
