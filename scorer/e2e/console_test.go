package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/pdmstream/pdm/pdmkit/alert"
	"github.com/pdmstream/pdm/pdmkit/anomaly"
	"github.com/pdmstream/pdm/pdmkit/stacktest"
	"github.com/pdmstream/pdm/pdmkit/wire"
	"github.com/segmentio/kafka-go"
)

// screenshotDir is where the console's pictures go: docs/, which the
// README shows, when PDM_SCREENSHOTS=docs (to refresh them), else the
// test's temporary folder, so a test run leaves the checkout as it was.
func screenshotDir(t *testing.T) string {
	if os.Getenv("PDM_SCREENSHOTS") == "docs" {
		return "../../docs"
	}
	return t.TempDir()
}

// feed streams readings of plant-a's pump-1 and pump-2 and plant-b's
// pump-4 every 100 ms with the wall clock, and of plant-b's pump-3 for its
// first 3 s only, so pump-3 goes stale. Once hot is set, pump-1's bearing
// runs hotter and shakes more with every reading.
type feed struct {
	w    *kafka.Writer
	hot  atomic.Bool
	sent atomic.Int64
}

func (f *feed) run(ctx context.Context, t *testing.T) {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	var heat float64
	for seq := uint64(1); ; seq++ {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		healthy := healthyMachine(seq)
		worn := map[string]float64{"bearing_temp": healthy["bearing_temp"], "vibration": healthy["vibration"]}
		if f.hot.Load() {
			heat++
			worn["bearing_temp"] += 0.05 * heat
			worn["vibration"] += 0.005 * heat
		}
		now := time.Now().UTC()
		msgs := []kafka.Message{f.msg(t, "plant-a", "pump-1", seq, now, worn), f.msg(t, "plant-a", "pump-2", seq, now, healthy)}
		msgs = append(msgs, f.msg(t, "plant-b", "pump-4", seq, now, healthy))
		if seq <= 30 {
			msgs = append(msgs, f.msg(t, "plant-b", "pump-3", seq, now, healthy))
		}
		if err := f.w.WriteMessages(ctx, msgs...); err != nil && ctx.Err() == nil {
			t.Errorf("feed: %v", err)
			return
		}
		f.sent.Add(1)
	}
}

// healthyMachine is machine without its hot episodes.
func healthyMachine(seq uint64) map[string]float64 {
	i := float64(seq)
	return map[string]float64{"bearing_temp": 60 + 2*math.Sin(i/5), "vibration": 1 + 0.1*math.Cos(i/3)}
}

func (f *feed) msg(t *testing.T, site, asset string, seq uint64, at time.Time, s map[string]float64) kafka.Message {
	b, err := wire.Reading{Site: site, Asset: asset, Seq: seq, Time: at, Sensors: s}.MarshalJSON()
	if err != nil {
		t.Error(err)
	}
	return kafka.Message{Key: []byte(asset), Value: b}
}

// chromium finds Debian's chromium, which `make up` installs
// (deployments/stack/stack.sh).
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatal("chromium is not installed: `make up` installs it (deployments/stack/stack.sh), or apt-get install -y chromium")
	return ""
}

func getJSON(t *testing.T, url string, v any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", url, resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
}

func write(t *testing.T, method, url, body string) {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer console")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		t.Fatalf("%s %s: %s", method, url, resp.Status)
	}
}

// TestConsoleInBrowser drives the console in headless chromium against a
// real scorer on the local stack: an alert raised by streamed readings
// appears in the open page without a reload, acknowledging it and calling
// it the new normal in the page change it in the API, and a rollback
// clicked in the page changes the active version. The asset view draws
// one chart per sensor, the models view shows a shadow version's
// comparison and loads the plots of a version's training job from a
// second server in the trainer's place. It writes the screenshots the
// README shows.
func TestConsoleInBrowser(t *testing.T) {
	kc := stacktest.KafkaConn(t) // skips under -short before the build
	chrome := chromium(t)
	scorerBin := stacktest.Build(t, "github.com/pdmstream/pdm/scorer/cmd/scorer")[0]
	readings := stacktest.Topic(t, "console-readings", 2)
	scores := stacktest.Topic(t, "console-scores", 2)
	alerts := stacktest.Topic(t, "console-alerts", 1)
	models := stacktest.Topic(t, "console-models", 1)
	addr := stacktest.FreeAddr(t)
	api := "http://" + addr
	// pump-4's gateway has gone: its last will, retained, says offline.
	floor := mqtt.NewClient(stacktest.MQTTOptions(t).SetClientID(stacktest.Unique("console-gw")))
	if tok := floor.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("mqtt: %v", tok.Error())
	}
	t.Cleanup(func() { floor.Disconnect(100) })
	retain := func(topic, payload string) {
		if tok := floor.Publish(topic, 1, true, payload); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Errorf("publish %s: %v", topic, tok.Error())
		}
	}
	// The sites are not unique to this run, so what it leaves retained is
	// cleared (cleanups run last first: before the disconnect).
	t.Cleanup(func() {
		retain(wire.StatusTopic("plant-b", "gw-b7"), "")
		for _, a := range []string{"pump-1", "pump-2"} {
			retain(wire.AlertsTopic("plant-a", a), "")
		}
	})
	retain(wire.StatusTopic("plant-b", "gw-b7"), `{"agent":"gw-b7","status":"offline","assets":["pump-4"],"time":"`+time.Now().UTC().Format(time.RFC3339)+`"}`)
	// The trainer's plot route, GET /v1/jobs/{id}/{plot}, for one job: the
	// page loads its images from this other origin.
	trainer := plotServer(t, "job-console-3")
	stacktest.Start(t, []string{"PDM_API_TOKEN=console", trustTestKey()}, scorerBin, "serve", "-log.level", "warn", "-http.trainer-url", trainer.URL,
		"-kafka.brokers", strings.Join(kc.Brokers, ","), "-kafka.group", stacktest.Unique("console"), "-kafka.readings", readings,
		"-kafka.scores", scores, "-kafka.alerts", alerts, "-kafka.models", models, "-kafka.retrain", "",
		"-mqtt.url", stacktest.MQTTURL(t), "-mqtt.client-id", stacktest.Unique("console-scorer"), "-influx.url", "", "-http.addr", addr, "-http.stale-after", "2s",
		"-alert.min-duration", "1s", "-alert.new-normal.off=true")
	stacktest.WaitReady(t, api+"/v2/health/ready")

	// Two versions, 2 active and 1 before it: the page can roll back to 1.
	for _, vp := range [][2]string{{"1", ""}, {"2", "1"}} {
		v := vp[0]
		upload(t, api, v, forecasterVersion(t, v, vp[1]))
		write(t, "POST", api+"/v1/models/bearing/activate", `{"version":"`+v+`","default":true}`)
	}
	// Version 3, trained with another seed, scores every reading beside 2
	// as its shadow.
	upload(t, api, "3", trainedVersion(t, anomaly.ForecasterConfig{Name: "bearing", Version: "3", Window: 8, Horizon: 2, Epochs: 20, Seed: 7}, "2", "job-console-3"))
	write(t, "PUT", api+"/v1/models/bearing/shadow", `{"version":"3"}`)

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	f := &feed{w: &kafka.Writer{Addr: kafka.TCP(kc.Brokers...), Transport: kc.Transport(), Topic: readings, Balancer: &kafka.Murmur2Balancer{},
		RequiredAcks: kafka.RequireAll, BatchTimeout: time.Millisecond}}
	t.Cleanup(func() { f.w.Close() })
	wg.Add(1)
	go func() { defer wg.Done(); f.run(ctx, t) }()

	alloc, stopAlloc := chromedp.NewExecAllocator(ctx, append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chrome), chromedp.NoSandbox, chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1100, 760), chromedp.Flag("disable-dev-shm-usage", true))...)
	defer stopAlloc()
	browser, stopBrowser := chromedp.NewContext(alloc, chromedp.WithErrorf(t.Logf))
	defer stopBrowser()
	// The first call starts the browser and binds its life to the context,
	// so it has no timeout; each step below has its own.
	if err := chromedp.Do(browser); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	step := func(what string, timeout time.Duration, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		sctx, cancel := context.WithTimeout(browser, timeout)
		defer cancel()
		if err := chromedp.Do(sctx, actions...); err != nil {
			page, _ := chromedp.Run(browser, chromedp.OuterHTML(chromedp.CSS("body")))
			t.Fatalf("%s: %v\npage: %s", what, err, page)
		}
	}
	dir := screenshotDir(t)
	shot := func(name string) {
		t.Helper()
		shot := value(t, browser, "screenshot "+name, chromedp.CaptureScreenshot())
		img, err := png.DecodeConfig(bytes.NewReader(shot))
		if err != nil || img.Width < 800 || img.Height < 400 {
			t.Fatalf("screenshot %s: %dx%d, %v", name, img.Width, img.Height, err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), shot, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: %d bytes, %dx%d", name, len(shot), img.Width, img.Height)
	}
	js := func(expr string) chromedp.Action[chromedp.Void] {
		return chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			_, err := chromedp.Evaluate[any](expr)(ctx, tg)
			return err
		})
	}
	hash := func(h string) chromedp.Action[chromedp.Void] { return js(`location.hash = "` + h + `"`) }
	sameDocument := func() bool {
		return value(t, browser, "same document", chromedp.Evaluate[bool](`window.__sameDocument === true`))
	}

	// The alerts view with its live stream; a mark on the window shows
	// later that the page was never reloaded.
	step("open the console", 30*time.Second,
		chromedp.Navigate(api+"/console/#alerts"),
		chromedp.WaitVisible(chromedp.CSS(`#live.on`)),
		js(`window.__sameDocument = true`),
		chromedp.SendKeys(chromedp.CSS(`#operator`), "ana"),
		chromedp.SendKeys(chromedp.CSS(`#token`), "console"))

	var fleet struct {
		Assets []struct {
			Asset, State, Version string
		} `json:"assets"`
	}
	stacktest.Eventually(t, time.Minute, func() bool {
		getJSON(t, api+"/v1/assets", &fleet)
		for _, x := range fleet.Assets {
			if x.Asset == "pump-1" && x.Version == "2" {
				return true
			}
		}
		return false
	}, "pump-1 not scored by version 2: %+v", func() any { return fleet })
	f.hot.Store(true)
	t.Logf("pump-1 runs hot after %d readings", f.sent.Load())

	step("the alert appears without a reload", time.Minute, chromedp.WaitVisible(chromedp.CSS(`#alerts tr.alert-row[data-asset="pump-1"]`)))
	attr := value(t, browser, "alert id", chromedp.AttributeValue(chromedp.CSS(`#alerts tr.alert-row[data-asset="pump-1"]`), "data-id"))
	id := attr.Value
	if marked := sameDocument(); !marked || id == "" {
		t.Fatalf("alert row id %q; same document: %v", id, marked)
	}
	apiAlert := func() alert.Alert {
		var l struct {
			Alerts []alert.Alert `json:"alerts"`
		}
		getJSON(t, api+"/v1/alerts?asset=pump-1", &l)
		for _, a := range l.Alerts {
			if a.ID == id {
				return a
			}
		}
		return alert.Alert{}
	}
	if a := apiAlert(); a.Acked || a.State == alert.Resolved {
		t.Fatalf("alert %s before the click: %+v", id, a)
	}

	row := fmt.Sprintf(`#alerts tr.alert-row[data-id=%q]`, id)
	step("acknowledge in the page", 30*time.Second,
		chromedp.Click(chromedp.CSS(row+` button.ack`)),
		// The acknowledged event comes back over the stream.
		chromedp.WaitVisible(chromedp.CSS(row+`[data-acked="true"]`)))
	var acked alert.Alert
	stacktest.Eventually(t, 10*time.Second, func() bool { acked = apiAlert(); return acked.Acked },
		"alert %s not acknowledged in the API: %+v", id, func() any { return acked })
	if acked.AckedBy != "ana" || acked.AckedAt == nil || acked.State == alert.Resolved {
		t.Fatalf("acknowledged alert %+v, want by ana, with a time, still open", acked)
	}
	cell := value(t, browser, "who and when in the page", chromedp.Text(chromedp.CSS(row+` td.acked-by`)))
	if !strings.Contains(cell, "ana") {
		t.Errorf("acknowledged cell %q does not say ana", cell)
	}

	// Fleet: pump-1 alerting, pump-2 normal, pump-3 stale for want of
	// readings, pump-4 stale behind its offline gateway; sorted by state.
	step("fleet", 30*time.Second, hash("#fleet"),
		chromedp.WaitVisible(chromedp.CSS(`#fleet tr.asset-row[data-asset="pump-3"][data-state="stale"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#fleet tr.asset-row[data-asset="pump-4"][data-state="stale"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#fleet tr.asset-row[data-asset="pump-1"][data-state="alert"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#fleet tr.asset-row[data-asset="pump-2"][data-state="normal"]`)),
		chromedp.Click(chromedp.CSS(`#fleet th[data-key="state"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#fleet th[data-key="state"].asc`)))
	order := value(t, browser, "fleet order", chromedp.Evaluate[[]string](`[...document.querySelectorAll("#fleet tr.asset-row")].map(r => r.dataset.asset)`))
	if strings.Join(order, ",") != "pump-1,pump-3,pump-4,pump-2" {
		t.Errorf("fleet sorted by state: %v, want alert, stale, stale, normal", order)
	}
	if label := value(t, browser, "pump-4's state", chromedp.Text(chromedp.CSS(`#fleet tr.asset-row[data-asset="pump-4"] .badge`))); label != "gateway offline" {
		t.Errorf("pump-4 shows %q, want gateway offline", label)
	}
	shot("console-fleet.png")
	step("fleet filtered by site", 10*time.Second,
		chromedp.SetValue(chromedp.CSS(`#fleet-site`), "plant-b"),
		js(`document.getElementById("fleet-site").dispatchEvent(new Event("change"))`),
		chromedp.WaitNotPresent(chromedp.CSS(`#fleet tr.asset-row[data-asset="pump-1"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#fleet tr.asset-row[data-asset="pump-3"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#fleet tr.asset-row[data-asset="pump-4"]`)))

	// Asset: chart, contributions, model, the operator's actions.
	step("asset", 30*time.Second, hash("#asset/pump-1"),
		chromedp.WaitVisible(chromedp.CSS(`#score-chart polyline`)),
		chromedp.WaitVisible(chromedp.CSS(`#contributions tr`)),
		chromedp.WaitVisible(chromedp.CSS(`#asset-actions button.newnormal`)))
	// One chart per sensor of the readings, each with a line drawn through
	// the recent readings.
	step("sensor charts", 30*time.Second,
		chromedp.WaitVisible(chromedp.CSS(`#sensor-charts svg[data-sensor="bearing_temp"] polyline`)),
		chromedp.WaitVisible(chromedp.CSS(`#sensor-charts svg[data-sensor="vibration"] polyline`)))
	drawn := value(t, browser, "sensor charts drawn", chromedp.Evaluate[map[string]int](
		`Object.fromEntries([...document.querySelectorAll("#sensor-charts svg")].map(s => [s.dataset.sensor, (s.querySelector("polyline")?.getAttribute("points") || "").trim().split(/\s+/).filter(Boolean).length]))`))
	if len(drawn) != 2 || drawn["bearing_temp"] < 10 || drawn["vibration"] < 10 {
		t.Errorf("sensor charts %v, want bearing_temp and vibration, each a line through at least 10 readings", drawn)
	}
	model := value(t, browser, "asset model", chromedp.Text(chromedp.CSS(`#asset-model`)))
	if model != "bearing 2" {
		t.Errorf("asset view says scored by %q, want bearing 2", model)
	}
	shot("console-asset.png")
	step("this is the new normal", 30*time.Second,
		chromedp.Click(chromedp.CSS(`#asset-actions button.newnormal`)),
		chromedp.WaitVisible(chromedp.CSS(fmt.Sprintf(`#asset-alerts tr.alert-row[data-id=%q][data-state="resolved"]`, id))))
	var resolved alert.Alert
	stacktest.Eventually(t, 10*time.Second, func() bool { resolved = apiAlert(); return resolved.State == alert.Resolved },
		"alert %s not resolved in the API: %+v", id, func() any { return resolved })
	if resolved.Resolution != alert.Operator || resolved.AckedBy != "ana" || resolved.ResolvedAt == nil {
		t.Errorf("resolved alert %+v, want resolution operator by ana with a time", resolved)
	}

	// Models: rollback behind the token.
	step("models", 30*time.Second, hash("#models"),
		chromedp.WaitVisible(chromedp.CSS(`button.rollback[data-model="bearing"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#bindings tr[data-asset="pump-1"]`)))
	if row := value(t, browser, "version 2's row", chromedp.Text(chromedp.CSS(`.model[data-model="bearing"] tr.version[data-version="2"]`))); !strings.Contains(row, "from 1") || !strings.Contains(row, "holdout_") || !strings.Contains(row, "280 rows") {
		t.Errorf("version 2's row %q lacks its parent, metrics or training rows", row)
	}
	// The shadow's comparison with the active version, as the API has it.
	step("shadow comparison", 30*time.Second,
		chromedp.WaitVisible(chromedp.CSS(`.shadow-report[data-model="bearing"] .compared`)))
	report := value(t, browser, "shadow report", chromedp.Text(chromedp.CSS(`.shadow-report[data-model="bearing"]`)))
	shown := value(t, browser, "shadow count", chromedp.AttributeValue(chromedp.CSS(`.shadow-report[data-model="bearing"]`), "data-count"))
	var sh struct {
		Shadow             string  `json:"shadow_version"`
		Active             string  `json:"active_version"`
		Count              int64   `json:"count"`
		MeanAbsDiff        float64 `json:"mean_abs_diff"`
		AlertDisagreements int64   `json:"alert_disagreements"`
	}
	getJSON(t, api+"/v1/models/bearing/shadow", &sh)
	var n int64
	if _, err := fmt.Sscan(shown.Value, &n); err != nil || n <= 0 || n > sh.Count || sh.Shadow != "3" || sh.Active != "2" {
		t.Errorf("page shows %q readings compared, the API %+v afterwards", shown.Value, sh)
	}
	// Two seeds score differently: the page shows a difference above 0.
	var mean float64
	if _, err := fmt.Sscan(value(t, browser, "shadow mean", chromedp.Text(chromedp.CSS(`.shadow-report[data-model="bearing"] .mean`))), &mean); err != nil || mean <= 0 || sh.MeanAbsDiff <= 0 {
		t.Errorf("mean score difference %v in the page (%v), %v in the API", mean, err, sh.MeanAbsDiff)
	}
	for _, want := range []string{"Shadow 3 beside active 2", "Readings scored by both", "Mean |score difference|", "Alert disagreements"} {
		if !strings.Contains(report, want) {
			t.Errorf("shadow report %q lacks %q", report, want)
		}
	}
	// Version 3's training job's plots, loaded from the trainer; the other
	// versions name no job and show none.
	for _, name := range []string{"loss", "scores"} {
		sel := fmt.Sprintf(`.model[data-model="bearing"] tr.plots[data-version="3"] img[data-plot=%q]`, name)
		loaded := chromedp.Poll[bool](`(() => { const i = document.querySelector('`+sel+`'); return !!i && i.complete && i.naturalWidth > 0; })()`,
			chromedp.WithPollingInterval(100*time.Millisecond), chromedp.WithPollingTimeout(15*time.Second))
		value(t, browser, name+" plot loaded", loaded)
		if w := value(t, browser, name+" plot width", chromedp.Evaluate[int](`document.querySelector('`+sel+`').naturalWidth`)); w != plotWidth {
			t.Errorf("%s plot %d pixels wide, want the trainer's %d", name, w, plotWidth)
		}
	}
	if n := value(t, browser, "plot rows", chromedp.Evaluate[int](`document.querySelectorAll("tr.plots").length`)); n != 1 {
		t.Errorf("%d versions show plots, want 1 (only version 3 names a job)", n)
	}
	shot("console-models.png")
	step("roll back", 30*time.Second,
		chromedp.Click(chromedp.CSS(`button.rollback[data-model="bearing"]`)),
		chromedp.WaitNotPresent(chromedp.CSS(`button.rollback[data-model="bearing"]`)))
	var m struct {
		Active string `json:"active"`
	}
	getJSON(t, api+"/v1/models/bearing", &m)
	if m.Active != "1" {
		t.Fatalf("active version after the rollback: %q, want 1", m.Active)
	}
	// The page polls: the binding changes without a reload.
	poll := chromedp.Poll[bool](`document.querySelector('#bindings tr[data-asset="pump-1"] td.bound')?.textContent === "bearing 1"`,
		chromedp.WithPollingInterval(100*time.Millisecond), chromedp.WithPollingTimeout(15*time.Second))
	value(t, browser, "bound version per asset", poll)
	bound := value(t, browser, "bound version", chromedp.Text(chromedp.CSS(`#bindings tr[data-asset="pump-1"] td.bound`)))
	if marked := sameDocument(); bound != "bearing 1" || !marked {
		t.Errorf("pump-1 bound to %q after the rollback (same document %v)", bound, marked)
	}
}

// plotWidth is the width of the plots plotServer serves.
const plotWidth = 120

// plotServer serves the trainer's plot route, GET /v1/jobs/{id}/{plot}
// (loss.png, scores.png), for job only, with a PNG it draws.
func plotServer(t *testing.T, job string) *httptest.Server {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, plotWidth, 80))
	for x := range plotWidth {
		img.Set(x, 40+int(30*math.Sin(float64(x)/10)), color.RGBA{31, 95, 174, 255})
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/jobs/{id}/{plot}", func(w http.ResponseWriter, r *http.Request) {
		if p := r.PathValue("plot"); r.PathValue("id") != job || (p != "loss.png" && p != "scores.png") {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "image/png")
		_, _ = w.Write(buf.Bytes())
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

// upload puts an artifact as bearing's version v.
func upload(t *testing.T, api, v string, artifact []byte) {
	t.Helper()
	req, _ := http.NewRequest("PUT", api+"/v1/models/bearing/versions/"+v, bytes.NewReader(artifact))
	req.Header.Set("Authorization", "Bearer console")
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != http.StatusCreated {
		t.Fatalf("upload %s: %v %v", v, err, resp)
	}
	resp.Body.Close()
}

// value runs one action of the browser that returns a value, within 30 s.
func value[T any](t *testing.T, browser context.Context, what string, a chromedp.Action[T]) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(browser, 30*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	return v
}
