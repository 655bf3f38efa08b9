package history

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	influxdb2 "github.com/influxdata/influxdb-client-go/v2"
	"github.com/influxdata/influxdb-client-go/v2/api"
	ihttp "github.com/influxdata/influxdb-client-go/v2/api/http"
	"github.com/influxdata/influxdb-client-go/v2/api/query"

	"github.com/pdmstream/pdm/pdmkit/retry"
)

// Config says where the history is. Zero fields take the defaults noted.
type Config struct {
	// URL of InfluxDB (default http://127.0.0.1:8086).
	URL string
	// Token: on 2.x an API token; on 1.8 "user:password", or empty when
	// authentication is off (default empty).
	Token string
	// Org is the 2.x organisation; 1.8 ignores it (default empty).
	Org string
	// Bucket is the 2.x bucket, or on 1.8 "database/retention-policy"
	// (required).
	Bucket string
	// Timeout bounds one query, request to last byte (default 5m); a
	// query that runs out is retried like any other failure.
	Timeout time.Duration
	// Backoff paces retries (default retry.Backoff{}: 100ms doubling to 10s).
	Backoff retry.Backoff
	// RetryFor is how long InfluxDB may fail before the read gives up
	// with ErrUnavailable (default 10m).
	RetryFor time.Duration
	// HTTPClient, when set, makes every request (TLS settings, proxies,
	// tests); Timeout is then the client's own.
	HTTPClient *http.Client
	// Resample says where each step's mean is taken (default
	// ResampleServer). See Resample.
	Resample Resample
}

// Resample says where the mean of each step is taken; both give the same
// rows (up to the last bits of a mean, summed in another order).
type Resample string

const (
	// ResampleServer: aggregateWindow(fn: mean) in Flux, so only one row
	// per step crosses the network. InfluxDB 2.x pushes it down to its
	// storage engine; InfluxDB 1.8's Flux (0.65) instead builds a table
	// per window and series and manages about 15,000 windows a second on
	// 2 cores (2,400 rows of 6 sensors), so a month at 1s takes it 18
	// minutes.
	ResampleServer Resample = "server"
	// ResampleReader: the points come as stored and the reader averages
	// them, on 1.8 about 50,000 rows/s whatever the step. It moves every
	// stored point, so a chunk is sized for points, not steps (Query.Chunk).
	ResampleReader Resample = "reader"
)

// Validate reports the first thing wrong with c.
func (c Config) Validate() error {
	if c.URL != "" {
		u, err := url.Parse(c.URL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("history: influxdb url %q is not an http(s) URL", c.URL)
		}
	}
	if c.Bucket == "" {
		return errors.New("history: no influxdb bucket (on 1.8: database/retention, e.g. pdm/autogen)")
	}
	switch c.Resample {
	case "", ResampleServer, ResampleReader:
	default:
		return fmt.Errorf("history: resample %q is neither %q nor %q", c.Resample, ResampleServer, ResampleReader)
	}
	if c.Timeout < 0 || c.RetryFor < 0 {
		return fmt.Errorf("history: timeout (%v) and retry_for (%v) cannot be negative", c.Timeout, c.RetryFor)
	}
	return nil
}

// Reporter hears how a read is going: after each chunk, the rows kept so
// far (all assets) and the chunks done of the total.
type Reporter interface {
	Report(rows, chunk, chunks int)
}

// queryAPI is the part of the InfluxDB client used here.
type queryAPI interface {
	Query(ctx context.Context, query string) (*api.QueryTableResult, error)
}

// Reader reads history from InfluxDB.
type Reader struct {
	cfg    Config
	log    *slog.Logger
	client influxdb2.Client
	query  queryAPI
	once   sync.Once
}

// New validates cfg and makes the client; it connects to nothing.
func New(cfg Config, log *slog.Logger) (*Reader, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.URL = cmp.Or(cfg.URL, "http://127.0.0.1:8086")
	cfg.Timeout = cmp.Or(cfg.Timeout, 5*time.Minute)
	cfg.RetryFor = cmp.Or(cfg.RetryFor, 10*time.Minute)
	cfg.Resample = cmp.Or(cfg.Resample, ResampleServer)
	opts := influxdb2.DefaultOptions().SetHTTPRequestTimeout(uint(max(cfg.Timeout/time.Second, 1)))
	if cfg.HTTPClient != nil {
		opts.SetHTTPClient(cfg.HTTPClient)
	}
	c := influxdb2.NewClientWithOptions(cfg.URL, cfg.Token, opts)
	return &Reader{cfg: cfg, log: log.With("component", "history"), client: c, query: c.QueryAPI(cfg.Org)}, nil
}

// Close releases the client; it is safe to call twice.
func (r *Reader) Close(context.Context) error {
	r.once.Do(r.client.Close)
	return nil
}

// Read reads q, one Series per asset in q.Assets order, reporting to rep
// (nil: to no one). When no asset kept a row it returns the empty series
// and a *NoDataError (errors.Is(err, ErrNoData)).
func (r *Reader) Read(ctx context.Context, q Query, rep Reporter) ([]*Series, error) {
	if err := q.Validate(); err != nil {
		return nil, err
	}
	p, step := r.readingsPlan(q)
	o := &outage{log: r.log, retryFor: r.cfg.RetryFor}
	excl, err := r.exclusions(ctx, q, p, o)
	if err != nil {
		return nil, err
	}
	builders := make([]*builder, len(q.Assets))
	for i, a := range q.Assets {
		builders[i] = newBuilder(p.step, p.from, p.to, q.Sensors, len(q.Sensors) > 0)
		builders[i].exclude(excl[a], p.pad)
	}
	n := p.chunks()
	ch := newChunk(q.Assets)
	kept := 0
	for i := range n {
		from, to := p.chunkRange(i)
		flux := readingsFlux(r.cfg.Bucket, q.Site, q.Assets, q.Sensors, from, to, step)
		what := fmt.Sprintf("readings chunk %d/%d", i+1, n)
		if err := r.do(ctx, o, what, func(ctx context.Context) error { return r.readChunk(ctx, flux, ch) }); err != nil {
			return nil, err
		}
		kept = 0
		for k, b := range builders {
			ch.commit(k, b)
			// Reserve for the whole range at the rate seen so far (plus a
			// little), so storage grows a few times, not by doubling.
			b.reserve(min(p.steps(), b.rows()+b.rows()*(n-i-1)/(i+1)+b.rows()/64+1))
			kept += b.rows()
		}
		if rep != nil {
			rep.Report(kept, i+1, n)
		}
	}
	out := make([]*Series, len(builders))
	read := 0
	for k, b := range builders {
		out[k] = b.finish(q.Site, q.Assets[k])
		read += out[k].Read
	}
	if kept == 0 {
		return out, &NoDataError{Site: q.Site, Assets: q.Assets, From: unixTime(p.from), To: unixTime(p.to), Read: read, Excluded: read}
	}
	return out, nil
}

// readingsPlan returns the plan of q's readings queries and the step
// given to Flux: q.Step, or 0 when the reader takes the mean.
func (r *Reader) readingsPlan(q Query) (plan, time.Duration) {
	p := q.plan()
	if r.cfg.Resample != ResampleReader {
		return p, q.Step
	}
	if q.Chunk == 0 {
		p.chunk = readerChunk(p.step, len(q.Assets))
	}
	return p, 0
}

// exclusions reads the alerts and annotations of the assets from Lookback
// before the range to its end and returns each asset's spans, unpadded.
func (r *Reader) exclusions(ctx context.Context, q Query, p plan, o *outage) (map[string][]Exclusion, error) {
	from := p.from - p.lookback
	var events []alertEvent
	flux := eventsFlux(r.cfg.Bucket, "alerts", q.Site, q.Assets, []string{"id", "first_ms", "resolution"}, from, p.to)
	err := r.do(ctx, o, "alerts", func(ctx context.Context) error {
		events = events[:0]
		return r.records(ctx, flux, func(rec *query.FluxRecord) {
			e := alertEvent{asset: str(rec, "asset"), id: str(rec, "id"), state: str(rec, "state"), at: rec.Time().UnixNano(), firstMs: integer(rec, "first_ms"), resolution: str(rec, "resolution")}
			if e.id != "" {
				events = append(events, e)
			}
		})
	})
	if err != nil {
		return nil, err
	}
	var anns []annotation
	flux = eventsFlux(r.cfg.Bucket, "annotations", q.Site, q.Assets, []string{"end_ms", "note"}, from, p.to)
	err = r.do(ctx, o, "annotations", func(ctx context.Context) error {
		anns = anns[:0]
		return r.records(ctx, flux, func(rec *query.FluxRecord) {
			anns = append(anns, annotation{asset: str(rec, "asset"), kind: str(rec, "kind"), note: str(rec, "note"), start: rec.Time().UnixNano(), endMs: integer(rec, "end_ms")})
		})
	})
	if err != nil {
		return nil, err
	}
	out := map[string][]Exclusion{}
	for _, a := range q.Assets {
		var ev []alertEvent
		for _, e := range events {
			if e.asset == a {
				ev = append(ev, e)
			}
		}
		var an []annotation
		for _, x := range anns {
			if x.asset == a {
				an = append(an, x)
			}
		}
		ex, ignored := annotationExclusions(an, p.to)
		for _, x := range ignored {
			r.log.Warn("annotation ignored: kind is not maintenance or abnormal, or it ends before it starts",
				"asset", a, "kind", x.kind, "start", unixTime(x.start), "end_ms", x.endMs)
		}
		out[a] = append(alertExclusions(ev, p.from, p.to), ex...)
	}
	return out, nil
}

// records streams the result of flux to fn, a record at a time.
func (r *Reader) records(ctx context.Context, flux string, fn func(*query.FluxRecord)) error {
	res, err := r.query.Query(ctx, flux)
	if err != nil {
		return err
	}
	defer res.Close()
	for res.Next() {
		fn(res.Record())
	}
	return res.Err()
}

// readChunk streams one chunk of readings into ch, which holds it until
// commit; a failed attempt's rows are dropped by the reset at the start of
// the next.
func (r *Reader) readChunk(ctx context.Context, flux string, ch *chunk) error {
	ch.reset()
	res, err := r.query.Query(ctx, flux)
	if err != nil {
		return err
	}
	defer res.Close()
	var (
		cols  []string // the table's sensor columns
		asset string
		dst   *assetRows
		colIx []int
	)
	for res.Next() {
		if res.TableChanged() {
			cols = sensorColumns(res.TableMetadata())
			asset, dst = "", nil
		}
		rec := res.Record()
		if a := str(rec, "asset"); a != asset || dst == nil {
			asset, dst = a, ch.rows(a)
			if dst == nil {
				continue
			}
			colIx = colIx[:0]
			for _, c := range cols {
				colIx = append(colIx, dst.column(c))
			}
		}
		if dst == nil {
			continue
		}
		vals := rec.Values()
		i := dst.newRow(rec.Time().UnixNano())
		for k, c := range cols {
			if v, ok := vals[c].(float64); ok {
				dst.cols[colIx[k]][i] = v
			}
		}
	}
	return res.Err()
}

// sensorColumns returns the pivoted field columns of a table: the
// doubles outside the group key.
func sensorColumns(m *query.FluxTableMetadata) []string {
	var cols []string
	for _, c := range m.Columns() {
		if c.DataType() == "double" && !c.IsGroup() && !strings.HasPrefix(c.Name(), "_") {
			cols = append(cols, c.Name())
		}
	}
	return cols
}

func str(rec *query.FluxRecord, key string) string {
	s, _ := rec.ValueByKey(key).(string)
	return s
}

// integer reads an integer field, whether stored as integer or float.
func integer(rec *query.FluxRecord, key string) int64 {
	switch v := rec.ValueByKey(key).(type) {
	case int64:
		return v
	case uint64:
		return int64(v)
	case float64:
		return int64(v)
	}
	return 0
}

// chunk holds one chunk's rows per asset, columnar, until it is complete.
type chunk struct {
	assets []string
	per    []*assetRows
}

// assetRows is one asset's rows of a chunk: times and, per field seen,
// a column with NaN where the field had no value.
type assetRows struct {
	times []int64
	names []string
	index map[string]int
	cols  [][]float64
}

func newChunk(assets []string) *chunk {
	c := &chunk{assets: assets}
	for range assets {
		c.per = append(c.per, &assetRows{index: map[string]int{}})
	}
	return c
}

func (c *chunk) reset() {
	for _, a := range c.per {
		a.times = a.times[:0]
		a.names = a.names[:0]
		clear(a.index)
		for i := range a.cols {
			a.cols[i] = a.cols[i][:0]
		}
		a.cols = a.cols[:0]
	}
}

// rows returns the rows of asset, or nil for an asset not asked for.
func (c *chunk) rows(asset string) *assetRows {
	if i := slices.Index(c.assets, asset); i >= 0 {
		return c.per[i]
	}
	return nil
}

func (a *assetRows) column(name string) int {
	if i, ok := a.index[name]; ok {
		return i
	}
	i := len(a.names)
	a.names = append(a.names, name)
	a.index[name] = i
	var col []float64
	if i < cap(a.cols) {
		col = a.cols[:i+1][i][:0] // reuse the slice of an earlier chunk
	}
	a.cols = append(a.cols, col)
	for range a.times {
		a.cols[i] = append(a.cols[i], math.NaN())
	}
	return i
}

func (a *assetRows) newRow(t int64) int {
	a.times = append(a.times, t)
	for i := range a.cols {
		a.cols[i] = append(a.cols[i], math.NaN())
	}
	return len(a.times) - 1
}

// commit moves asset k's rows of the chunk into b in time order, one row
// per step: the mean of each sensor's values in the window (one value when
// InfluxDB took the mean, the stored points with ResampleReader). Flux's
// pivot appends a time first seen in a later field's table after the
// others, and an asset can come in more than one table, so rows are sorted
// here first.
func (c *chunk) commit(k int, b *builder) {
	a := c.per[k]
	if len(a.times) == 0 {
		return
	}
	b.addSensors(a.names)
	w := len(b.sensors)
	where := make([]int, len(a.names)) // builder column of each chunk column, -1 if not read
	for j, n := range a.names {
		if i, ok := b.index[n]; ok {
			where[j] = i
		} else {
			where[j] = -1
		}
	}
	order := make([]int, len(a.times))
	for i := range order {
		order[i] = i
	}
	if !slices.IsSorted(a.times) {
		sort.SliceStable(order, func(x, y int) bool { return a.times[order[x]] < a.times[order[y]] })
	}
	row, sums, counts := make([]float64, w), make([]float64, w), make([]int, w)
	for p := 0; p < len(order); {
		t := floorStep(a.times[order[p]], b.step)
		clear(sums)
		clear(counts)
		for ; p < len(order) && floorStep(a.times[order[p]], b.step) == t; p++ {
			for j, col := range a.cols {
				if v := col[order[p]]; where[j] >= 0 && !math.IsNaN(v) {
					sums[where[j]] += v
					counts[where[j]]++
				}
			}
		}
		some := false
		for i := range row {
			row[i] = math.NaN()
			if counts[i] > 0 {
				row[i], some = sums[i]/float64(counts[i]), true
			}
		}
		if some {
			b.add(t, row)
		}
	}
}

// do runs fn under retry: transient failures (no connection, 5xx, a
// response cut short) are retried with backoff, refusals end the read at
// once with ErrRejected, and an outage longer than RetryFor ends it with
// ErrUnavailable.
func (r *Reader) do(ctx context.Context, o *outage, what string, fn func(context.Context) error) error {
	err := retry.Do(ctx, r.cfg.Backoff, func(attempt int, err error, wait time.Duration) { o.failed(what, err) },
		func(ctx context.Context) error {
			err := fn(ctx)
			switch {
			case err == nil:
				o.recovered()
				return nil
			case ctx.Err() != nil:
				return err
			case refused(err):
				return retry.Permanent(fmt.Errorf("%w: %s, bucket %q: %w", ErrRejected, what, r.cfg.Bucket, err))
			case o.over():
				return retry.Permanent(fmt.Errorf("%w for %s: %s: %w", ErrUnavailable, o.duration().Round(time.Second), what, err))
			}
			return err
		})
	if err != nil && !errors.Is(err, ErrRejected) && !errors.Is(err, ErrUnavailable) {
		return fmt.Errorf("history: %s: %w", what, err)
	}
	return err
}

// outage logs one line when InfluxDB starts failing and one when it
// answers again, however many attempts lie between.
type outage struct {
	log      *slog.Logger
	retryFor time.Duration
	since    time.Time
	attempts int
	lastErr  string
}

func (o *outage) failed(what string, err error) {
	if o.attempts == 0 {
		o.since = time.Now()
		o.log.Warn("influxdb is failing; retrying until it answers", "query", what, "err", err)
	}
	o.attempts++
	o.lastErr = err.Error()
}

func (o *outage) recovered() {
	if o.attempts == 0 {
		return
	}
	o.log.Info("influxdb answers again", "failed_attempts", o.attempts, "down_for", o.duration().Round(time.Millisecond), "last_err", o.lastErr)
	o.attempts = 0
}

func (o *outage) over() bool { return o.attempts > 0 && o.duration() >= o.retryFor }

func (o *outage) duration() time.Duration { return time.Since(o.since) }

// refusalMarks are in the messages InfluxDB 1.8 sends with status 500 for
// a query it will never run: 1.8 answers every Flux compile and planning
// error (unknown database, syntax, types) with 500, not 4xx, so the status
// alone would retry them forever. "loc " starts a syntax error's position.
var refusalMarks = []string{
	"no database", "type error", "undefined identifier", "unknown import path", "loc ",
	"error calling function", "unsupported", "not found", "unauthorized", "authorization",
}

// transientMarks are in the messages of a connection that failed or a
// response cut short; the client library flattens these to text when it
// closes a result, so the message is all there is to go by.
var transientMarks = []string{
	"eof", "connection reset", "broken pipe", "connection refused", "timeout", "gzip", "flate",
	"use of closed network connection", "server closed", "no such host",
}

// refused reports whether err is InfluxDB refusing the query rather than
// failing to run it: a 4xx (2.x: bad query 400, unknown bucket 404, token
// 401/403) other than 408/429, or a 1.8 refusal (refusalMarks). Failures to
// connect, 5xx otherwise and responses cut short are transient.
func refused(err error) bool {
	if transient(err) {
		return false
	}
	var he *ihttp.Error
	if errors.As(err, &he) && he.StatusCode != 0 {
		switch {
		case he.StatusCode == http.StatusRequestTimeout || he.StatusCode == http.StatusTooManyRequests:
			return false
		case he.StatusCode >= 400 && he.StatusCode < 500:
			return true
		case he.StatusCode != http.StatusInternalServerError:
			return false
		}
	}
	// A 500 from 1.8, or an error table in the stream: by the message.
	msg := err.Error()
	if he != nil {
		msg += " " + he.Message
	}
	return hasMark(msg, refusalMarks)
}

// transient reports failures of the connection itself.
func transient(err error) bool {
	var ne net.Error
	if errors.As(err, &ne) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) {
		return true
	}
	var he *ihttp.Error
	if errors.As(err, &he) && he.StatusCode != 0 {
		return false // InfluxDB answered; its message is not about the connection
	}
	return hasMark(err.Error(), transientMarks)
}

func hasMark(msg string, marks []string) bool {
	msg = strings.ToLower(msg)
	for _, m := range marks {
		if strings.Contains(msg, m) {
			return true
		}
	}
	return false
}
