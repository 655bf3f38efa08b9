package alertview

import (
	"context"
	"github.com/pdmstream/pdm/pdmkit/alert"
	"github.com/pdmstream/pdm/scorer/internal/stream"
	"slices"
	"strings"
	"sync"
)

// Store keeps the latest event of every alert this instance published,
// for the API's alert list.
type Store struct {
	mu     sync.RWMutex
	alerts map[string]alert.Alert
	// Max bounds how many resolved alerts are kept; the oldest go first.
	max int
	// subs receive every event Put keeps.
	subs map[chan alert.Alert]struct{}
}

// SubscriberBuffer is how many events a subscriber may fall behind before
// its channel is closed; a closed subscriber starts again from List.
const SubscriberBuffer = 256

// Subscribe returns a channel of every event the store keeps from now on,
// and a function that ends the subscription. A subscriber that falls
// SubscriberBuffer events behind has its channel closed rather than
// slowing the scoring loop that feeds the store.
func (s *Store) Subscribe() (<-chan alert.Alert, func()) {
	ch := make(chan alert.Alert, SubscriberBuffer)
	s.mu.Lock()
	s.subs[ch] = struct{}{}
	s.mu.Unlock()
	return ch, func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if _, ok := s.subs[ch]; ok {
			delete(s.subs, ch)
			close(ch)
		}
	}
}

// publish hands a kept event to every subscriber; s.mu is held.
func (s *Store) publish(a alert.Alert) {
	for ch := range s.subs {
		select {
		case ch <- a:
		default:
			delete(s.subs, ch)
			close(ch)
		}
	}
}

// NewStore keeps up to max alerts (default 10,000).
func NewStore(max int) *Store {
	if max <= 0 {
		max = 10_000
	}
	return &Store{alerts: map[string]alert.Alert{}, max: max, subs: map[chan alert.Alert]struct{}{}}
}

// Name implements stream.Output: the store is the output that feeds the
// API's alert list.
func (s *Store) Name() string { return "memory" }

// Write implements stream.Output.
func (s *Store) Write(ctx context.Context, b *stream.Batch) error {
	if len(b.Alerts) > 0 {
		s.Put(ctx, b.Alerts)
	}
	return nil
}

// Put records events; an older revision never replaces a newer one.
func (s *Store) Put(_ context.Context, events []alert.Alert) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, a := range events {
		old, ok := s.alerts[a.ID]
		if ok && old.Revision > a.Revision {
			continue
		}
		// An acknowledgement stays: a new owner after a rebalance does not
		// know of it and publishes later events unacknowledged.
		if ok && old.Acked && !a.Acked {
			a.Acked, a.AckedBy, a.AckedAt = true, old.AckedBy, old.AckedAt
		}
		if ok && old.Revision == a.Revision && old.Acked == a.Acked {
			continue // the same event again (replay, or the topic echoing this instance's output)
		}
		s.alerts[a.ID] = a
		s.publish(a)
	}
	if len(s.alerts) > s.max {
		s.evict()
	}
}

// evict drops the oldest resolved alerts down to max.
func (s *Store) evict() {
	var resolved []alert.Alert
	for _, a := range s.alerts {
		if a.State == alert.Resolved {
			resolved = append(resolved, a)
		}
	}
	slices.SortFunc(resolved, func(a, b alert.Alert) int { return a.LastTime.Compare(b.LastTime) })
	for _, a := range resolved {
		if len(s.alerts) <= s.max {
			return
		}
		delete(s.alerts, a.ID)
	}
}

// Filter selects alerts for List.
type Filter struct {
	// Open keeps only alerts that are not resolved.
	Open  bool
	Asset string
	Site  string
	// Severity keeps only alerts of this severity.
	Severity alert.Severity
}

// Match reports whether a passes the filter.
func (f *Filter) Match(a *alert.Alert) bool {
	return !(f.Open && a.State == alert.Resolved) && (f.Asset == "" || a.Asset == f.Asset) &&
		(f.Site == "" || a.Site == f.Site) && (f.Severity == "" || a.Severity == f.Severity)
}

// List returns the alerts matching f, latest reading first.
func (s *Store) List(f Filter) []alert.Alert {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]alert.Alert, 0, len(s.alerts))
	for _, a := range s.alerts {
		if !f.Match(&a) {
			continue
		}
		out = append(out, a)
	}
	slices.SortFunc(out, func(a, b alert.Alert) int {
		if c := b.LastTime.Compare(a.LastTime); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return out
}

// Get returns one alert.
func (s *Store) Get(id string) (alert.Alert, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	a, ok := s.alerts[id]
	return a, ok
}
