package api

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/pdmstream/pdm/pdmkit/alert"
	"github.com/pdmstream/pdm/scorer/internal/stream"
)

func TestAssetsEndpoints(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	v1 := artifact(t, "bearing", "1", []float64{0.5, 0.25, 0.1}, "bearing_temp", "vibration")
	if code, body := f.do(t, "PUT", "/v1/models/bearing/versions/1", token, v1); code != http.StatusCreated {
		t.Fatalf("upload: %d %v", code, body)
	}
	if code, body := f.do(t, "POST", "/v1/models/bearing/activate", token, []byte(`{"version":"1","default":true}`)); code != 200 {
		t.Fatalf("activate: %d %v", code, body)
	}
	read := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	sc := func(site, asset string, seq uint64, score float64, warm bool) stream.Score {
		return stream.Score{Site: site, Asset: asset, Seq: seq, Time: read.Add(time.Duration(seq) * time.Second), Score: score, WarmingUp: warm,
			Model: "bearing", Version: "1", Contributions: []alert.Sensor{{Name: "vibration", Share: 0.7}, {Name: "bearing_temp", Share: 0.3}},
			Forecast: &alert.Forecast{TimeToFailure: 3600, Low: 1800, High: 7200},
			Sensors:  map[string]float64{"bearing_temp": 60 + float64(seq), "vibration": score}}
	}
	// "old" was last scored two minutes ago: beyond StaleAfter (1m).
	f.seen = time.Now().Add(-2 * time.Minute)
	f.fleet.Put(sc("west", "old", 1, 0.2, false))
	f.seen = time.Now()
	f.fleet.Put(sc("east", "pump-1", 1, 0.5, false), sc("east", "pump-1", 2, 0.99, false),
		sc("east", "fresh", 1, 0.1, true), sc("west", "calm", 1, 0.1, false))
	f.store.Put(ctx, []alert.Alert{{ID: "al1", Site: "east", Asset: "pump-1", State: alert.Opened, Severity: alert.Major, LastTime: read, Revision: 1}})

	states := func(query string) map[string]string {
		t.Helper()
		code, body := f.do(t, "GET", "/v1/assets"+query, "", nil)
		if code != 200 {
			t.Fatalf("GET /v1/assets%s: %d %v", query, code, body)
		}
		out := map[string]string{}
		for _, x := range body["assets"].([]any) {
			m := x.(map[string]any)
			out[m["asset"].(string)] = m["state"].(string)
		}
		return out
	}
	want := map[string]string{"pump-1": StateAlert, "fresh": StateWarmingUp, "calm": StateNormal, "old": StateStale}
	if got := states(""); !equalMaps(got, want) {
		t.Errorf("states %v, want %v", got, want)
	}
	if got := states("?site=west"); !equalMaps(got, map[string]string{"calm": StateNormal, "old": StateStale}) {
		t.Errorf("site=west: %v", got)
	}
	if got := states("?state=stale"); !equalMaps(got, map[string]string{"old": StateStale}) {
		t.Errorf("state=stale: %v", got)
	}
	// A gateway's retained offline status makes its assets stale at once.
	if err := f.fleet.Gateway("west", "gw-w", []byte(`{"agent":"gw-w","status":"offline","assets":["calm"]}`)); err != nil {
		t.Fatal(err)
	}
	code, body := f.do(t, "GET", "/v1/assets?site=west", "", nil)
	reasons := map[string]any{}
	for _, x := range body["assets"].([]any) {
		m := x.(map[string]any)
		reasons[m["asset"].(string)] = m["stale_reason"]
		if m["asset"] == "calm" && (m["state"] != StateStale || m["gateway"] != "gw-w" || m["gateway_status"] != "offline") {
			t.Errorf("calm behind an offline gateway: %v", m)
		}
	}
	if code != 200 || reasons["calm"] != "gateway_offline" || reasons["old"] != "no_readings" {
		t.Errorf("stale reasons %v", reasons)
	}
	if code, _ := f.do(t, "GET", "/v1/assets?state=broken", "", nil); code != 400 {
		t.Errorf("unknown state: %d, want 400", code)
	}

	code, body = f.do(t, "GET", "/v1/assets/pump-1", "", nil)
	if code != 200 {
		t.Fatalf("asset: %d %v", code, body)
	}
	hist := body["history"].([]any)
	open := body["open_alert"].(map[string]any)
	binding := body["binding"].(map[string]any)
	fc := body["forecast"].(map[string]any)
	contrib := body["contributions"].([]any)
	if len(hist) != 2 || hist[1].(map[string]any)["score"] != 0.99 || body["score"] != 0.99 || body["seq"] != 2.0 ||
		open["id"] != "al1" || open["severity"] != "major" || binding["model"] != "bearing" || binding["version"] != "1" ||
		fc["ttf_seconds"] != 3600.0 || fc["ttf_low_seconds"] != 1800.0 || len(contrib) != 2 ||
		len(body["alerts"].([]any)) != 1 || body["last_reading"] != "2026-01-01T00:00:02Z" {
		t.Fatalf("asset detail %v", body)
	}
	// Every history point carries the reading's sensor values.
	for i, p := range hist {
		sensors, _ := p.(map[string]any)["sensors"].(map[string]any)
		if want := 61.0 + float64(i); len(sensors) != 2 || sensors["bearing_temp"] != want || sensors["vibration"] != p.(map[string]any)["score"] {
			t.Errorf("history point %d: sensors %v, want bearing_temp %v and vibration equal to its score", i, sensors, want)
		}
	}
	if code, _ := f.do(t, "GET", "/v1/assets/nope", "", nil); code != 404 {
		t.Errorf("unknown asset: %d, want 404", code)
	}
}

func equalMaps(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// sseEvent is one server-sent event.
type sseEvent struct{ id, event, data string }

func readEvents(t *testing.T, sc *bufio.Scanner, out chan<- sseEvent) {
	t.Helper()
	var ev sseEvent
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if ev.event != "" {
				out <- ev
			}
			ev = sseEvent{}
		case strings.HasPrefix(line, "id: "):
			ev.id = line[4:]
		case strings.HasPrefix(line, "event: "):
			ev.event = line[7:]
		case strings.HasPrefix(line, "data: "):
			ev.data = line[6:]
		}
	}
	close(out)
}

func TestAlertEventStream(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	f.store.Put(ctx, []alert.Alert{
		{ID: "old", Site: "east", Asset: "p1", State: alert.Opened, Severity: alert.Major, LastTime: at, Revision: 1},
		{ID: "other", Site: "west", Asset: "p9", State: alert.Opened, Severity: alert.Major, LastTime: at, Revision: 1},
	})
	if code, _ := f.do(t, "GET", "/v1/alerts/events?severity=loud", "", nil); code != 400 {
		t.Fatalf("unknown severity: %d, want 400", code)
	}
	reqCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	req, _ := http.NewRequestWithContext(reqCtx, "GET", f.srv.URL+"/v1/alerts/events?site=east", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); resp.StatusCode != 200 || ct != "text/event-stream" {
		t.Fatalf("%s %q", resp.Status, ct)
	}
	events := make(chan sseEvent, 16)
	go readEvents(t, bufio.NewScanner(resp.Body), events)
	next := func() sseEvent {
		t.Helper()
		select {
		case ev, ok := <-events:
			if !ok {
				t.Fatal("stream ended")
			}
			return ev
		case <-time.After(5 * time.Second):
			t.Fatal("no event within 5s")
		}
		return sseEvent{}
	}
	// The current list first (west's alert filtered out), then ready.
	if ev := next(); ev.event != "alert" || ev.id != "old/1" {
		t.Fatalf("first event %+v", ev)
	}
	if ev := next(); ev.event != "ready" {
		t.Fatalf("second event %+v, want ready", ev)
	}
	// Live events as the store receives them, through the acknowledgement
	// route as well; other sites' events are not sent.
	f.store.Put(ctx, []alert.Alert{{ID: "other", Site: "west", Asset: "p9", State: alert.Updated, Severity: alert.Critical, LastTime: at, Revision: 2}})
	f.store.Put(ctx, []alert.Alert{{ID: "new", Site: "east", Asset: "p2", State: alert.Opened, Severity: alert.Warning, LastTime: at, Revision: 1}})
	ev := next()
	var a alert.Alert
	if err := json.Unmarshal([]byte(ev.data), &a); err != nil || ev.id != "new/1" || a.Asset != "p2" || a.State != alert.Opened {
		t.Fatalf("live event %+v (%v)", ev, err)
	}
	if code, body := f.do(t, "POST", "/v1/alerts/new/ack", token, []byte(`{"by":"op-3"}`)); code != 200 {
		t.Fatalf("ack: %d %v", code, body)
	}
	ev = next()
	if err := json.Unmarshal([]byte(ev.data), &a); err != nil || ev.id != "new/2" || !a.Acked || a.AckedBy != "op-3" {
		t.Fatalf("acknowledged event %+v (%v)", ev, err)
	}
}
