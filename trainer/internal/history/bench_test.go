package history

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/url"
	"os"
	"runtime"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pdmstream/pdm/pdmkit/retry"
	"github.com/pdmstream/pdm/pdmkit/stacktest"
)

// The benchmark's data: one asset, six sensors at 1 Hz for benchDays days
// (PDM_BENCH_HISTORY_DAYS, default 30: 2,592,000 rows), kept in its own
// database between runs and written again only when absent or of another
// length.
const (
	benchDB    = "pdm_bench_history"
	benchSite  = "bench"
	benchAsset = "pump-1"
)

var benchStart = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

func benchDays() int {
	if d, err := strconv.Atoi(os.Getenv("PDM_BENCH_HISTORY_DAYS")); err == nil && d > 0 {
		return d
	}
	return 30
}

// BenchmarkRead reads the benchmark range with the reader and, as the
// ceiling, downloads the Flux CSV of the same chunk queries with plain HTTP
// POSTs and discards it. Reported: rows/s of each, the reader's ratio to
// the ceiling of the same run, its peak heap and peak RSS during the read.
// With the mean taken in the reader (the way to read InfluxDB 1.8) the
// whole range is read; with the mean in InfluxDB, one hour of it, since
// 1.8's aggregateWindow manages about 2,400 rows a second.
func BenchmarkRead(b *testing.B) {
	base := stacktest.InfluxURL(b)
	days := benchDays()
	benchData(b, base, days)
	for _, tc := range []struct {
		resample Resample
		span     time.Duration
		name     string
	}{
		{ResampleReader, time.Duration(days) * 24 * time.Hour, fmt.Sprintf("resample=reader/days=%d", days)},
		{ResampleServer, time.Hour, "resample=server/hours=1"},
	} {
		b.Run(tc.name, func(b *testing.B) {
			q := Query{Site: benchSite, Assets: []string{benchAsset}, From: benchStart, To: benchStart.Add(tc.span), Step: time.Second}
			benchRead(b, base, q, tc.resample)
		})
	}
}

func benchRead(b *testing.B, base string, q Query, resample Resample) {
	bucket := benchDB + "/autogen"
	r, err := New(Config{URL: base, Bucket: bucket, Token: stacktest.InfluxToken(b), Resample: resample}, discardLogger())
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close(context.Background())
	p, step := r.readingsPlan(q)
	want := int(q.To.Sub(q.From) / time.Second)
	var ceiling float64
	b.Run("baseline=flux-csv", func(b *testing.B) {
		rows, size := 0, int64(0)
		for b.Loop() {
			rows, size = 0, 0
			for i := range p.chunks() {
				from, to := p.chunkRange(i)
				n, s := rawFlux(b, base, bucket, readingsFlux(bucket, q.Site, q.Assets, nil, from, to, step))
				rows, size = rows+n, size+s
			}
		}
		if rows != want {
			b.Fatalf("%d CSV rows, want %d", rows, want)
		}
		ceiling = float64(rows) * float64(b.N) / b.Elapsed().Seconds()
		b.ReportMetric(ceiling, "rows/s")
		b.ReportMetric(float64(size)/float64(rows), "csv-bytes/row")
		b.ReportMetric(0, "ns/op")
	})
	b.Run("reader", func(b *testing.B) {
		resetPeakRSS()
		peak := sampleHeap()
		rows := 0
		var got []*Series
		for b.Loop() {
			got, err = r.Read(context.Background(), q, nil)
			if err != nil {
				b.Fatal(err)
			}
			rows = got[0].Rows
		}
		heap := peak()
		b.ReportMetric(float64(liveHeap())/(1<<20), "held-MiB")
		runtime.KeepAlive(got)
		if rows != want {
			b.Fatalf("read %d rows, want %d", rows, want)
		}
		rate := float64(rows) * float64(b.N) / b.Elapsed().Seconds()
		b.ReportMetric(rate, "rows/s")
		if ceiling > 0 {
			b.ReportMetric(rate/ceiling, "ratio")
		}
		b.ReportMetric(float64(heap)/(1<<20), "peak-heap-MiB")
		b.ReportMetric(float64(peakRSS())/(1<<20), "peak-rss-MiB")
		b.ReportMetric(0, "ns/op")
	})
}

// rawFlux posts flux as the client does (same dialect, gzip) and returns
// the data rows and bytes of the CSV, read to the end and discarded.
func rawFlux(b *testing.B, base, bucket, flux string) (rows int, size int64) {
	b.Helper()
	body, _ := json.Marshal(map[string]any{"query": flux, "type": "flux", "dialect": map[string]any{
		"annotations": []string{"datatype", "group", "default"}, "delimiter": ",", "header": true,
	}})
	req, _ := http.NewRequest(http.MethodPost, base+"/api/v2/query?org=", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept-Encoding", "gzip")
	if tok := stacktest.InfluxToken(b); tok != "" {
		req.Header.Set("Authorization", "Token "+tok)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(resp.Body)
		b.Fatalf("flux: %s: %s", resp.Status, msg)
	}
	var rd io.Reader = resp.Body
	if resp.Header.Get("Content-Encoding") == "gzip" {
		if rd, err = gzip.NewReader(resp.Body); err != nil {
			b.Fatal(err)
		}
	}
	br := bufio.NewReaderSize(rd, 64<<10)
	for {
		line, err := br.ReadSlice('\n')
		size += int64(len(line))
		if bytes.HasPrefix(line, []byte(",,")) {
			rows++
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		if err != nil {
			break
		}
	}
	return rows, size
}

// benchData makes sure the benchmark database holds days of data, writing
// it when it does not (and saying how long that took).
func benchData(b *testing.B, base string, days int) {
	b.Helper()
	if benchWritten(b, base) == days {
		return
	}
	b.Logf("writing %d days of 1 Hz readings (%d rows, 6 sensors) into %s ...", days, days*86400, benchDB)
	influxQL(b, base, "DROP DATABASE "+benchDB)
	influxQL(b, base, "CREATE DATABASE "+benchDB)
	start := time.Now()
	rows := days * 86400
	const batch = 10_000
	batches := make(chan int)
	var (
		wg       sync.WaitGroup
		failed   atomic.Pointer[error]
		writeURL = fmt.Sprintf("%s/api/v2/write?bucket=%s&precision=ms", base, url.QueryEscape(benchDB+"/autogen"))
	)
	for range 2 { // one writer per core keeps InfluxDB busy without queueing
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 0, batch*128)
			for first := range batches {
				buf = buf[:0]
				for i := first; i < min(first+batch, rows); i++ {
					buf = benchLine(buf, i)
				}
				// Retried: right after CREATE DATABASE, 1.8 can still answer
				// a write with "database not found" for a moment.
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				err := retry.Do(ctx, retry.Backoff{}, nil, func(context.Context) error { return post(b, writeURL, buf) })
				cancel()
				if err != nil {
					failed.Store(&err)
				}
			}
		}()
	}
	for first := 0; first < rows && failed.Load() == nil; first += batch {
		batches <- first
	}
	close(batches)
	wg.Wait()
	if e := failed.Load(); e != nil {
		b.Fatalf("writing the benchmark data: %v", *e)
	}
	elapsed := time.Since(start)
	mark := fmt.Sprintf("bench_complete days=%di,rows=%di %d", days, rows, benchStart.UnixMilli())
	if err := post(b, writeURL, []byte(mark)); err != nil {
		b.Fatal(err)
	}
	b.Logf("wrote %d rows in %s (%.0f rows/s, %d cores)", rows, elapsed.Round(time.Second), float64(rows)/elapsed.Seconds(), runtime.NumCPU())
}

// benchLine appends reading i: six sensors, smooth functions of time with
// a little deterministic noise, and seq.
func benchLine(buf []byte, i int) []byte {
	s := float64(i)
	noise := func(k int) float64 { return float64((i*2654435761+k*40503)%1000)/1000 - 0.5 }
	buf = append(buf, "readings,site="+benchSite+",asset="+benchAsset+" "...)
	for k, v := range []float64{
		0.3 + 0.05*math.Sin(s/600) + 0.01*noise(1),
		60 + 5*math.Sin(s/86400*2*math.Pi) + 0.1*noise(2),
		12 + 0.5*math.Sin(s/3600) + 0.05*noise(3),
		2.1 + 0.2*math.Cos(s/900) + 0.02*noise(4),
		1480 + 10*math.Sin(s/300) + noise(5),
		35 + 3*math.Sin(s/7200) + 0.1*noise(6),
	} {
		buf = append(buf, 's', byte('1'+k), '=')
		buf = strconv.AppendFloat(buf, v, 'f', 4, 64)
		buf = append(buf, ',')
	}
	buf = append(buf, "seq="...)
	buf = strconv.AppendInt(buf, int64(i), 10)
	buf = append(buf, 'i', ' ')
	buf = strconv.AppendInt(buf, benchStart.UnixMilli()+int64(i)*1000, 10)
	return append(buf, '\n')
}

func post(b *testing.B, u string, body []byte) error {
	req, _ := http.NewRequest(http.MethodPost, u, bytes.NewReader(body))
	if tok := stacktest.InfluxToken(b); tok != "" {
		req.Header.Set("Authorization", "Token "+tok)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("write: %s: %s", resp.Status, msg)
	}
	return nil
}

// benchWritten returns the days the benchmark database holds (0: none).
func benchWritten(b *testing.B, base string) int {
	resp, err := stacktest.InfluxQuery(b, base, url.Values{"db": {benchDB}, "q": {"SELECT last(days) FROM bench_complete"}})
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		Results []struct {
			Series []struct {
				Values [][]any `json:"values"`
			} `json:"series"`
		} `json:"results"`
	}
	if json.NewDecoder(resp.Body).Decode(&out) != nil || len(out.Results) == 0 || len(out.Results[0].Series) == 0 {
		return 0
	}
	v, _ := out.Results[0].Series[0].Values[0][1].(float64)
	return int(v)
}

func influxQL(b *testing.B, base, q string) {
	resp, err := stacktest.InfluxQuery(b, base, url.Values{"q": {q}})
	if err != nil {
		b.Fatal(err)
	}
	resp.Body.Close()
}

// sampleHeap samples the heap every 2 ms until the returned func is
// called, which returns the peak bytes of heap objects (live and not yet
// swept): what the process had to hold.
func sampleHeap() func() uint64 {
	runtime.GC()
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	var peak atomic.Uint64
	done, stopped := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(stopped)
		t := time.NewTicker(2 * time.Millisecond)
		defer t.Stop()
		for {
			metrics.Read(s)
			if v := s[0].Value.Uint64(); v > peak.Load() {
				peak.Store(v)
			}
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	}()
	return func() uint64 { close(done); <-stopped; return peak.Load() }
}

// liveHeap returns the heap still reachable after a collection: what the
// result holds.
func liveHeap() uint64 {
	runtime.GC()
	s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// resetPeakRSS makes the kernel's peak RSS (VmHWM) start again from the
// current RSS (Linux: clear_refs 5).
func resetPeakRSS() { _ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) }

// peakRSS returns VmHWM in bytes (0 where /proc is not there).
func peakRSS() uint64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.ParseUint(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }
