// Package retry is the one way the services wait and try again: capped
// exponential backoff with full jitter, ended by the context.
package retry

import (
	"cmp"
	"context"
	"errors"
	"math/rand/v2"
	"time"
)

// Backoff describes the waits between attempts. Zero fields take the
// defaults noted.
type Backoff struct {
	// Initial is the cap of the first wait (default 100ms); each later cap
	// doubles up to Max (default 10s).
	Initial, Max time.Duration
}

// Next returns the wait before attempt n (0 = the first retry): a uniformly
// random duration in [cap/2, cap], so instances that failed together do not
// retry together.
func (b Backoff) Next(n int) time.Duration {
	initial, maxWait := cmp.Or(b.Initial, 100*time.Millisecond), cmp.Or(b.Max, 10*time.Second)
	c := initial
	for i := 0; i < n && c < maxWait; i++ {
		c *= 2
	}
	c = min(c, maxWait)
	return c/2 + rand.N(c/2+1)
}

// Do calls fn until it returns nil, a Permanent error or ctx ends, waiting
// b.Next between attempts. onRetry, when set, hears of every failed attempt
// before the wait (for a log line or a counter). It returns nil, the
// permanent error unwrapped, or ctx's error joined with the last failure.
func Do(ctx context.Context, b Backoff, onRetry func(attempt int, err error, wait time.Duration), fn func(context.Context) error) error {
	for n := 0; ; n++ {
		err := fn(ctx)
		if err == nil {
			return nil
		}
		if p, ok := err.(permanent); ok {
			return p.err
		}
		if ctx.Err() != nil {
			return errors.Join(ctx.Err(), err)
		}
		wait := b.Next(n)
		if onRetry != nil {
			onRetry(n+1, err, wait)
		}
		if !Sleep(ctx, wait) {
			return errors.Join(ctx.Err(), err)
		}
	}
}

// Sleep waits d or until ctx ends; it reports whether the full wait passed.
func Sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// Permanent marks an error that retrying cannot fix; Do returns it at once.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return permanent{err}
}

type permanent struct{ err error }

func (p permanent) Error() string { return p.err.Error() }
func (p permanent) Unwrap() error { return p.err }
