package alertview

import (
	"context"
	"github.com/pdmstream/pdm/pdmkit/alert"
	"testing"
	"time"
)

func TestStoreKeepsLatestAndAck(t *testing.T) {
	s := NewStore(2)
	ctx := context.Background()
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s.Put(ctx, []alert.Alert{{ID: "x", Asset: "a", State: alert.Opened, Revision: 1, LastTime: at}})
	s.Put(ctx, []alert.Alert{{ID: "x", Asset: "a", State: alert.Updated, Revision: 2, Acked: true, AckedBy: "op", LastTime: at}})
	// A replayed older revision does not go back; a newer one from an owner
	// that does not know of the acknowledgement keeps it.
	s.Put(ctx, []alert.Alert{{ID: "x", Asset: "a", State: alert.Opened, Revision: 1, LastTime: at}})
	s.Put(ctx, []alert.Alert{{ID: "x", Asset: "a", State: alert.Updated, Revision: 3, LastTime: at.Add(time.Second)}})
	got, _ := s.Get("x")
	if got.Revision != 3 || !got.Acked || got.AckedBy != "op" {
		t.Fatalf("stored %+v, want revision 3 still acknowledged by op", got)
	}
	// Beyond the bound the oldest resolved alerts go first; open ones stay.
	s.Put(ctx, []alert.Alert{
		{ID: "r1", State: alert.Resolved, Revision: 2, LastTime: at.Add(-time.Hour)},
		{ID: "r2", State: alert.Resolved, Revision: 2, LastTime: at.Add(2 * time.Second)},
	})
	if _, ok := s.Get("r1"); ok {
		t.Error("the oldest resolved alert was kept")
	}
	if _, ok := s.Get("x"); !ok {
		t.Error("the open alert was evicted")
	}
	if l := s.List(Filter{Open: true}); len(l) != 1 || l[0].ID != "x" {
		t.Errorf("open alerts %+v", l)
	}
}

func TestStoreSubscribe(t *testing.T) {
	s := NewStore(0)
	ctx := context.Background()
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	ch, stop := s.Subscribe()
	s.Put(ctx, []alert.Alert{{ID: "x", State: alert.Opened, Revision: 1, LastTime: at}})
	// The same event again (the topic echoing this instance's output) and
	// an older revision are not sent twice.
	s.Put(ctx, []alert.Alert{{ID: "x", State: alert.Opened, Revision: 1, LastTime: at}})
	s.Put(ctx, []alert.Alert{{ID: "x", State: alert.Updated, Revision: 2, Acked: true, AckedBy: "op", LastTime: at}})
	s.Put(ctx, []alert.Alert{{ID: "x", State: alert.Opened, Revision: 1, LastTime: at}})
	for _, want := range []int{1, 2} {
		if a := <-ch; a.Revision != want {
			t.Fatalf("event revision %d, want %d", a.Revision, want)
		}
	}
	select {
	case a := <-ch:
		t.Fatalf("unexpected event %+v", a)
	default:
	}
	// A subscriber that falls behind is closed, not waited for.
	for i := range SubscriberBuffer + 1 {
		s.Put(ctx, []alert.Alert{{ID: "y", State: alert.Updated, Revision: i + 1, LastTime: at}})
	}
	n := 0
	for range ch {
		n++
	}
	if n != SubscriberBuffer {
		t.Fatalf("%d events before the close, want %d", n, SubscriberBuffer)
	}
	stop() // after the close: safe
	if len(s.subs) != 0 {
		t.Fatalf("%d subscribers left", len(s.subs))
	}
}
