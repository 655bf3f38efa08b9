package retry

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestNextIsJitteredAndCapped(t *testing.T) {
	b := Backoff{Initial: 100 * time.Millisecond, Max: time.Second}
	for n, c := range []time.Duration{100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond, 800 * time.Millisecond, time.Second, time.Second} {
		seen := map[time.Duration]bool{}
		for range 50 {
			w := b.Next(n)
			if w < c/2 || w > c {
				t.Fatalf("Next(%d) = %v, want in [%v, %v]", n, w, c/2, c)
			}
			seen[w] = true
		}
		if len(seen) < 10 {
			t.Fatalf("Next(%d) gave only %d distinct waits in 50: not jittered", n, len(seen))
		}
	}
}

func TestDoRetriesUntilSuccess(t *testing.T) {
	calls, heard := 0, 0
	err := Do(context.Background(), Backoff{Initial: time.Millisecond, Max: 2 * time.Millisecond},
		func(int, error, time.Duration) { heard++ },
		func(context.Context) error {
			calls++
			if calls < 4 {
				return errors.New("down")
			}
			return nil
		})
	if err != nil || calls != 4 || heard != 3 {
		t.Fatalf("err %v after %d calls and %d retries heard, want nil after 4 and 3", err, calls, heard)
	}
}

func TestDoStopsOnPermanent(t *testing.T) {
	bad := errors.New("field type conflict")
	calls := 0
	err := Do(context.Background(), Backoff{}, nil, func(context.Context) error {
		calls++
		return Permanent(bad)
	})
	if !errors.Is(err, bad) || calls != 1 {
		t.Fatalf("err %v after %d calls, want %v after 1", err, calls, bad)
	}
}

func TestDoEndsWithContext(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	err := Do(ctx, Backoff{Initial: 5 * time.Millisecond, Max: 10 * time.Millisecond}, nil, func(context.Context) error {
		return errors.New("down")
	})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err %v, want the context's deadline", err)
	}
}
