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
//
// Confirmed delivery (Options.ConfirmFilter): a PUBACK says only that the
// broker has a message, and a broker that crashes before saving its store,
// or restarts without a subscriber for the readings, loses what it
// acknowledged. With confirmations on, a record is committed only once the
// ingest bridge has confirmed that Kafka holds its readings (wire.Delivered),
// and whenever a bridge says it has subscribed (wire.IngestJoinedTopic)
// everything not yet confirmed is sent again on the same connection.
//
// What goes on the wire is a Framer's choice: the pdm JSON form as spooled,
// with the retained status (the default), or Sparkplug B (NewSparkplug),
// encoded at publish time so the spool and its store-and-forward stay the
// same for both.
package publish

import (
	"context"
	"crypto/tls"
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
	"github.com/pdmstream/pdm/pdmkit/wire"
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
	// TLS dials an ssl:// broker; nil uses the system roots.
	TLS *tls.Config
	// Window is the number of messages awaiting PUBACK at once. Default 256.
	Window int
	// KeepAlive default 15s; MaxReconnectInterval (the longest back-off
	// between connection attempts) default 5s.
	KeepAlive, MaxReconnectInterval time.Duration
	// StatusTopic receives the retained online status after every connect
	// and is the last will ("offline"), unless Framer is set.
	StatusTopic string
	// Online and Offline build the status payloads.
	Online, Offline func() []byte
	// Framer decides what is published; nil publishes the spooled JSON and
	// the status above.
	Framer Framer
	// Meta is stored with every cursor commit (the agent keeps its sequence
	// numbers there). May be nil.
	Meta func() []byte
	// ConfirmFilter, when set, is subscribed to for the bridge's delivery
	// confirmations (wire.DeliveredFilter of the site): records are then
	// committed only once confirmed (see the package comment). "" commits
	// on the broker's PUBACK. Only for the JSON form (no Framer).
	ConfirmFilter string
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
	// commands holds the payloads of commands received, for the sender;
	// listening says the current connection subscribed to commands.
	commands  chan []byte
	listening bool
	// conf holds the confirmations; nil without Options.ConfirmFilter.
	conf *confirmations
}

// Message is one MQTT message to publish with QoS 1.
type Message struct {
	Topic   string
	Payload []byte
	Retain  bool
}

// Session is how a Framer wants one connection made.
type Session struct {
	// Will is the connection's last will.
	Will Message
	// Commands is a topic to subscribe to for commands, "" for none.
	Commands string
	// CleanSession asks the broker for a clean session.
	CleanSession bool
}

// Framer turns the spooled envelopes into what is published. The
// publisher calls it from one goroutine at a time.
type Framer interface {
	// Connect is called before each connection attempt.
	Connect(now time.Time) Session
	// Online is published first on every new connection.
	Online(now time.Time) []Message
	// Frame returns the messages that carry one spooled envelope, in order.
	Frame(env Envelope, now time.Time) ([]Message, error)
	// Command returns what to publish in answer to a command received on
	// the session's Commands topic.
	Command(payload []byte, now time.Time) []Message
	// Offline is published by Close before a clean disconnect.
	Offline(now time.Time) []Message
}

// statusFramer publishes the spooled JSON as it is, with the retained
// online/offline status.
type statusFramer struct {
	topic           string
	online, offline func() []byte
}

func (f statusFramer) Connect(time.Time) Session {
	return Session{Will: Message{Topic: f.topic, Payload: f.offline(), Retain: true}}
}

func (f statusFramer) Online(time.Time) []Message {
	return []Message{{Topic: f.topic, Payload: f.online(), Retain: true}}
}

func (f statusFramer) Frame(env Envelope, _ time.Time) ([]Message, error) {
	return []Message{{Topic: env.Topic, Payload: env.Payload}}, nil
}

func (f statusFramer) Command([]byte, time.Time) []Message { return nil }

func (f statusFramer) Offline(time.Time) []Message {
	return []Message{{Topic: f.topic, Payload: f.offline(), Retain: true}}
}

// New checks the options; it connects nothing until Run.
func New(opts Options, log *slog.Logger) (*Publisher, error) {
	if opts.Framer == nil && (opts.StatusTopic == "" || opts.Online == nil || opts.Offline == nil) {
		return nil, errors.New("publish: a status topic and status payloads, or a framer, are required")
	}
	if opts.URL == "" || opts.ClientID == "" {
		return nil, errors.New("publish: url and client id are required")
	}
	if opts.Framer != nil && opts.ConfirmFilter != "" {
		return nil, errors.New("publish: confirmations are only for the JSON form")
	}
	if opts.Framer == nil {
		opts.Framer = statusFramer{topic: opts.StatusTopic, online: opts.Online, offline: opts.Offline}
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
	p := &Publisher{opts: opts, log: log.With("component", "publish"), commands: make(chan []byte, 16)}
	if opts.ConfirmFilter != "" {
		p.conf = newConfirmations()
	}
	return p, nil
}

// Connected reports whether the link is up, for readiness.
func (p *Publisher) Connected() bool { return p.connected.Load() }

// connect makes one connection attempt with a fresh client; lost is closed
// when that connection drops.
func (p *Publisher) connect(ctx context.Context) (mqtt.Client, <-chan struct{}, error) {
	lost := make(chan struct{})
	var once sync.Once
	sess := p.opts.Framer.Connect(time.Now())
	mo := mqtt.NewClientOptions().
		AddBroker(p.opts.URL).
		SetClientID(p.opts.ClientID).
		SetUsername(p.opts.Username).
		SetPassword(p.opts.Password).
		SetTLSConfig(p.opts.TLS).
		SetCleanSession(sess.CleanSession).
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
		SetBinaryWill(sess.Will.Topic, sess.Will.Payload, 1, sess.Will.Retain).
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
	p.listening = sess.Commands != ""
	if p.listening {
		// The handler only queues: publishing from it could deadlock paho.
		sub := c.Subscribe(sess.Commands, 1, func(_ mqtt.Client, m mqtt.Message) {
			select {
			case p.commands <- m.Payload():
			default: // a burst of commands: answering the queued ones is enough
			}
		})
		if !sub.WaitTimeout(10*time.Second) || sub.Error() != nil {
			go c.Disconnect(0)
			return nil, nil, fmt.Errorf("subscribe %s: %v", sess.Commands, sub.Error())
		}
	}
	if p.conf != nil {
		filters := map[string]byte{p.opts.ConfirmFilter: 0, wire.IngestJoinedTopic: 1}
		sub := c.SubscribeMultiple(filters, p.conf.handle)
		if !sub.WaitTimeout(10*time.Second) || sub.Error() != nil {
			go c.Disconnect(0)
			return nil, nil, fmt.Errorf("subscribe to delivery confirmations %s: %v", p.opts.ConfirmFilter, sub.Error())
		}
	}
	return c, lost, nil
}

type entry struct {
	rec     spool.Record
	count   int
	topic   string // the envelope's, for its confirmation
	lastSeq uint64
	toks    []mqtt.Token
	at      time.Time // when the broker acknowledged it
}

// errLost ends a cycle when its connection drops; errResend when a bridge
// has subscribed and what is not confirmed must go again.
var (
	errLost   = errors.New("connection lost")
	errResend = errors.New("a bridge subscribed")
)

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
		for _, m := range p.opts.Framer.Online(time.Now()) {
			c.Publish(m.Topic, 1, m.Retain, m.Payload)
		}
		p.setClient(c)
		for {
			// Everything not committed goes again, in order, on this
			// connection.
			q.Rewind()
			err = p.cycle(ctx, c, lost, q)
			if !errors.Is(err, errResend) || ctx.Err() != nil {
				break
			}
			p.log.Info("a bridge subscribed; sending again the readings it has not confirmed")
		}
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
	var joined <-chan struct{}
	if p.conf != nil {
		joined = p.conf.joined
	}
	go func() {
		select {
		case <-lost:
			cancel(errLost)
		case <-joined:
			cancel(errResend)
		case <-ctx.Done():
		}
	}()
	slots := make(chan struct{}, p.opts.Window)
	inflight := make(chan entry, p.opts.Window)
	var wg sync.WaitGroup
	var recs chan spool.Record // nil: send reads the spool itself
	if p.listening {
		// Commands must be answered while the spool has nothing to send,
		// so a reader waits on the spool for send (a hop the plain form,
		// without commands, does not pay).
		recs = make(chan spool.Record)
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := p.read(ctx, q, recs); err != nil {
				cancel(err)
			}
		}()
	}
	wg.Add(2)
	go func() {
		defer wg.Done()
		if err := p.send(ctx, c, q, recs, slots, inflight); err != nil {
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

// read hands the spool's records to send, in order, until ctx ends.
func (p *Publisher) read(ctx context.Context, q Queue, recs chan<- spool.Record) error {
	for {
		rec, err := q.Next(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("publish: spool: %w", err)
		}
		select {
		case recs <- rec:
		case <-ctx.Done():
			return nil // the next cycle rewinds to the committed cursor
		}
	}
}

// send publishes what the framer makes of each record, and its answers to
// commands, in order on one goroutine.
func (p *Publisher) send(ctx context.Context, c mqtt.Client, q Queue, recs <-chan spool.Record, slots chan<- struct{}, inflight chan<- entry) error {
	for {
		var rec spool.Record
		if recs == nil {
			var err error
			if rec, err = q.Next(ctx); err != nil {
				if ctx.Err() != nil {
					return nil
				}
				return fmt.Errorf("publish: spool: %w", err)
			}
		} else {
			select {
			case <-ctx.Done():
				return nil
			case cmd := <-p.commands:
				for _, m := range p.opts.Framer.Command(cmd, time.Now()) {
					c.Publish(m.Topic, 1, m.Retain, m.Payload)
				}
				continue
			case rec = <-recs:
			}
		}
		env, err := DecodeEnvelope(rec.Data)
		var msgs []Message
		if err == nil {
			msgs, err = p.opts.Framer.Frame(env, time.Now())
		}
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
		e := entry{rec: rec, count: env.Count, topic: env.Topic, lastSeq: env.LastSeq}
		if p.conf != nil {
			p.conf.sending(env.Topic, env.LastSeq)
		}
		for _, m := range msgs {
			e.toks = append(e.toks, c.Publish(m.Topic, 1, m.Retain, m.Payload))
		}
		p.opts.Published.Add(float64(env.Count))
		inflight <- e
	}
}

// ack waits for the tokens in publish order and commits the cursor past
// the acknowledged ones — or, with confirmations, past the confirmed ones —
// at most every 100 ms and whenever it catches up.
func (p *Publisher) ack(ctx context.Context, q Queue, slots <-chan struct{}, inflight <-chan entry) error {
	var (
		last       spool.Record
		dirty      bool
		lastCommit = time.Now()
		// unconfirmed holds, in spool order, the acknowledged records that
		// wait for their confirmation (without their data).
		unconfirmed []entry
		confirmed   <-chan struct{}
	)
	if p.conf != nil {
		confirmed = p.conf.changed
	}
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
	advance := func() {
		if n := p.conf.covered(unconfirmed); n > 0 {
			last, dirty = unconfirmed[n-1].rec, true
			unconfirmed = unconfirmed[n:]
		}
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
			if p.conf != nil {
				p.conf.warnIfStuck(p.log, unconfirmed)
			}
			if err := commit(); err != nil {
				return err
			}
		case <-confirmed:
			advance()
			if len(unconfirmed) == 0 || time.Since(lastCommit) > 100*time.Millisecond {
				if err := commit(); err != nil {
					return err
				}
			}
		case e := <-inflight:
			for _, tok := range e.toks {
				select {
				case <-tok.Done():
				case <-ctx.Done():
					return nil
				}
			}
			<-slots
			for _, tok := range e.toks {
				if err := tok.Error(); err != nil {
					return fmt.Errorf("publish: %w", err)
				}
			}
			// With a client per connection, success means a PUBACK.
			p.opts.Acked.Add(float64(e.count))
			if p.conf != nil {
				e.rec.Data, e.toks = nil, nil
				e.at = time.Now()
				unconfirmed = append(unconfirmed, e)
				advance()
			} else {
				last, dirty = e.rec, true
			}
			if len(inflight) == 0 || time.Since(lastCommit) > 100*time.Millisecond {
				if err := commit(); err != nil {
					return err
				}
			}
		}
	}
}

// Close publishes the framer's goodbye — the retained offline status, or
// Sparkplug's deaths — (a clean disconnect sends no last will) and
// disconnects. Call it after Run returned; safe to call twice.
func (p *Publisher) Close(ctx context.Context) error {
	p.closeOnce.Do(func() {
		p.mu.Lock()
		c := p.client
		p.mu.Unlock()
		if c == nil {
			return
		}
		if c.IsConnectionOpen() {
			var last mqtt.Token
			for _, m := range p.opts.Framer.Offline(time.Now()) {
				last = c.Publish(m.Topic, 1, m.Retain, m.Payload)
			}
			if last != nil {
				select {
				case <-last.Done():
				case <-ctx.Done():
				case <-time.After(2 * time.Second):
				}
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
