package fleet

import (
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/pdmstream/pdm/pdmkit/alert"
	"github.com/pdmstream/pdm/scorer/internal/stream"
)

func TestStoreLatestHistoryAndBound(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := t0
	s := New(Options{History: 3, MaxAssets: 2, Now: func() time.Time { return clock }})
	score := func(asset string, seq uint64, v float64) stream.Score {
		return stream.Score{Site: "s", Asset: asset, Seq: seq, Time: t0.Add(time.Duration(seq) * time.Second), Score: v,
			Model: "m", Version: "1", Contributions: []alert.Sensor{{Name: "temp", Share: 1}},
			Sensors: map[string]float64{"temp": 60 + float64(seq), "vibration": float64(seq) / 100}}
	}
	for seq := uint64(1); seq <= 5; seq++ {
		s.Put(score("a", seq, float64(seq)/10))
	}
	// A redelivered older reading does not go back.
	s.Put(score("a", 2, 0.9))
	last, h, ok := s.Get("a")
	if !ok || last.Seq != 5 || last.Score != 0.5 || last.Version != "1" || len(last.Contributions) != 1 {
		t.Fatalf("latest %+v", last)
	}
	if len(h) != 3 || h[0].Score != 0.3 || h[2].Score != 0.5 {
		t.Fatalf("history %+v, want the last three oldest first", h)
	}
	// Each point carries the values of the reading it scored, in the
	// same bounded ring.
	for i, p := range h {
		seq := float64(i + 3)
		if len(p.Sensors) != 2 || p.Sensors["temp"] != 60+seq || p.Sensors["vibration"] != seq/100 {
			t.Fatalf("point %d sensors %v, want reading %v's", i, p.Sensors, seq)
		}
	}
	clock = t0.Add(time.Minute)
	s.Put(score("b", 1, 0.1))
	clock = t0.Add(2 * time.Minute)
	s.Put(score("c", 1, 0.1))
	// Beyond two assets the longest silent (a) goes.
	var names []string
	for _, x := range s.List() {
		names = append(names, x.Asset)
	}
	if len(names) != 2 || names[0] != "b" || names[1] != "c" {
		t.Fatalf("assets %v, want [b c]", names)
	}
	if _, h, _ := s.Get("b"); len(h) != 1 {
		t.Fatalf("history of b %+v", h)
	}
}

func TestGatewayStatus(t *testing.T) {
	s := New(Options{})
	s.Put(stream.Score{Site: "s", Asset: "a1", Seq: 1}, stream.Score{Site: "s", Asset: "a2", Seq: 1}, stream.Score{Site: "t", Asset: "b1", Seq: 1})
	status := func(asset, site string) string {
		t.Helper()
		for _, x := range s.List() {
			if x.Asset == asset && x.Site == site {
				return x.GatewayStatus
			}
		}
		t.Fatalf("no %s/%s", site, asset)
		return ""
	}
	if err := s.Gateway("s", "gw", []byte(`{"agent":"gw","status":"offline","assets":["a1","a2"],"time":"2026-01-01T00:00:00Z"}`)); err != nil {
		t.Fatal(err)
	}
	// An asset the status does not list keeps no gateway.
	if status("a1", "s") != Offline || status("a2", "s") != Offline || status("b1", "t") != "" {
		t.Fatalf("after offline: %+v", s.List())
	}
	if a, _, _ := s.Get("a2"); a.Gateway != "gw" || a.GatewaySince == nil {
		t.Fatalf("a2 %+v", a)
	}
	// The agent comes back with one asset: the other is no longer its.
	if err := s.Gateway("s", "gw", []byte(`{"agent":"gw","status":"online","assets":["a1"]}`)); err != nil {
		t.Fatal(err)
	}
	if status("a1", "s") != Online || status("a2", "s") != "" {
		t.Fatalf("after online: %+v", s.List())
	}
	for _, bad := range []string{`{"status":"sleeping"}`, `not json`} {
		if err := s.Gateway("s", "gw", []byte(bad)); !errors.Is(err, ErrStatus) {
			t.Errorf("%s: %v, want ErrStatus", bad, err)
		}
	}
	// A cleared retained status forgets the agent.
	if err := s.Gateway("s", "gw", nil); err != nil || status("a1", "s") != "" {
		t.Fatalf("after clear: %v %+v", err, s.List())
	}
}

func TestApplyFollowsTheScoresTopic(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	s := New(Options{Now: func() time.Time { return now }})
	// A record as another instance published it: the reading is an hour
	// old (a spool replay), it was scored a second ago.
	rec, err := json.Marshal(stream.Score{ID: "p/7", Site: "s", Asset: "p", Seq: 7, Time: now.Add(-time.Hour), Score: 0.25,
		Model: "m", Version: "3", ScoredAt: now.Add(-time.Second), Sensors: map[string]float64{"flow": 12.5}})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Apply(rec); err != nil {
		t.Fatal(err)
	}
	a, h, ok := s.Get("p")
	if !ok || a.Version != "3" || !a.LastSeen.Equal(now.Add(-time.Second)) || !a.LastReading.Equal(now.Add(-time.Hour)) {
		t.Fatalf("asset %+v: last seen is the scoring time, last reading the reading's", a)
	}
	if len(h) != 1 || h[0].Sensors["flow"] != 12.5 {
		t.Fatalf("history %+v: the record's sensor values feed the charts", h)
	}
	for _, bad := range []string{`not json`, `{"seq":1}`} {
		if err := s.Apply([]byte(bad)); err == nil {
			t.Errorf("%s: accepted", bad)
		}
	}
	if len(s.List()) != 1 {
		t.Fatalf("bad records added assets: %+v", s.List())
	}
}
