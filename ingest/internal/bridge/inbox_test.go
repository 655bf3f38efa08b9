package bridge

import (
	"context"
	"fmt"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// msg is an MQTT message for unit tests; its id tells messages apart.
type msg struct {
	mqtt.Message
	id   uint16
	size int
}

func (m msg) MessageID() uint16 { return m.id }
func (m msg) Payload() []byte   { return make([]byte, m.size) }

func TestInboxHandsOverInOrderAndBoundsItself(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	q := newInbox(4, 1<<20)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 10 {
			q.put(ctx, msg{id: uint16(i)})
		}
	}()
	var got []uint16
	for len(got) < 10 {
		select {
		case <-q.ready:
		case <-ctx.Done():
			t.Fatalf("no ready token after %v", got)
		}
		q.mu.Lock()
		if n := len(q.msgs); n > 4 {
			t.Errorf("inbox holds %d messages, limit 4", n)
		}
		q.mu.Unlock()
		q.take(3, 1<<20, func(m mqtt.Message) { got = append(got, m.MessageID()) })
	}
	<-done
	for i, id := range got {
		if int(id) != i {
			t.Fatalf("taken in order %v", got)
		}
	}
	select {
	case <-q.ready:
		t.Fatal("ready token left with nothing queued")
	default:
	}
}

func TestInboxPutGivesUpWhenContextEnds(t *testing.T) {
	q := newInbox(1, 1<<20)
	q.put(context.Background(), msg{id: 1})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	q.put(ctx, msg{id: 2}) // full: must return, not block
	var got []uint16
	q.take(10, 1<<20, func(m mqtt.Message) { got = append(got, m.MessageID()) })
	if len(got) != 1 || got[0] != 1 {
		t.Fatalf("took %v, want [1]", got)
	}
}

func TestInboxTakeStopsAtTheByteBound(t *testing.T) {
	q := newInbox(10, 1<<20)
	for i, size := range []int{600, 300, 200, 900, 50} {
		q.put(context.Background(), msg{id: uint16(i), size: size})
	}
	var batches [][]uint16
	for range 4 {
		var got []uint16
		q.take(10, 1000, func(m mqtt.Message) { got = append(got, m.MessageID()) })
		batches = append(batches, got)
	}
	// 600+300 fit; 200 would pass 1000. A lone message always goes.
	want := "[[0 1] [2] [3 4] []]"
	if got := fmt.Sprint(batches); got != want {
		t.Fatalf("batches %s, want %s", got, want)
	}
}

func TestInboxPutWaitsForByteRoom(t *testing.T) {
	q := newInbox(10, 1000)
	q.put(context.Background(), msg{id: 1, size: 1500}) // alone: taken however large
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	q.put(ctx, msg{id: 2, size: 10}) // no room: gives up when ctx ends
	var got []uint16
	q.take(10, 1<<20, func(m mqtt.Message) { got = append(got, m.MessageID()) })
	if fmt.Sprint(got) != "[1]" {
		t.Fatalf("took %v, want [1]", got)
	}
	q.put(context.Background(), msg{id: 3, size: 600})
	q.put(ctx, msg{id: 4, size: 600}) // 1200 > 1000: refused
	q.take(10, 1<<20, func(m mqtt.Message) { got = append(got, m.MessageID()) })
	if fmt.Sprint(got) != "[1 3]" {
		t.Fatalf("took %v, want [1 3]", got)
	}
}
