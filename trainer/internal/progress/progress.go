// Package progress shows how a long job is going: a bar when a person
// watches a terminal, log lines with the rate when the output is a file or
// a CI log, where a redrawn bar would be noise.
//
// A Bar takes reports of rows so far and chunks done of a total (the
// history reader's Reporter); it never slows the job: the bar redraws at
// most every 100 ms and the log writes at most one line per interval, plus
// one when the last chunk is done.
package progress

import (
	"cmp"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
)

// DefaultInterval is the time between log lines when not on a terminal.
const DefaultInterval = 5 * time.Second

// Bar renders progress reports. Its methods are safe for concurrent use.
type Bar struct {
	mu    sync.Mutex
	what  string
	w     io.Writer
	log   *slog.Logger
	tty   bool
	bar   *progressbar.ProgressBar // made at the first report, when the total is known
	every time.Duration
	now   func() time.Time

	start, lastLine time.Time
	lastRows        int
	done            bool
}

// New returns a Bar for the job named what: a progress bar on w when w is
// a terminal, else a log line on log every interval (0: DefaultInterval).
func New(w io.Writer, log *slog.Logger, what string, interval time.Duration) *Bar {
	return newBar(w, log, what, interval, isTerminal(w), time.Now)
}

func newBar(w io.Writer, log *slog.Logger, what string, interval time.Duration, tty bool, now func() time.Time) *Bar {
	b := &Bar{what: what, w: w, log: log, tty: tty, every: cmp.Or(interval, DefaultInterval), now: now}
	b.start, b.lastLine = now(), now()
	return b
}

// isTerminal reports whether w is a file on a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(interface{ Fd() uintptr })
	return ok && term.IsTerminal(int(f.Fd()))
}

// Report takes the rows so far and the chunks done of the total.
func (b *Bar) Report(rows, chunk, chunks int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.done {
		return
	}
	now := b.now()
	elapsed := now.Sub(b.start).Seconds()
	if b.tty {
		if b.bar == nil {
			b.bar = progressbar.NewOptions(chunks,
				progressbar.OptionSetWriter(b.w),
				progressbar.OptionShowCount(),
				progressbar.OptionSetPredictTime(true),
				progressbar.OptionSetElapsedTime(true),
				progressbar.OptionThrottle(100*time.Millisecond),
				progressbar.OptionShowElapsedTimeOnFinish(),
				progressbar.OptionOnCompletion(func() { fmt.Fprintln(b.w) }),
			)
		}
		b.bar.Describe(fmt.Sprintf("%s: %d rows, %.0f rows/s", b.what, rows, rate(rows, elapsed)))
		_ = b.bar.Set(chunk)
		b.done = chunk >= chunks
		return
	}
	last := chunk >= chunks
	since := now.Sub(b.lastLine)
	if !last && since < b.every {
		return
	}
	r := rate(rows-b.lastRows, since.Seconds())
	if last {
		r = rate(rows, elapsed)
	}
	b.log.Info(b.what, "rows", rows, "chunk", fmt.Sprintf("%d/%d", chunk, chunks), "rows_per_s", int64(r), "elapsed", now.Sub(b.start).Round(time.Millisecond))
	b.lastLine, b.lastRows, b.done = now, rows, last
}

// Close ends the bar's line on a terminal if the job stopped before its
// last chunk; it is safe to call twice.
func (b *Bar) Close() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.bar != nil && !b.done {
		_ = b.bar.Exit()
		fmt.Fprintln(b.w)
	}
	b.done = true
}

func rate(n int, seconds float64) float64 {
	if seconds <= 0 {
		return 0
	}
	return float64(n) / seconds
}
