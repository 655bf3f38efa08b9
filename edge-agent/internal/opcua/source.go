package opcua

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"strings"
	"sync/atomic"
	"time"

	gopcua "github.com/gopcua/opcua"
	"github.com/gopcua/opcua/ua"

	"github.com/pdmstream/pdm/edge-agent/internal/source"
	"github.com/pdmstream/pdm/pdmkit/retry"
	"github.com/pdmstream/pdm/pdmkit/wire"
)

// Source reads one asset from an OPC UA server through a subscription: one
// monitored item per sensor. It implements source.Source; see the package
// documentation for how notifications become readings.
type Source struct {
	cfg     Config
	asset   Asset
	log     *slog.Logger
	nodes   []*ua.NodeID
	pinned  []byte // DER of cfg.ServerCertificate, if set
	backoff retry.Backoff
	now     func() time.Time

	items   []item
	quality map[string]string // marks of the reading Next returned last

	client   *gopcua.Client
	notes    chan *gopcua.PublishNotificationData
	lastNote time.Time // last data change of this session, for the liveness probe
	failures int       // connection attempts failed in a row
	sessions atomic.Int64
}

// item is what the source holds for one monitored item in this session.
type item struct {
	sensor string
	value  float64
	// has says value came from the server in this session and is usable
	// (status Good or Uncertain).
	has bool
	// mark is the item's quality mark: "" when Good, else the status name
	// (wire.QualityClass of it is bad or uncertain).
	mark string
	// at is when the server last sent the item.
	at time.Time
}

// New checks the asset against cfg and loads the certificate files; it
// connects nothing. cfg must have passed Validate.
func New(cfg Config, asset Asset, log *slog.Logger) (*Source, error) {
	s := &Source{
		cfg: cfg, asset: asset, log: log.With("component", "opcua", "asset", asset.ID, "endpoint", cfg.Endpoint),
		backoff: retry.Backoff{Initial: 200 * time.Millisecond, Max: cfg.MaxReconnectInterval},
		now:     time.Now,
	}
	for _, it := range asset.Items {
		n, err := ua.ParseNodeID(it.Node)
		if err != nil {
			return nil, fmt.Errorf("opcua: asset %s node %q: %w", asset.ID, it.Node, err)
		}
		s.nodes = append(s.nodes, n)
		s.items = append(s.items, item{sensor: it.Sensor})
	}
	if cfg.SecurityPolicy != PolicyNone {
		// Load now, so a missing or unreadable file stops the agent at start
		// instead of failing every reconnect.
		if _, err := gopcua.ApplyConfig(gopcua.CertificateFile(cfg.Certificate)); err != nil {
			return nil, fmt.Errorf("opcua: certificate %s: %w", cfg.Certificate, err)
		}
		if _, err := gopcua.ApplyConfig(gopcua.PrivateKeyFile(cfg.PrivateKey)); err != nil {
			return nil, fmt.Errorf("opcua: private_key %s (a .pem must be PKCS#1, \"BEGIN RSA PRIVATE KEY\"; convert with openssl rsa -traditional): %w", cfg.PrivateKey, err)
		}
	}
	if cfg.ServerCertificate != "" {
		der, err := loadDER(cfg.ServerCertificate)
		if err != nil {
			return nil, fmt.Errorf("opcua: server_certificate: %w", err)
		}
		s.pinned = der
	}
	return s, nil
}

// ID is the asset id.
func (s *Source) ID() string { return s.asset.ID }

// Sessions counts the sessions established so far (1 after the first
// connect, 2 after one reconnect...).
func (s *Source) Sessions() int { return int(s.sessions.Load()) }

// Quality returns the marks of the reading Next returned last: sensor name
// → wire quality mark, nil when every value was good.
func (s *Source) Quality() map[string]string { return s.quality }

// Next returns the asset's values after the next data-change notification:
// the latest value of every item the server has sent in this session. A
// failed connection attempt or a lost session is a missed cycle (an error
// wrapping source.ErrMissed); the next call reconnects after a backoff and
// subscribes again.
func (s *Source) Next(ctx context.Context) (map[string]float64, error) {
	if s.client == nil {
		if err := s.connect(ctx); err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, fmt.Errorf("%w: opcua connect %s: %w", source.ErrMissed, s.cfg.Endpoint, err)
		}
	}
	check := time.NewTicker(min(s.cfg.PublishingInterval, time.Second))
	defer check.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case n := <-s.notes:
			if n.Error != nil {
				return nil, s.lost(fmt.Errorf("subscription: %w", n.Error))
			}
			switch v := n.Value.(type) {
			case *ua.DataChangeNotification:
				s.lastNote = s.now()
				s.apply(v.MonitoredItems)
				sensors, quality := s.reading()
				if len(sensors) == 0 {
					if len(quality) == 0 {
						continue // nothing heard yet
					}
					s.quality = nil
					return nil, fmt.Errorf("%w: opcua asset %s: no usable value (%v)", source.ErrMissed, s.asset.ID, quality)
				}
				s.quality = quality
				return sensors, nil
			case *ua.StatusChangeNotification:
				// The server ended the subscription (it timed out, say).
				return nil, s.lost(fmt.Errorf("subscription status %s", statusName(v.Status)))
			}
		case <-check.C:
			if st := s.client.State(); st != gopcua.Connected {
				return nil, s.lost(fmt.Errorf("connection %s", st))
			}
			if s.now().Sub(s.lastNote) > s.cfg.Timeout {
				// Keep-alives do not reach us: a session without data changes
				// for a while reads the items' values, which recovers a lost
				// notification and fails on a server that hangs.
				changed, err := s.probe(ctx)
				if err != nil {
					if ctx.Err() != nil {
						return nil, ctx.Err()
					}
					return nil, s.lost(fmt.Errorf("probe: %w", err))
				}
				s.lastNote = s.now()
				if sensors, quality := s.reading(); changed && len(sensors) > 0 {
					s.quality = quality
					return sensors, nil
				}
			}
		}
	}
}

// connect waits out the backoff after failed attempts, then opens a session,
// creates the subscription and its monitored items.
func (s *Source) connect(ctx context.Context) error {
	if s.failures > 0 {
		if !retry.Sleep(ctx, s.backoff.Next(s.failures-1)) {
			return ctx.Err()
		}
	}
	if err := s.dial(ctx); err != nil {
		s.failures++
		s.log.Debug("opcua connect failed", "attempt", s.failures, "err", err)
		return err
	}
	s.failures = 0
	return nil
}

func (s *Source) dial(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	opts, err := s.options(ctx)
	if err != nil {
		return err
	}
	c, err := gopcua.NewClient(s.cfg.Endpoint, opts...)
	if err != nil {
		return err
	}
	if err := c.Connect(ctx); err != nil {
		c.Close(ctx)
		return err
	}
	notes := make(chan *gopcua.PublishNotificationData, 64)
	keepAlive := keepAliveCount(s.cfg)
	sub, err := c.Subscribe(ctx, &gopcua.SubscriptionParameters{
		Interval: s.cfg.PublishingInterval, MaxKeepAliveCount: keepAlive, LifetimeCount: 3 * keepAlive,
	}, notes)
	if err != nil {
		c.Close(ctx)
		return fmt.Errorf("subscribe: %w", err)
	}
	reqs := make([]*ua.MonitoredItemCreateRequest, len(s.nodes))
	for i, n := range s.nodes {
		r := gopcua.NewMonitoredItemCreateRequestWithDefaults(n, ua.AttributeIDValue, uint32(i+1))
		r.RequestedParameters.QueueSize = 1 // the latest value per publish is all a reading holds
		r.RequestedParameters.SamplingInterval = -1
		if d := s.asset.Items[i].SamplingInterval; d > 0 {
			r.RequestedParameters.SamplingInterval = float64(d) / float64(time.Millisecond)
		}
		reqs[i] = r
	}
	res, err := sub.Monitor(ctx, ua.TimestampsToReturnBoth, reqs...)
	if err == nil && len(res.Results) != len(reqs) {
		err = fmt.Errorf("server answered %d of %d monitored items", len(res.Results), len(reqs))
	}
	if err != nil {
		c.Close(ctx)
		return fmt.Errorf("monitor: %w", err)
	}
	now := s.now()
	var refused []string
	for i, r := range res.Results {
		s.items[i] = item{sensor: s.items[i].sensor}
		if r.StatusCode != ua.StatusOK {
			// A node that does not exist, say: bad for the whole session.
			s.items[i].mark, s.items[i].at = statusName(r.StatusCode), now
			refused = append(refused, s.asset.Items[i].Node+": "+s.items[i].mark)
		}
	}
	if len(refused) > 0 {
		s.log.Warn("monitored items refused by the server; their sensors are marked bad", "items", refused)
	}
	s.client, s.notes, s.lastNote = c, notes, now
	s.log.Info("opcua subscribed", "session", s.sessions.Add(1), "items", len(reqs), "publishing_interval", sub.RevisedPublishingInterval)
	return nil
}

// keepAliveCount is how many empty publishing intervals the server waits
// before it answers a publish request with a keep-alive: about half of
// Timeout, the client's publish request timeout. Were it the whole of
// Timeout, the client would give up on each quiet request just before the
// server answered it, and a value that changed at that moment would go in
// the answer to a request nobody waits for.
func keepAliveCount(cfg Config) uint32 {
	return uint32(max(1, cfg.Timeout/cfg.PublishingInterval/2-1))
}

// options builds the client's options from the server's endpoint list:
// the endpoint of the configured policy and mode, its certificate (checked
// against the pinned one) and user token policy.
func (s *Source) options(ctx context.Context) ([]gopcua.Option, error) {
	base := []gopcua.Option{
		gopcua.AutoReconnect(false), // reconnects are ours, with pdmkit/retry's backoff
		gopcua.DialTimeout(s.cfg.Timeout),
		gopcua.RequestTimeout(s.cfg.Timeout),
		gopcua.ApplicationName("pdm edge-agent"),
		gopcua.SessionName("pdm-edge-" + s.asset.ID),
	}
	eps, err := gopcua.GetEndpoints(ctx, s.cfg.Endpoint, base...)
	if err != nil {
		return nil, fmt.Errorf("get endpoints: %w", err)
	}
	ep, err := gopcua.SelectEndpoint(eps, s.cfg.SecurityPolicy, ua.MessageSecurityModeFromString(s.cfg.SecurityMode))
	if err != nil {
		return nil, fmt.Errorf("endpoint for policy %s, mode %s: %w", s.cfg.SecurityPolicy, s.cfg.SecurityMode, err)
	}
	if s.pinned != nil && !bytes.Equal(ep.ServerCertificate, s.pinned) {
		return nil, errors.New("the server's certificate is not opcua.server_certificate")
	}
	// Connect to the configured address: servers often list themselves
	// under a host name the gateway cannot resolve.
	ep.EndpointURL = s.cfg.Endpoint
	opts := append(base,
		gopcua.SecurityPolicy(s.cfg.SecurityPolicy),
		gopcua.SecurityModeString(s.cfg.SecurityMode),
		gopcua.CertificateFile(s.cfg.Certificate),
		gopcua.PrivateKeyFile(s.cfg.PrivateKey),
	)
	token := ua.UserTokenTypeAnonymous
	if s.cfg.Username != "" {
		token = ua.UserTokenTypeUserName
		opts = append(opts, gopcua.AuthUsername(s.cfg.Username, s.cfg.Password))
	} else {
		opts = append(opts, gopcua.AuthAnonymous())
	}
	return append(opts, gopcua.SecurityFromEndpoint(ep, token)), nil
}

// apply takes the values of one data-change notification.
func (s *Source) apply(items []*ua.MonitoredItemNotification) {
	now := s.now()
	for _, n := range items {
		i := int(n.ClientHandle) - 1
		if i < 0 || i >= len(s.items) || n.Value == nil {
			continue
		}
		it := &s.items[i]
		it.at = now
		it.value, it.has, it.mark = decode(n.Value)
	}
}

// decode turns a data value into what an item holds: the value, whether it
// is usable (status Good or Uncertain, and a number) and its quality mark.
func decode(dv *ua.DataValue) (value float64, has bool, mark string) {
	status := dv.Status
	if dv.EncodingMask&ua.DataValueStatusCode == 0 {
		status = ua.StatusGood // an absent status code means Good
	}
	if statusClass(status) == wire.QualityBad {
		return 0, false, statusName(status)
	}
	if statusClass(status) == wire.QualityUncertain {
		mark = statusName(status)
	}
	v, bad := number(dv.Value)
	if bad != "" {
		// Good or Uncertain, but nothing a reading can carry.
		return 0, false, bad
	}
	return v, true, mark
}

// reading builds the sensor map and the quality marks from what the
// session holds. An item the server has not sent yet is in neither.
func (s *Source) reading() (map[string]float64, map[string]string) {
	now := s.now()
	sensors := make(map[string]float64, len(s.items))
	var quality map[string]string
	mark := func(sensor, m string) {
		if quality == nil {
			quality = map[string]string{}
		}
		quality[sensor] = m
	}
	for _, it := range s.items {
		switch {
		case it.has:
			sensors[it.sensor] = it.value
			if s.cfg.StaleAfter > 0 && now.Sub(it.at) > s.cfg.StaleAfter {
				mark(it.sensor, wire.QualityStale)
			} else if it.mark != "" {
				mark(it.sensor, it.mark)
			}
		case it.mark != "":
			mark(it.sensor, it.mark)
		}
	}
	return sensors, quality
}

// probe reads the value of every item and takes those that differ from
// what the session holds. A notification can be lost (a server answers a
// publish request the client has already given up on), and servers may
// leave out the initial notification of a value that does not change; the
// read recovers both. A server that hangs with the connection open fails
// the read. changed says a value was taken.
func (s *Source) probe(ctx context.Context) (changed bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	read := make([]*ua.ReadValueID, len(s.nodes))
	for i, n := range s.nodes {
		read[i] = &ua.ReadValueID{NodeID: n, AttributeID: ua.AttributeIDValue}
	}
	res, err := s.client.Read(ctx, &ua.ReadRequest{NodesToRead: read})
	if err != nil {
		return false, err
	}
	if len(res.Results) != len(read) {
		return false, fmt.Errorf("read of %d nodes answered %d results", len(read), len(res.Results))
	}
	var notes []*ua.MonitoredItemNotification
	for i, dv := range res.Results {
		n := &ua.MonitoredItemNotification{ClientHandle: uint32(i + 1), Value: dv}
		if it := s.items[i]; it.at.IsZero() || differs(it, n.Value) {
			notes = append(notes, n)
		}
	}
	s.apply(notes)
	return len(notes) > 0, nil
}

// differs says a data value would change what an item holds.
func differs(it item, dv *ua.DataValue) bool {
	if dv == nil {
		return false
	}
	v, has, mark := decode(dv)
	return has != it.has || v != it.value || mark != it.mark
}

// lost ends the session; what it held is forgotten, so no value of a
// previous session is published after a reconnect. It returns the missed
// cycle error for Next.
func (s *Source) lost(cause error) error {
	s.log.Warn("opcua session lost; reconnecting", "err", cause)
	s.closeClient()
	for i := range s.items {
		s.items[i] = item{sensor: s.items[i].sensor}
	}
	s.quality = nil
	return fmt.Errorf("%w: opcua asset %s: %w", source.ErrMissed, s.asset.ID, cause)
}

func (s *Source) closeClient() { s.closeClientCtx(context.Background()) }

func (s *Source) closeClientCtx(ctx context.Context) {
	if s.client == nil {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	_ = s.client.Close(ctx)
	s.client, s.notes = nil, nil
}

// Close ends the session, waiting for the server's answer until ctx ends
// (at most a second). It is safe to call twice.
func (s *Source) Close(ctx context.Context) error {
	s.closeClientCtx(ctx)
	return nil
}

// statusClass is the wire quality class of an OPC UA status code, "" for
// Good: the top two bits are 00 Good, 01 Uncertain, 10 Bad (11 is
// reserved, and taken as Bad).
func statusClass(code ua.StatusCode) string {
	switch code >> 30 {
	case 0:
		return ""
	case 1:
		return wire.QualityUncertain
	}
	return wire.QualityBad
}

// statusName is the OPC UA name of a status code without its info bits,
// such as "BadSensorFailure" or "UncertainLastUsableValue" — a wire quality
// mark of the code's class — or the bare class for a code it does not know.
func statusName(code ua.StatusCode) string {
	class := statusClass(code)
	if class == "" {
		return "Good"
	}
	if d, ok := ua.StatusCodes[code&0xFFFF0000]; ok {
		if name := specNames.Replace(strings.TrimPrefix(d.Name, "Status")); wire.QualityClass(name) == class {
			return name
		}
	}
	return class
}

// specNames turns gopcua's Go-style names back into the specification's
// (BadNodeIDUnknown → BadNodeIdUnknown, BadTCPServerTooBusy → BadTcpServerTooBusy).
var specNames = strings.NewReplacer("TCP", "Tcp", "URI", "Uri", "URL", "Url", "ID", "Id")

// number converts a scalar numeric or boolean variant to a float64, or
// says with a bad quality mark why it cannot: "BadTypeMismatch" for a
// string, array or structure, "bad" for no value or a NaN or infinity.
func number(v *ua.Variant) (float64, string) {
	if v == nil || v.Value() == nil {
		return 0, wire.QualityBad
	}
	var f float64
	switch x := v.Value().(type) {
	case float64:
		f = x
	case float32:
		f = float64(x)
	case int8:
		f = float64(x)
	case int16:
		f = float64(x)
	case int32:
		f = float64(x)
	case int64:
		f = float64(x)
	case uint8:
		f = float64(x)
	case uint16:
		f = float64(x)
	case uint32:
		f = float64(x)
	case uint64:
		f = float64(x)
	case bool:
		if x {
			f = 1
		}
	default:
		return 0, "BadTypeMismatch"
	}
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, wire.QualityBad
	}
	return f, ""
}

// loadDER reads a certificate file, PEM or DER.
func loadDER(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if block, _ := pem.Decode(b); block != nil {
		b = block.Bytes
	}
	if _, err := x509.ParseCertificate(b); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return b, nil
}
