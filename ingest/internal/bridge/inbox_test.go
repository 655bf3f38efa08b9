package bridge

import (
	"context"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// msg is an MQTT message for unit tests; its id tells messages apart.
type msg struct {
	mqtt.Message
	id uint16
}

func (m msg) MessageID() uint16 { return m.id }

func TestInboxHandsOverInOrderAndBoundsItself(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	q := newInbox(4)
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
		q.take(3, func(m mqtt.Message) { got = append(got, m.MessageID()) })
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
	q := newInbox(1)
	q.put(context.Background(), msg{id: 1})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	q.put(ctx, msg{id: 2}) // full: must return, not block
	var got []uint16
	q.take(10, func(m mqtt.Message) { got = append(got, m.MessageID()) })
	if len(got) != 1 || got[0] != 1 {
		t.Fatalf("took %v, want [1]", got)
	}
}
