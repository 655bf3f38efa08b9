package bridge

import (
	"context"
	"sync"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// inbox queues messages from paho's handler for the batching loop. Unlike a
// channel it hands over everything queued at once and wakes the loop only
// when it goes from empty to not empty: at tens of thousands of messages a
// second, a goroutine wake-up per message cost more CPU than decoding them.
type inbox struct {
	mu    sync.Mutex
	msgs  []mqtt.Message
	limit int
	ready chan struct{} // holds a token while messages wait
	room  chan struct{} // holds a token when put may find room again
}

func newInbox(limit int) *inbox {
	return &inbox{limit: limit, ready: make(chan struct{}, 1), room: make(chan struct{}, 1)}
}

// put queues m, waiting while the inbox is full, until ctx ends.
func (q *inbox) put(ctx context.Context, m mqtt.Message) {
	q.mu.Lock()
	for len(q.msgs) >= q.limit {
		q.mu.Unlock()
		select {
		case <-q.room:
		case <-ctx.Done():
			return
		}
		q.mu.Lock()
	}
	q.msgs = append(q.msgs, m)
	first := len(q.msgs) == 1
	q.mu.Unlock()
	if first {
		signal(q.ready)
	}
}

// take removes up to max messages, oldest first, and passes each to add.
// Messages left behind keep a token in ready.
func (q *inbox) take(max int, add func(mqtt.Message)) {
	q.mu.Lock()
	n := min(max, len(q.msgs))
	taken := make([]mqtt.Message, n)
	copy(taken, q.msgs)
	left := copy(q.msgs, q.msgs[n:])
	clear(q.msgs[left:])
	q.msgs = q.msgs[:left]
	q.mu.Unlock()
	if n > 0 {
		signal(q.room)
	}
	if left > 0 {
		signal(q.ready)
	}
	for _, m := range taken {
		add(m)
	}
}

// signal leaves a token in c unless one is there already.
func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}
