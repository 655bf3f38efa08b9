// Package fleet keeps what the console shows of every asset: the latest
// score with its contributions, forecast and model version, a short
// history of scores and of the sensor values they scored for charts, when
// the asset was last scored, and the retained online/offline status of
// its gateway.
//
// Invariants:
//   - The store follows the scores topic, which every instance publishes
//     to, so each instance shows the whole fleet whichever partitions it
//     owns; a score record carries the sensor values it scored.
//   - Staleness is measured on the scorers' clock (a score's scored_at),
//     not the reading's timestamp, so a gateway replaying its spool with
//     old timestamps is not called stale while it sends.
//   - History is a fixed ring per asset, and the store's size is bounded
//     by its asset limit times History readings.
package fleet

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/pdmstream/pdm/pdmkit/alert"
	"github.com/pdmstream/pdm/scorer/internal/stream"
)

// Point is one score in an asset's history, with the sensor values of
// the reading it scored.
type Point struct {
	Time    time.Time          `json:"ts"`
	Score   float64            `json:"score"`
	Alert   bool               `json:"alert,omitempty"`
	Sensors map[string]float64 `json:"sensors,omitempty"`
}

// Asset is the latest of one asset.
type Asset struct {
	Site  string `json:"site"`
	Asset string `json:"asset"`
	// Score is the latest score; LastReading its reading's timestamp;
	// Seq its sequence number.
	Score       float64   `json:"score"`
	Seq         uint64    `json:"seq"`
	LastReading time.Time `json:"last_reading"`
	// LastSeen is when a scorer scored the asset's latest reading.
	LastSeen      time.Time       `json:"last_seen"`
	Alert         bool            `json:"alert"`
	WarmingUp     bool            `json:"warming_up"`
	Contributions []alert.Sensor  `json:"contributions,omitempty"`
	Forecast      *alert.Forecast `json:"forecast,omitempty"`
	Model         string          `json:"model"`
	Version       string          `json:"version"`
	Error         string          `json:"error,omitempty"`
	// Gateway is the edge agent that last listed the asset in its retained
	// status, GatewayStatus that status ("online", "offline") and
	// GatewaySince its time; empty when no status names the asset.
	Gateway       string     `json:"gateway,omitempty"`
	GatewayStatus string     `json:"gateway_status,omitempty"`
	GatewaySince  *time.Time `json:"gateway_since,omitempty"`
}

// gatewayStatus is the edge agent's retained status message
// ({"agent","status","assets","time"}, edge-agent/README.md).
type gatewayStatus struct {
	Agent  string    `json:"agent"`
	Status string    `json:"status"`
	Assets []string  `json:"assets"`
	Time   time.Time `json:"time"`
}

// Gateway statuses.
const (
	Online  = "online"
	Offline = "offline"
)

type entry struct {
	last Asset
	ring []Point
	next int // where the next point goes
	full bool
}

// Options size the store.
type Options struct {
	// History is how many recent scores (and their readings) per asset
	// are kept. Default 360.
	History int
	// MaxAssets bounds the assets kept; beyond it the longest silent go
	// first. Default 100,000.
	MaxAssets int
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// Store holds the fleet. It is safe for concurrent use.
type Store struct {
	opt    Options
	mu     sync.RWMutex
	assets map[string]*entry
	// gateways holds each agent's latest status by site/agent; byAsset
	// names the agent that listed site/asset last.
	gateways map[string]gatewayStatus
	byAsset  map[string]string
}

// ErrStatus: a gateway status message that cannot be read.
var ErrStatus = errors.New("fleet: bad gateway status")

// Gateway records agent's retained status at site; an empty payload (a
// cleared retained message) forgets the agent.
func (s *Store) Gateway(site, agent string, payload []byte) error {
	var st gatewayStatus
	if len(payload) > 0 {
		if err := json.Unmarshal(payload, &st); err != nil {
			return fmt.Errorf("%w from %s/%s: %v", ErrStatus, site, agent, err)
		}
		if st.Status != Online && st.Status != Offline {
			return fmt.Errorf("%w from %s/%s: status %q is neither online nor offline", ErrStatus, site, agent, st.Status)
		}
	}
	key := site + "/" + agent
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, a := range s.gateways[key].Assets {
		if s.byAsset[site+"/"+a] == key {
			delete(s.byAsset, site+"/"+a)
		}
	}
	if len(payload) == 0 {
		delete(s.gateways, key)
		return nil
	}
	s.gateways[key] = st
	for _, a := range st.Assets {
		s.byAsset[site+"/"+a] = key
	}
	return nil
}

// withGateway fills a's gateway fields; s.mu is held.
func (s *Store) withGateway(a Asset) Asset {
	key, ok := s.byAsset[a.Site+"/"+a.Asset]
	if !ok {
		return a
	}
	st := s.gateways[key]
	a.Gateway, a.GatewayStatus = st.Agent, st.Status
	if !st.Time.IsZero() {
		at := st.Time
		a.GatewaySince = &at
	}
	return a
}

// New returns an empty store.
func New(opt Options) *Store {
	if opt.History <= 0 {
		opt.History = 360
	}
	if opt.MaxAssets <= 0 {
		opt.MaxAssets = 100_000
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	return &Store{opt: opt, assets: map[string]*entry{}, gateways: map[string]gatewayStatus{}, byAsset: map[string]string{}}
}

// Apply takes one record of the scores topic; a record that is not a
// score is counted by the caller through the error.
func (s *Store) Apply(value []byte) error {
	var sc stream.Score
	if err := json.Unmarshal(value, &sc); err != nil {
		return fmt.Errorf("fleet: score record: %w", err)
	}
	if sc.Asset == "" {
		return errors.New("fleet: score record without an asset")
	}
	s.Put(sc)
	return nil
}

// Put records scores, in the order scored.
func (s *Store) Put(scores ...stream.Score) {
	now := s.opt.Now().UTC()
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range scores {
		sc := &scores[i]
		e := s.assets[sc.Asset]
		if e == nil {
			e = &entry{ring: make([]Point, s.opt.History)}
			s.assets[sc.Asset] = e
		}
		// A redelivered older reading does not move the latest back (a
		// gateway that restarts its sequence sends newer timestamps).
		if sc.Seq < e.last.Seq && !sc.Time.After(e.last.LastReading) {
			continue
		}
		seen := sc.ScoredAt
		if seen.IsZero() || seen.After(now) {
			seen = now
		}
		e.last = Asset{Site: sc.Site, Asset: sc.Asset, Score: sc.Score, Seq: sc.Seq, LastReading: sc.Time, LastSeen: seen,
			Alert: sc.Alert, WarmingUp: sc.WarmingUp, Contributions: sc.Contributions, Forecast: sc.Forecast,
			Model: sc.Model, Version: sc.Version, Error: sc.Error}
		e.ring[e.next] = Point{Time: sc.Time, Score: sc.Score, Alert: sc.Alert, Sensors: sc.Sensors}
		e.next++
		if e.next == len(e.ring) {
			e.next, e.full = 0, true
		}
	}
	if len(s.assets) > s.opt.MaxAssets {
		s.evict()
	}
}

// evict drops the longest silent assets down to MaxAssets.
func (s *Store) evict() {
	ids := make([]string, 0, len(s.assets))
	for id := range s.assets {
		ids = append(ids, id)
	}
	slices.SortFunc(ids, func(a, b string) int { return s.assets[a].last.LastSeen.Compare(s.assets[b].last.LastSeen) })
	for _, id := range ids[:len(ids)-s.opt.MaxAssets] {
		delete(s.assets, id)
	}
}

// List returns every asset, by site and asset.
func (s *Store) List() []Asset {
	s.mu.RLock()
	out := make([]Asset, 0, len(s.assets))
	for _, e := range s.assets {
		out = append(out, s.withGateway(e.last))
	}
	s.mu.RUnlock()
	slices.SortFunc(out, func(a, b Asset) int {
		if a.Site != b.Site {
			return strings.Compare(a.Site, b.Site)
		}
		return strings.Compare(a.Asset, b.Asset)
	})
	return out
}

// Get returns one asset and its history, oldest first.
func (s *Store) Get(asset string) (Asset, []Point, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	e := s.assets[asset]
	if e == nil {
		return Asset{}, nil, false
	}
	var h []Point
	if e.full {
		h = append(slices.Clone(e.ring[e.next:]), e.ring[:e.next]...)
	} else {
		h = slices.Clone(e.ring[:e.next])
	}
	return s.withGateway(e.last), h, true
}
