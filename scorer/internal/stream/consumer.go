package stream

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pdmstream/pdm/pdmkit/alert"
	"github.com/pdmstream/pdm/pdmkit/anomaly"
	"github.com/pdmstream/pdm/pdmkit/kafkaconn"
	"github.com/pdmstream/pdm/pdmkit/monitor"
	"github.com/pdmstream/pdm/pdmkit/retry"
	"github.com/pdmstream/pdm/pdmkit/wire"
	"github.com/segmentio/kafka-go"
)

// Options configure a Consumer.
type Options struct {
	// Conn, Group and Topic name the consumer group and what it reads:
	// Conn is the way to the brokers.
	Conn  *kafkaconn.Conn
	Group string
	Topic string
	// SessionTimeout is how long a silent member keeps its partitions.
	SessionTimeout time.Duration
	// Replay is how many readings per partition before the committed
	// offset are re-read without output after an assignment.
	Replay int
	// MaxBatch bounds the readings scored between two commits.
	MaxBatch int
	// History is how many recent readings per asset warm a new detector.
	History int
	// Decision configures every asset's alert decision.
	Decision monitor.Config
	// ColdStart: an asset on the online learner asks the trainer for a
	// model of its own every ColdStart scored readings (0: never).
	ColdStart int
	// Online builds the detector for an asset without a model.
	Online func() (anomaly.Detector, error)
	// IdleAfter: an asset without a reading for this long (reading time,
	// against the newest reading of its partition) and without an open
	// alert is forgotten; it starts afresh if it returns (default 7 days).
	// MaxAssets bounds the assets kept per partition: beyond it the
	// longest silent ones without an open alert are forgotten (default
	// 100,000).
	IdleAfter time.Duration
	MaxAssets int
	// ReorderWait: a reading that skips ahead in its asset's sequence
	// waits this long for the missing ones before they are given up
	// (0: not at all). See processor.reading.
	ReorderWait time.Duration
}

// ErrAlertNotHere: no partition owned by this instance holds the alert.
var ErrAlertNotHere = errors.New("alert not open on this instance")

// Consumer is one member of the scoring consumer group.
type Consumer struct {
	opt     Options
	client  *kafka.Client // offsets of the topic
	res     Resolver
	outs    []Output
	catalog *Catalog
	m       *Metrics
	log     *slog.Logger

	joined atomic.Bool

	mu   sync.Mutex
	acks map[int]*ackPort
}

// ackPort reaches one partition loop; done closes when the loop ends.
type ackPort struct {
	ch   chan ackReq
	done chan struct{}
}

type ackReq struct {
	id, by, reason string
	at             time.Time
	reply          chan ackReply
}

type ackReply struct {
	a   alert.Alert
	ok  bool
	err error
}

// New checks the options; it connects nothing.
func New(opt Options, res Resolver, outs []Output, m *Metrics, log *slog.Logger) (*Consumer, error) {
	switch {
	case opt.Conn == nil || len(opt.Conn.Brokers) == 0 || opt.Group == "" || opt.Topic == "":
		return nil, fmt.Errorf("stream: brokers (%v), group (%q) and topic (%q) are required", brokers(opt.Conn), opt.Group, opt.Topic)
	case opt.MaxBatch < 1:
		return nil, fmt.Errorf("stream: max batch %d must be at least 1", opt.MaxBatch)
	case opt.Online == nil:
		return nil, errors.New("stream: an online learner is required")
	case res == nil:
		return nil, errors.New("stream: a resolver is required")
	}
	if opt.SessionTimeout == 0 {
		opt.SessionTimeout = 10 * time.Second
	}
	if m == nil {
		m = NewMetrics(nil)
	}
	return &Consumer{opt: opt, client: opt.Conn.Client(10 * time.Second), res: res, outs: outs, catalog: NewCatalog(), m: m, log: log, acks: map[int]*ackPort{}}, nil
}

func brokers(c *kafkaconn.Conn) []string {
	if c == nil {
		return nil
	}
	return c.Brokers
}

// Catalog is the assets and sensors this instance has seen.
func (c *Consumer) Catalog() *Catalog { return c.catalog }

// Joined reports whether the consumer is in its group: it has joined, and
// its last attempt to join again (after Kafka was away, or a rebalance)
// did not fail.
func (c *Consumer) Joined() bool { return c.joined.Load() }

// Run consumes until ctx ends, then leaves the group.
func (c *Consumer) Run(ctx context.Context) error {
	group, err := kafka.NewConsumerGroup(kafka.ConsumerGroupConfig{
		ID:                     c.opt.Group,
		Brokers:                c.opt.Conn.Brokers,
		Dialer:                 c.opt.Conn.Dialer(0),
		Topics:                 []string{c.opt.Topic},
		StartOffset:            kafka.FirstOffset,
		SessionTimeout:         c.opt.SessionTimeout,
		HeartbeatInterval:      c.opt.SessionTimeout / 5,
		RebalanceTimeout:       15 * time.Second,
		JoinGroupBackoff:       time.Second,
		Timeout:                10 * time.Second,
		WatchPartitionChanges:  true,
		PartitionWatchInterval: 5 * time.Second,
		RetentionTime:          7 * 24 * time.Hour,
	})
	if err != nil {
		return fmt.Errorf("stream: consumer group: %w", err)
	}
	defer group.Close()
	for failed := 0; ; {
		gen, err := group.Next(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			// Kafka away, or the group rebalancing: wait and join again,
			// however long it takes.
			c.joined.Store(false)
			wait := backoff.Next(failed)
			failed++
			c.log.Warn("consumer group: join failed, retrying", "attempt", failed, "backoff", wait, "err", err)
			retry.Sleep(ctx, wait)
			continue
		}
		failed = 0
		c.joined.Store(true)
		parts := gen.Assignments[c.opt.Topic]
		ids := make([]int, len(parts))
		for i, p := range parts {
			ids[i] = p.ID
		}
		c.log.Info("partitions assigned", "generation", gen.ID, "partitions", ids)
		if len(parts) == 0 {
			continue
		}
		gen.Start(func(gctx context.Context) { c.generation(ctx, gctx, gen, parts) })
	}
}

// generation runs the partitions of one assignment and their committer
// until ctx or the generation ends, then commits what was acknowledged.
func (c *Consumer) generation(ctx, gctx context.Context, gen *kafka.Generation, parts []kafka.PartitionAssignment) {
	pctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(gctx, cancel)
	defer stop()
	cm := &committer{gen: gen, topic: c.opt.Topic, log: c.log, wake: make(chan struct{}, 1), acked: map[int]int64{}}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		cm.run(pctx)
	}()
	var pwg sync.WaitGroup
	for _, a := range parts {
		pwg.Add(1)
		go func() {
			defer pwg.Done()
			c.partition(pctx, cm, a)
			// One partition failing ends the generation's work: the group
			// rebalances and another member (or this one) takes over.
			cancel()
		}()
	}
	pwg.Wait()
	cancel()
	wg.Wait()
	// The generation is still ours until Start returns, so what was
	// acknowledged can be committed, sparing the next owner a replay.
	cm.commit()
}

// committer commits, in one request, the offsets every partition has had
// acknowledged by all outputs. Coalescing keeps commits off the path of
// each batch.
type committer struct {
	gen   *kafka.Generation
	topic string
	log   *slog.Logger
	wake  chan struct{}

	mu    sync.Mutex
	acked map[int]int64 // next offset to read, per partition
	done  map[int]int64 // last committed
}

// ack records that every reading of partition before next is done.
func (cm *committer) ack(partition int, next int64) {
	cm.mu.Lock()
	cm.acked[partition] = next
	cm.mu.Unlock()
	select {
	case cm.wake <- struct{}{}:
	default:
	}
}

func (cm *committer) run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-cm.wake:
			cm.commit()
		}
	}
}

func (cm *committer) commit() {
	cm.mu.Lock()
	offs := map[int]int64{}
	for p, o := range cm.acked {
		if cm.done[p] != o {
			offs[p] = o
		}
	}
	cm.mu.Unlock()
	if len(offs) == 0 {
		return
	}
	if err := cm.gen.CommitOffsets(map[string]map[int]int64{cm.topic: offs}); err != nil {
		// A later commit covers these offsets; outputs are idempotent if
		// another owner replays them first.
		cm.log.Warn("commit", "offsets", offs, "err", err)
		return
	}
	cm.mu.Lock()
	if cm.done == nil {
		cm.done = map[int]int64{}
	}
	for p, o := range offs {
		cm.done[p] = o
	}
	cm.mu.Unlock()
}

// partition scores one assigned partition until ctx ends.
func (c *Consumer) partition(ctx context.Context, cm *committer, a kafka.PartitionAssignment) {
	log := c.log.With("partition", a.ID)
	p := newProcessor(a.ID, &c.opt, c.res, c.catalog, c.m, c.log)
	port := &ackPort{ch: make(chan ackReq), done: make(chan struct{})}
	acks := port.ch
	c.mu.Lock()
	c.acks[a.ID] = port
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		if c.acks[a.ID] == port {
			delete(c.acks, a.ID)
		}
		c.mu.Unlock()
		close(port.done)
	}()

	committed := a.Offset
	from := committed
	if committed >= 0 && c.opt.Replay > 0 {
		first, err := c.firstOffset(ctx, a.ID)
		if err != nil {
			log.Warn("no replay: first offset unknown", "err", err)
		} else {
			from = max(first, committed-int64(c.opt.Replay))
		}
	}
	r := kafka.NewReader(kafka.ReaderConfig{
		Brokers:   c.opt.Conn.Brokers,
		Dialer:    c.opt.Conn.Dialer(0),
		Topic:     c.opt.Topic,
		Partition: a.ID,
		MinBytes:  1,
		MaxBytes:  16 << 20,
		MaxWait:   100 * time.Millisecond,
	})
	defer r.Close()
	if err := r.SetOffset(from); err != nil {
		log.Error("seek", "offset", from, "err", err)
		return
	}
	log.Info("partition started", "committed", committed, "replay_from", from)

	msgs := make(chan kafka.Message, c.opt.MaxBatch)
	fctx, fcancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(msgs)
		for {
			// While Kafka is away the partition waits, however long it
			// takes: the reader reconnects by itself and keeps its offset.
			var m kafka.Message
			if err := retry.Do(fctx, backoff, func(attempt int, err error, wait time.Duration) {
				log.Warn("fetch failed; waiting for Kafka", "attempt", attempt, "backoff", wait, "err", err)
			}, func(ctx context.Context) (err error) {
				m, err = r.FetchMessage(ctx)
				return err
			}); err != nil {
				return
			}
			select {
			case msgs <- m:
			case <-fctx.Done():
				return
			}
		}
	}()
	defer wg.Wait()
	defer fcancel()

	// Scoring and writing overlap: while earlier batches' outputs are being
	// acknowledged the next batch is scored (see writer).
	writes := make(chan scored, 1)
	wg.Add(1)
	go func() {
		defer wg.Done()
		c.writer(ctx, log, cm, a.ID, writes)
	}()
	defer close(writes)

	lag := c.m.Lag.WithLabelValues(strconv.Itoa(a.ID))
	batch := make([]kafka.Message, 0, c.opt.MaxBatch)
	// Readings held for a missing earlier one are given up after the
	// reorder wait even when nothing else arrives.
	tick := time.NewTicker(cmp.Or(c.opt.ReorderWait/2, time.Second))
	defer tick.Stop()
	next := from // the offset after the last message read
	for {
		batch = batch[:0]
		select {
		case <-ctx.Done():
			return
		case req := <-acks:
			c.ack(ctx, p, req, writes)
			continue
		case now := <-tick.C:
			if len(p.waiting) == 0 || (committed >= 0 && next <= committed) {
				continue
			}
			b := &Batch{Partition: a.ID}
			p.flush(now, b)
			select {
			case writes <- scored{b: b, next: commitPoint(next, p.heldFrom())}:
			case <-ctx.Done():
				return
			}
			continue
		case m, ok := <-msgs:
			if !ok {
				return
			}
			batch = append(batch, m)
		}
	drain:
		for len(batch) < c.opt.MaxBatch {
			select {
			case m, ok := <-msgs:
				if !ok {
					break drain
				}
				batch = append(batch, m)
			default:
				break drain
			}
		}
		start := time.Now()
		b := &Batch{Partition: a.ID}
		for i := range batch {
			p.handle(&batch[i], committed < 0 || batch[i].Offset >= committed, b)
		}
		p.flush(time.Now(), b)
		last := batch[len(batch)-1].Offset
		next = last + 1
		if committed >= 0 && last < committed {
			continue // still replaying: nothing new to write or commit
		}
		if log.Enabled(ctx, slog.LevelDebug) {
			log.Debug("batch scored", "messages", len(batch), "scores", len(b.Scores), "took", time.Since(start))
		}
		select {
		case writes <- scored{b: b, next: commitPoint(next, p.heldFrom()), took: time.Since(start)}:
		case <-ctx.Done():
			return
		}
		lag.Set(float64(r.Lag()))
	}
}

// commitPoint is the offset to commit after reading up to next: not past
// the first message with a reading still held (held, -1: none).
func commitPoint(next, held int64) int64 {
	if held >= 0 && held < next {
		return held
	}
	return next
}

// scored is a batch waiting for its outputs; next is the offset to commit
// once they acknowledge it (-1: nothing to commit).
type scored struct {
	b    *Batch
	next int64
	took time.Duration
}

// writeDepth is how many batches of one partition may be written at once.
const writeDepth = 4

// pendingWrite is one batch being written.
type pendingWrite struct {
	w       scored
	start   time.Time
	done    chan error
	written chan struct{} // closed when the write has ended, either way
}

// writer writes a partition's batches, up to writeDepth at a time, and
// acknowledges them to the committer strictly in order, so a committed
// offset never passes a batch that is not yet durable. A failed write is
// retried only once every earlier write has ended, so after an outage
// (which fails the writes in flight together) the batches land in order;
// only a write that succeeds at once while an earlier one fails can land
// ahead of it (ids are unique: consumers order by asset and seq). An
// asset's alert events must not overtake each other, nor the retained
// state go back in time: a batch that carries alert events waits for
// every earlier write and is written alone.
func (c *Consumer) writer(ctx context.Context, log *slog.Logger, cm *committer, partition int, in <-chan scored) {
	var queue []*pendingWrite
	var wg sync.WaitGroup
	defer wg.Wait()
	var prev chan struct{} // the last launched write's written
	launch := func(w scored) {
		pw := &pendingWrite{w: w, start: time.Now(), done: make(chan error, 1), written: make(chan struct{})}
		after := prev
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := c.write(ctx, log, w.b, after)
			close(pw.written)
			pw.done <- err
		}()
		queue = append(queue, pw)
		prev = pw.written
	}
	// complete acknowledges the oldest write once its outcome err is known;
	// false means it failed (ctx ended) and nothing after it may be
	// acknowledged: the next owner replays from the last commit.
	complete := func(err error) bool {
		pw := queue[0]
		queue = queue[1:]
		if err != nil {
			return false
		}
		now := time.Now()
		if pw.w.next >= 0 {
			cm.ack(partition, pw.w.next)
		}
		c.m.Batches.Observe(pw.w.took.Seconds() + now.Sub(pw.start).Seconds())
		for i := range pw.w.b.Scores {
			c.m.EndToEnd.Observe(now.Sub(pw.w.b.Scores[i].Source.Time).Seconds())
		}
		return true
	}
	drain := func(keep int) bool {
		for len(queue) > keep {
			if !complete(<-queue[0].done) {
				return false
			}
		}
		return true
	}
	for {
		var oldest chan error
		if len(queue) > 0 {
			oldest = queue[0].done
		}
		select {
		case err := <-oldest:
			if !complete(err) {
				return
			}
		case w, ok := <-in:
			if !ok {
				drain(0)
				return
			}
			if len(w.b.Alerts) > 0 {
				if !drain(0) {
					return
				}
				launch(w)
				if !drain(0) {
					return
				}
				continue
			}
			if !drain(writeDepth - 1) {
				return
			}
			launch(w)
		}
	}
}

// write hands b to every output, retrying failed ones with backoff until
// all acknowledge or ctx ends; a retry waits for after (the previous
// batch's write) to end first.
func (c *Consumer) write(ctx context.Context, log *slog.Logger, b *Batch, after <-chan struct{}) error {
	if len(b.Scores) == 0 && len(b.Alerts) == 0 {
		return nil
	}
	done := make([]bool, len(c.outs))
	for attempt := 0; ; attempt++ {
		errs := make([]error, len(c.outs))
		var wg sync.WaitGroup
		for i, o := range c.outs {
			if done[i] {
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs[i] = o.Write(ctx, b)
			}()
		}
		wg.Wait()
		failed := false
		wait := backoff.Next(attempt)
		for i, err := range errs {
			if err == nil {
				done[i] = true
				continue
			}
			failed = true
			if ctx.Err() == nil {
				log.Warn("output failed; retrying", "output", c.outs[i].Name(), "err", err, "backoff", wait)
			}
		}
		if !failed {
			return nil
		}
		if after != nil {
			select {
			case <-after:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		if !retry.Sleep(ctx, wait) {
			return ctx.Err()
		}
	}
}

// backoff paces the consumer's waits for Kafka and its outputs.
var backoff = retry.Backoff{Initial: 100 * time.Millisecond, Max: 5 * time.Second}

func (c *Consumer) ack(ctx context.Context, p *processor, req ackReq, writes chan<- scored) {
	a, ok := p.ackAlert(req.id, req.by, req.reason, req.at)
	if !ok {
		req.reply <- ackReply{}
		return
	}
	b := &Batch{Partition: p.partition, Alerts: []alert.Alert{a}}
	if a.Resolution == alert.Operator {
		// "This is the new normal": the trainer learns it for good.
		b.Requests = []wire.TrainingRequest{{Site: a.Site, Asset: a.Asset, Reason: wire.ReasonOperator, By: a.AckedBy, At: req.at, Since: a.FirstTime}}
	}
	select {
	case writes <- scored{b: b, next: -1}:
		req.reply <- ackReply{a: a, ok: true}
	case <-ctx.Done():
		req.reply <- ackReply{a: a, ok: true, err: ctx.Err()}
	}
}

// Ack acknowledges an open alert held by one of this instance's
// partitions and publishes the acknowledged state; with reason
// "new_normal" the alert resolves and the asset is re-baselined.
func (c *Consumer) Ack(ctx context.Context, id, by, reason string) (alert.Alert, error) {
	ctx, cancel := context.WithTimeout(ctx, ackTimeout)
	defer cancel()
	c.mu.Lock()
	ports := make([]*ackPort, 0, len(c.acks))
	for _, p := range c.acks {
		ports = append(ports, p)
	}
	c.mu.Unlock()
	now := time.Now().UTC()
	for _, p := range ports {
		reply := make(chan ackReply, 1)
		select {
		case p.ch <- ackReq{id: id, by: by, reason: reason, at: now, reply: reply}:
		case <-p.done:
			continue
		case <-ctx.Done():
			return alert.Alert{}, fmt.Errorf("stream: ack %s: partitions busy: %w", id, ctx.Err())
		}
		select {
		case r := <-reply:
			if r.ok {
				return r.a, r.err
			}
		case <-ctx.Done():
			return alert.Alert{}, fmt.Errorf("stream: ack %s: partitions busy: %w", id, ctx.Err())
		}
	}
	return alert.Alert{}, fmt.Errorf("%w: %s", ErrAlertNotHere, id)
}

// ackTimeout bounds how long Ack waits for the partitions' loops, so a busy
// partition cannot hold an operator's request or the alert view for ever.
var ackTimeout = 10 * time.Second

func (c *Consumer) firstOffset(ctx context.Context, partition int) (int64, error) {
	resp, err := c.client.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{
		c.opt.Topic: {kafka.FirstOffsetOf(partition)}}})
	if err != nil {
		return 0, fmt.Errorf("first offset: %w", err)
	}
	for _, p := range resp.Topics[c.opt.Topic] {
		if p.Partition == partition {
			if p.Error != nil {
				return 0, fmt.Errorf("first offset: %w", p.Error)
			}
			return p.FirstOffset, nil
		}
	}
	return 0, fmt.Errorf("first offset: partition %d not in the answer", partition)
}
