package bridge

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"slices"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/protocol"
	"github.com/segmentio/kafka-go/protocol/produce"

	"github.com/pdmstream/pdm/pdmkit/kafkaconn"
)

// producer writes a batch of records to Kafka with acks=all in one produce
// request per leader broker, every partition's records in it, as the Java
// producer does. kafka-go's Writer sends one request per partition batch;
// for the broker, per-request work dominates, and on the 2-core benchmark
// machine one request per batch cut the broker's CPU by about 40%.
//
// Records are spread over partitions by kafka-go's Murmur2Balancer, so an
// asset's records land where a Java client would put them.
type producer struct {
	client      *kafka.Client
	compression kafka.Compression
	balancer    kafka.Murmur2Balancer

	mu      sync.Mutex
	topics  map[string]topicLayout
	fetched time.Time
}

// topicLayout is what the producer knows of a topic: its partitions, in
// order, and the broker leading each.
type topicLayout struct {
	partitions []int
	leader     map[int]int
}

// metadataTTL is how long the producer trusts its topic layout; an error
// from Kafka refreshes it at once.
const metadataTTL = 30 * time.Second

// requestTimeout bounds the broker's wait for acks=all.
const requestTimeout = 10 * time.Second

// newProducer writes through conn's Transport: with TLS or SASL a
// transport of the producer's own; plain and anonymous, kafka-go's
// DefaultTransport, whose metadata knows a topic as soon as another client
// of the process has created it.
func newProducer(conn *kafkaconn.Conn, compression kafka.Compression) *producer {
	return &producer{
		client:      &kafka.Client{Addr: kafka.TCP(conn.Brokers...), Transport: conn.Transport()},
		compression: compression,
	}
}

// close releases the producer's connections, unless they are in the
// DefaultTransport that the rest of the process shares.
func (p *producer) close() {
	if t := p.client.Transport.(*kafka.Transport); t != kafka.DefaultTransport {
		t.CloseIdleConnections()
	}
}

// partitionKey names one partition of one topic.
type partitionKey struct {
	topic     string
	partition int
}

// produce writes recs, keeping their order within each partition. It
// returns the records Kafka did not take, in order, with the first error;
// writing those again later keeps each partition's order.
func (p *producer) produce(ctx context.Context, recs []kafka.Message) ([]kafka.Message, error) {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout+5*time.Second)
	defer cancel()
	topics, err := p.layout(ctx, recs)
	if err != nil {
		return recs, err
	}
	parts := make(map[partitionKey][]kafka.Message)
	byLeader := make(map[int][]partitionKey)
	where := make([]partitionKey, len(recs)) // each record's partition
	for i, r := range recs {
		t := topics[r.Topic]
		k := partitionKey{r.Topic, p.balancer.Balance(r, t.partitions...)}
		if _, seen := parts[k]; !seen {
			byLeader[t.leader[k.partition]] = append(byLeader[t.leader[k.partition]], k)
		}
		parts[k] = append(parts[k], r)
		where[i] = k
	}

	type result struct {
		failed []partitionKey
		err    error
	}
	results := make(chan result, len(byLeader))
	now := time.Now()
	for _, keys := range byLeader {
		go func() {
			failed, err := p.send(ctx, keys, parts, now)
			results <- result{failed, err}
		}()
	}
	var failed map[partitionKey]bool
	var firstErr error
	for range byLeader {
		r := <-results
		if r.err == nil {
			continue
		}
		firstErr = keepFirst(firstErr, r.err)
		if failed == nil {
			failed = make(map[partitionKey]bool)
		}
		for _, k := range r.failed {
			failed[k] = true
		}
	}
	if firstErr == nil {
		return nil, nil
	}
	p.forget() // a leader may have moved: ask again before the retry
	var left []kafka.Message
	for i, r := range recs {
		if failed[where[i]] {
			left = append(left, r)
		}
	}
	return left, firstErr
}

// keepFirst returns first, or err if there is no first error yet.
func keepFirst(first, err error) error {
	if first != nil {
		return first
	}
	return err
}

// send writes the records of keys, whose partitions share a leader, in one
// request, and returns the partitions Kafka refused.
func (p *producer) send(ctx context.Context, keys []partitionKey, parts map[partitionKey][]kafka.Message, now time.Time) ([]partitionKey, error) {
	req := &produce.Request{Acks: int16(kafka.RequireAll), Timeout: int32(requestTimeout.Milliseconds())}
	index := make(map[string]int) // topic → position in req.Topics
	for _, k := range keys {
		i, ok := index[k.topic]
		if !ok {
			i = len(req.Topics)
			index[k.topic] = i
			req.Topics = append(req.Topics, produce.RequestTopic{Topic: k.topic})
		}
		req.Topics[i].Partitions = append(req.Topics[i].Partitions, produce.RequestPartition{
			Partition: int32(k.partition),
			RecordSet: protocol.RecordSet{
				Attributes: protocol.Attributes(p.compression) & 0x7,
				// The records carry the bridge's clock: retention works on
				// it, and a reading spooled for days must not expire at once.
				Records: &records{msgs: parts[k], time: now},
			},
		})
	}
	msg, err := p.client.Transport.RoundTrip(ctx, p.client.Addr, req)
	if err != nil {
		return keys, fmt.Errorf("kafka produce: %w", err)
	}
	res, ok := msg.(*produce.Response)
	if !ok {
		return keys, fmt.Errorf("kafka produce: unexpected response %T", msg)
	}
	var failed []partitionKey
	var firstErr error
	answered := make(map[partitionKey]bool, len(keys))
	for _, t := range res.Topics {
		for _, rp := range t.Partitions {
			k := partitionKey{t.Topic, int(rp.Partition)}
			answered[k] = true
			if rp.ErrorCode != 0 {
				failed = append(failed, k)
				firstErr = keepFirst(firstErr, fmt.Errorf("kafka produce to %s/%d: %w", k.topic, k.partition, kafka.Error(rp.ErrorCode)))
			}
		}
	}
	for _, k := range keys {
		if !answered[k] {
			failed = append(failed, k)
			firstErr = keepFirst(firstErr, fmt.Errorf("kafka produce to %s/%d: no answer for the partition", k.topic, k.partition))
		}
	}
	return failed, firstErr
}

// layout returns the layout of every topic in recs, asking Kafka for those
// it does not know, and for all once they are old.
func (p *producer) layout(ctx context.Context, recs []kafka.Message) (map[string]topicLayout, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if time.Since(p.fetched) > metadataTTL {
		p.topics = nil
	}
	var names []string
	for _, r := range recs {
		if _, ok := p.topics[r.Topic]; !ok && !slices.Contains(names, r.Topic) {
			names = append(names, r.Topic)
		}
	}
	if len(names) == 0 {
		return p.topics, nil
	}
	res, err := p.client.Metadata(ctx, &kafka.MetadataRequest{Topics: names})
	if err != nil {
		return nil, fmt.Errorf("kafka metadata: %w", err)
	}
	if p.topics == nil {
		p.topics = make(map[string]topicLayout)
		p.fetched = time.Now()
	}
	why := make(map[string]error)
	for _, t := range res.Topics {
		if t.Error != nil || len(t.Partitions) == 0 {
			why[t.Name] = t.Error
			continue
		}
		l := topicLayout{leader: make(map[int]int, len(t.Partitions))}
		for _, part := range t.Partitions {
			l.partitions = append(l.partitions, part.ID)
			l.leader[part.ID] = part.Leader.ID
		}
		slices.Sort(l.partitions)
		p.topics[t.Name] = l
	}
	for _, n := range names {
		if _, ok := p.topics[n]; !ok {
			return nil, fmt.Errorf("kafka metadata: topic %q has no partitions: %v", n, why[n])
		}
	}
	return p.topics, nil
}

// forget drops the cached layout.
func (p *producer) forget() {
	p.mu.Lock()
	p.topics = nil
	p.mu.Unlock()
}

// records reads kafka.Messages as protocol records, without copying them.
type records struct {
	msgs   []kafka.Message
	time   time.Time
	i      int
	record protocol.Record
	key    bytesRecord
	value  bytesRecord
}

func (r *records) ReadRecord() (*protocol.Record, error) {
	if r.i >= len(r.msgs) {
		return nil, io.EOF
	}
	m := &r.msgs[r.i]
	r.i++
	r.record = protocol.Record{Time: r.time, Headers: m.Headers}
	if m.Key != nil {
		r.key.Reset(m.Key)
		r.record.Key = &r.key
	}
	if m.Value != nil {
		r.value.Reset(m.Value)
		r.record.Value = &r.value
	}
	return &r.record, nil
}

// bytesRecord is a record's key or value.
type bytesRecord struct{ bytes.Reader }

func (*bytesRecord) Close() error { return nil }
