// Package publish sends the spooled messages to the MQTT broker with QoS 1
// over a persistent session (CleanSession=false, stable client id), keeping
// a window of messages awaiting their PUBACK, and commits the spool cursor
// only past messages the broker acknowledged, in order.
//
// Reconnecting: each connection uses a fresh paho client, and after every
// (re)connect the spool is rewound to its committed cursor, so whatever was
// in flight when the link dropped is sent again, in order, on the new
// connection. paho's own resend-on-reconnect is deliberately not used: it
// completes the old tokens when it resends (not when the broker acknowledges)
// and races new publishes, which would allow both a wrong commit and
// reordering. With a client per connection a successful token always means a
// PUBACK. The cost is that up to one window of messages may be delivered twice
// after a link loss (at least once; consumers de-duplicate by asset and seq).
package publish

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/pdmstream/pdm/edge-agent/internal/spool"
	"github.com/pdmstream/pdm/pdmkit/retry"
)

// ErrRecord: a spool record is not in the envelope format.
var ErrRecord = errors.New("malformed spool record")

// Envelope is what the agent stores in the spool: one MQTT message and what
// it carries.
type Envelope struct {
	Topic string
	// Count is how many readings the payload holds.
	Count int
	// LastSeq is the sequence number of the last reading in the payload.
	LastSeq uint64
	Payload []byte
}

// Encode lays the envelope out as [uvarint count][uvarint lastSeq]
// [uvarint len(topic)][topic][payload].
func (e Envelope) Encode() []byte {
	b := make([]byte, 0, 3*binary.MaxVarintLen64+len(e.Topic)+len(e.Payload))
	b = binary.AppendUvarint(b, uint64(e.Count))
	b = binary.AppendUvarint(b, e.LastSeq)
	b = binary.AppendUvarint(b, uint64(len(e.Topic)))
	b = append(b, e.Topic...)
	return append(b, e.Payload...)
}

// DecodeEnvelope parses what Encode wrote. Payload aliases b.
func DecodeEnvelope(b []byte) (Envelope, error) {
	var e Envelope
	count, n := binary.Uvarint(b)
	if n <= 0 {
		return e, ErrRecord
	}
	b = b[n:]
	e.LastSeq, n = binary.Uvarint(b)
	if n <= 0 {
		return e, ErrRecord
	}
	b = b[n:]
	tl, n := binary.Uvarint(b)
	if n <= 0 || uint64(len(b)-n) < tl {
		return e, ErrRecord
	}
	b = b[n:]
	e.Count, e.Topic, e.Payload = int(count), string(b[:tl]), b[tl:]
	return e, nil
}

// Counter is the part of a Prometheus counter the publisher uses.
type Counter interface{ Add(float64) }

type nopCounter struct{}

func (nopCounter) Add(float64) {}

// Options configure a Publisher.
type Options struct {
	URL, ClientID, Username, Password string
	// Window is the number of messages awaiting PUBACK at once. Default 256.
	Window int
	// KeepAlive default 15s; MaxReconnectInterval (the longest back-off
	// between connection attempts) default 5s.
	KeepAlive, MaxReconnectInterval time.Duration
	// StatusTopic receives the retained online status after every connect
	// and is the last will ("offline").
	StatusTopic string
	// Online and Offline build the status payloads.
	Online, Offline func() []byte
	// Meta is stored with every cursor commit (the agent keeps its sequence
	// numbers there). May be nil.
	Meta func() []byte
	// Counters; nil ones count nothing.
	Published, Acked, Reconnects Counter
}

// Queue is the spool as the publisher uses it.
type Queue interface {
	Next(ctx context.Context) (spool.Record, error)
	Rewind()
	Commit(rec spool.Record, meta []byte) error
}

// Publisher drains a Queue to the broker.
type Publisher struct {
	opts Options
	log  *slog.Logger

	mu     sync.Mutex
	client mqtt.Client // current connection; nil while down

	connected atomic.Bool
	connects  atomic.Uint64
	closeOnce sync.Once
}

// New checks the options; it connects nothing until Run.
func New(opts Options, log *slog.Logger) (*Publisher, error) {
	if opts.URL == "" || opts.ClientID == "" || opts.StatusTopic == "" || opts.Online == nil || opts.Offline == nil {
		return nil, errors.New("publish: url, client id, status topic and status payloads are required")
	}
	if opts.Window <= 0 {
		opts.Window = 256
	}
	if opts.KeepAlive <= 0 {
		opts.KeepAlive = 15 * time.Second
	}
	if opts.MaxReconnectInterval <= 0 {
		opts.MaxReconnectInterval = 5 * time.Second
	}
	if opts.Meta == nil {
		opts.Meta = func() []byte { return nil }
	}
	for _, c := range []*Counter{&opts.Published, &opts.Acked, &opts.Reconnects} {
		if *c == nil {
			*c = nopCounter{}
		}
	}
	return &Publisher{opts: opts, log: log.With("component", "publish")}, nil
}

// Connected reports whether the link is up, for readiness.
func (p *Publisher) Connected() bool { return p.connected.Load() }

// connect makes one connection attempt with a fresh client; lost is closed
// when that connection drops.
func (p *Publisher) connect(ctx context.Context) (mqtt.Client, <-chan struct{}, error) {
	lost := make(chan struct{})
	var once sync.Once
	mo := mqtt.NewClientOptions().
		AddBroker(p.opts.URL).
		SetClientID(p.opts.ClientID).
		SetUsername(p.opts.Username).
		SetPassword(p.opts.Password).
		SetCleanSession(false).
		SetOrderMatters(true).
		// Reconnecting is done here, a fresh client per connection; see the
		// package comment.
		SetAutoReconnect(false).
		SetConnectRetry(false).
		SetMaxResumePubInFlight(p.opts.Window).
		SetKeepAlive(p.opts.KeepAlive).
		SetPingTimeout(p.opts.KeepAlive).
		SetConnectTimeout(5*time.Second).
		// A publish racing a link loss blocks in paho until this timeout
		// (it then fails and is resent on the next connection), so it bounds
		// how long a reconnect waits. Writes of a healthy link take far less.
		SetWriteTimeout(2*time.Second).
		SetBinaryWill(p.opts.StatusTopic, p.opts.Offline(), 1, true).
		SetConnectionLostHandler(func(_ mqtt.Client, err error) {
			p.log.Warn("mqtt connection lost", "err", err)
			once.Do(func() { close(lost) })
		})
	c := mqtt.NewClient(mo)
	tok := c.Connect()
	select {
	case <-tok.Done():
	case <-ctx.Done():
		go c.Disconnect(0)
		return nil, nil, ctx.Err()
	}
	if err := tok.Error(); err != nil {
		return nil, nil, err
	}
	return c, lost, nil
}

type entry struct {
	rec   spool.Record
	count int
	tok   mqtt.Token
}

// errLost ends a cycle when its connection drops.
var errLost = errors.New("connection lost")

// Run connects, reconnects with back-off, and drains q until ctx ends.
func (p *Publisher) Run(ctx context.Context, q Queue) error {
	backoff := retry.Backoff{Initial: 100 * time.Millisecond, Max: p.opts.MaxReconnectInterval}
	for attempt := 0; ctx.Err() == nil; {
		c, lost, err := p.connect(ctx)
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			// Readings keep going to the spool meanwhile; say so on every
			// attempt, so an operator sees why nothing arrives.
			wait := backoff.Next(attempt)
			attempt++
			p.log.Warn("mqtt connect failed; readings are spooled", "url", p.opts.URL, "attempt", attempt, "retry_in", wait, "err", err)
			retry.Sleep(ctx, wait)
			continue
		}
		attempt = 0
		if p.connects.Add(1) > 1 {
			p.opts.Reconnects.Add(1)
		}
		p.log.Info("mqtt connected", "url", p.opts.URL, "client_id", p.opts.ClientID)
		c.Publish(p.opts.StatusTopic, 1, true, p.opts.Online())
		p.setClient(c)
		// Everything not committed goes again, in order, on this connection.
		q.Rewind()
		err = p.cycle(ctx, c, lost, q)
		p.setClient(nil)
		if ctx.Err() != nil {
			// Keep the client for Close to publish the offline status.
			p.setClient(c)
			break
		}
		go c.Disconnect(0)
		if !errors.Is(err, errLost) {
			p.log.Warn("publishing interrupted; resending from the committed cursor", "err", err)
		}
	}
	return nil
}

func (p *Publisher) setClient(c mqtt.Client) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.client = c
	p.connected.Store(c != nil)
}

// cycle runs a sender and an acker on one connection until it drops, a
// publish fails, or ctx ends.
func (p *Publisher) cycle(ctx context.Context, c mqtt.Client, lost <-chan struct{}, q Queue) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	go func() {
		select {
		case <-lost:
			cancel(errLost)
		case <-ctx.Done():
		}
	}()
	slots := make(chan struct{}, p.opts.Window)
	inflight := make(chan entry, p.opts.Window)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		if err := p.send(ctx, c, q, slots, inflight); err != nil {
			cancel(err)
		}
	}()
	go func() {
		defer wg.Done()
		if err := p.ack(ctx, q, slots, inflight); err != nil {
			cancel(err)
		}
	}()
	wg.Wait()
	return context.Cause(ctx)
}

func (p *Publisher) send(ctx context.Context, c mqtt.Client, q Queue, slots chan<- struct{}, inflight chan<- entry) error {
	for {
		rec, err := q.Next(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("publish: spool: %w", err)
		}
		env, err := DecodeEnvelope(rec.Data)
		if err != nil {
			// Cannot happen for records the agent wrote; skip rather than
			// block the queue forever.
			p.log.Error("skipping malformed spool record", "err", err)
			continue
		}
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			return nil
		}
		tok := c.Publish(env.Topic, 1, false, env.Payload)
		p.opts.Published.Add(float64(env.Count))
		inflight <- entry{rec: rec, count: env.Count, tok: tok}
	}
}

// ack waits for the tokens in publish order and commits the cursor past
// the acknowledged ones, at most every 100 ms and whenever it catches up.
func (p *Publisher) ack(ctx context.Context, q Queue, slots <-chan struct{}, inflight <-chan entry) error {
	var (
		last       spool.Record
		dirty      bool
		lastCommit = time.Now()
	)
	commit := func() error {
		if !dirty {
			return nil
		}
		if err := q.Commit(last, p.opts.Meta()); err != nil {
			return fmt.Errorf("publish: commit: %w", err)
		}
		dirty, lastCommit = false, time.Now()
		return nil
	}
	defer func() {
		// Keep what was acknowledged even when stopping.
		if err := commit(); err != nil {
			p.log.Error("final commit", "err", err)
		}
	}()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
			if err := commit(); err != nil {
				return err
			}
		case e := <-inflight:
			select {
			case <-e.tok.Done():
			case <-ctx.Done():
				return nil
			}
			<-slots
			if err := e.tok.Error(); err != nil {
				return fmt.Errorf("publish: %w", err)
			}
			// With a client per connection, success means a PUBACK.
			p.opts.Acked.Add(float64(e.count))
			last, dirty = e.rec, true
			if len(inflight) == 0 || time.Since(lastCommit) > 100*time.Millisecond {
				if err := commit(); err != nil {
					return err
				}
			}
		}
	}
}

// Close publishes the retained offline status (a clean disconnect sends no
// last will) and disconnects. Safe to call twice.
func (p *Publisher) Close(ctx context.Context) error {
	p.closeOnce.Do(func() {
		p.mu.Lock()
		c := p.client
		p.mu.Unlock()
		if c == nil {
			return
		}
		if c.IsConnectionOpen() {
			tok := c.Publish(p.opts.StatusTopic, 1, true, p.opts.Offline())
			select {
			case <-tok.Done():
			case <-ctx.Done():
			case <-time.After(2 * time.Second):
			}
		}
		c.Disconnect(250)
	})
	return nil
}

// Status is the JSON of the retained status message.
type Status struct {
	Agent  string    `json:"agent"`
	Status string    `json:"status"`
	Assets []string  `json:"assets"`
	Time   time.Time `json:"time"`
}

// StatusPayload encodes a status message.
func StatusPayload(agent, status string, assets []string, now time.Time) []byte {
	b, _ := json.Marshal(Status{Agent: agent, Status: status, Assets: assets, Time: now.UTC()})
	return b
}
