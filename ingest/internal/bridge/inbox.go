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
	mu       sync.Mutex
	msgs     []mqtt.Message
	bytes    int           // sum of the queued payloads
	limit    int           // the most messages queued
	maxBytes int           // the most payload bytes queued, unless one message is more
	ready    chan struct{} // holds a token while messages wait
	room     chan struct{} // holds a token when put may find room again
}

func newInbox(limit, maxBytes int) *inbox {
	return &inbox{limit: limit, maxBytes: maxBytes, ready: make(chan struct{}, 1), room: make(chan struct{}, 1)}
}

// put queues m, waiting while the inbox is full, until ctx ends. An empty
// inbox takes any message, however large.
func (q *inbox) put(ctx context.Context, m mqtt.Message) {
	q.mu.Lock()
	for len(q.msgs) >= q.limit || (len(q.msgs) > 0 && q.bytes+len(m.Payload()) > q.maxBytes) {
		q.mu.Unlock()
		select {
		case <-q.room:
		case <-ctx.Done():
			return
		}
		q.mu.Lock()
	}
	q.msgs = append(q.msgs, m)
	q.bytes += len(m.Payload())
	first := len(q.msgs) == 1
	q.mu.Unlock()
	if first {
		signal(q.ready)
	}
}

// take removes up to maxMsgs messages, oldest first, and passes each to
// add. It stops before a message that would take their payloads past
// maxBytes, unless that message is the first. Messages left behind keep a
// token in ready.
func (q *inbox) take(maxMsgs, maxBytes int, add func(mqtt.Message)) {
	q.mu.Lock()
	n, size := 0, 0
	for n < min(maxMsgs, len(q.msgs)) {
		l := len(q.msgs[n].Payload())
		if n > 0 && size+l > maxBytes {
			break
		}
		size += l
		n++
	}
	taken := make([]mqtt.Message, n)
	copy(taken, q.msgs)
	q.bytes -= size
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
