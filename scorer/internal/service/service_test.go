package service_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/pdmstream/pdm/pdmkit/alert"
	"github.com/pdmstream/pdm/pdmkit/anomaly"
	"github.com/pdmstream/pdm/pdmkit/model/modeltest"
	"github.com/pdmstream/pdm/pdmkit/stacktest"
	"github.com/pdmstream/pdm/pdmkit/wire"
	"github.com/pdmstream/pdm/scorer/internal/config"
	"github.com/pdmstream/pdm/scorer/internal/service"
	"github.com/segmentio/kafka-go"
)

const token = "svc-token"

var t0 = time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC)

// machine is a smooth two-sensor signal; a worn bearing heats and shakes
// more every second from seq wearFrom on.
func machine(seq uint64, wearFrom uint64) map[string]float64 {
	i := float64(seq)
	temp := 60 + 2*math.Sin(i/5)
	vib := 1 + 0.1*math.Cos(i/3)
	if wearFrom > 0 && seq > wearFrom {
		temp += float64(seq-wearFrom) * 0.5
		vib += float64(seq-wearFrom) * 0.03
	}
	return map[string]float64{"bearing_temp": temp, "vibration": vib}
}

func trained(t *testing.T) []byte {
	t.Helper()
	var rows [][]float64
	var times []time.Time
	for i := range uint64(400) {
		m := machine(i, 0)
		rows = append(rows, []float64{m["bearing_temp"], m["vibration"]})
		times = append(times, t0.Add(time.Duration(i)*time.Second))
	}
	a, err := anomaly.TrainForecaster(rows, times, []string{"bearing_temp", "vibration"}, anomaly.ForecasterConfig{Name: "bearing", Version: "7", Window: 8, Horizon: 2, Epochs: 20})
	if err != nil {
		t.Fatal(err)
	}
	return modeltest.Encode(t, a)
}

// startService runs a service until the test ends and serves its API.
func startService(t *testing.T, cfg config.Config) (*service.Service, *httptest.Server) {
	t.Helper()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	s, err := service.New(cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close(context.Background()) }) // after the service stops
	stacktest.Run(t, "service", s.Run)
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close) // before the service stops
	stacktest.Eventually(t, 30*time.Second, s.Ready, "service not ready")
	return s, srv
}

// An operator may reach any instance: the one that does not own the
// alert's asset forwards the acknowledgement, the owner applies it, and
// every instance's alert list shows it.
func TestAckThroughAnotherInstance(t *testing.T) {
	cfg := config.Default()
	stacktest.FromEnv(t, &cfg)
	kc := stacktest.KafkaConn(t)
	cfg.Kafka.Group = stacktest.Unique("svc-ack")
	cfg.Kafka.Readings = stacktest.Topic(t, "svc-ack-readings", 2)
	cfg.Kafka.Scores = stacktest.Topic(t, "svc-ack-scores", 1)
	cfg.Kafka.Alerts = stacktest.Topic(t, "svc-ack-alerts", 1)
	cfg.Kafka.Models = stacktest.Topic(t, "svc-ack-models", 1)
	cfg.Models.TrustedKeys = []string{base64.StdEncoding.EncodeToString(modeltest.Public)}
	cfg.Kafka.SessionTimeout = 6 * time.Second
	cfg.Influx.URL, cfg.MQTT.URL = "", ""
	cfg.HTTP.Addr, cfg.HTTP.Token = "", token
	cfg.Alert.MinDuration = 5 * time.Second
	_, a := startService(t, cfg)
	_, b := startService(t, cfg)
	if code, body := call(t, a, "PUT", "/v1/models/bearing/versions/7", trained(t)); code != 201 {
		t.Fatalf("upload: %d %v", code, body)
	}
	if code, body := call(t, b, "POST", "/v1/models/bearing/activate", []byte(`{"version":"7","default":true}`)); code != 200 {
		t.Fatalf("activate through the other instance: %d %v", code, body)
	}
	w := &kafka.Writer{Addr: kafka.TCP(kc.Brokers...), Transport: kc.Transport(), Topic: cfg.Kafka.Readings, Balancer: &kafka.Murmur2Balancer{}, RequiredAcks: kafka.RequireAll, BatchTimeout: time.Millisecond}
	defer w.Close()
	var msgs []kafka.Message
	for seq := uint64(1); seq <= 300; seq++ {
		r := wire.Reading{Site: "s", Asset: "worn", Seq: seq, Time: t0.Add(time.Duration(seq) * time.Second), Sensors: machine(seq, 250)}
		v, err := r.MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		msgs = append(msgs, kafka.Message{Key: []byte("worn"), Value: v})
	}
	if err := w.WriteMessages(context.Background(), msgs...); err != nil {
		t.Fatal(err)
	}
	// Both instances list the alert, whichever published it.
	list := func(srv *httptest.Server) []any {
		_, body := call(t, srv, "GET", "/v1/alerts?asset=worn", nil)
		l, _ := body["alerts"].([]any)
		return l
	}
	stacktest.Eventually(t, 30*time.Second, func() bool { return len(list(a)) > 0 && len(list(b)) > 0 }, "alert not listed by both instances")
	id := list(a)[0].(map[string]any)["id"].(string)
	codes := map[int]int{}
	for _, srv := range []*httptest.Server{a, b} {
		code, body := call(t, srv, "POST", "/v1/alerts/"+id+"/ack", []byte(`{"by":"op-2"}`))
		codes[code]++
		if code != 200 && code != 202 {
			t.Fatalf("ack: %d %v", code, body)
		}
	}
	if codes[202] == 0 {
		t.Fatalf("no instance forwarded the acknowledgement: %v (one instance should not own the asset)", codes)
	}
	for i, srv := range []*httptest.Server{a, b} {
		stacktest.Eventually(t, 10*time.Second, func() bool {
			l := list(srv)
			return len(l) > 0 && l[0].(map[string]any)["acked"] == true
		}, "instance %d does not show the acknowledgement", i)
	}
}

func call(t *testing.T, srv *httptest.Server, method, path string, body []byte) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(method, srv.URL+path, bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

func influxCount(t *testing.T, base, bucket, q string) int {
	t.Helper()
	db := bucket[:len(bucket)-len("/autogen")]
	resp, err := stacktest.InfluxQuery(t, base, url.Values{"db": {db}, "q": {q}})
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	var r struct {
		Results []struct {
			Series []struct {
				Values [][]any `json:"values"`
			} `json:"series"`
		} `json:"results"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil || len(r.Results) == 0 || len(r.Results[0].Series) == 0 {
		return 0
	}
	v, _ := r.Results[0].Series[0].Values[0][1].(float64)
	return int(v)
}

// The whole service on the real stack: a model uploaded and activated over
// HTTP scores a wearing and a healthy machine; scores reach Kafka and
// InfluxDB tagged with the version; the worn machine's alert reaches Kafka
// and MQTT (retained) naming its sensors, and an operator acknowledges it.
func TestServiceEndToEnd(t *testing.T) {
	cfg := config.Default()
	stacktest.FromEnv(t, &cfg)
	kc := stacktest.KafkaConn(t)
	influxURL := stacktest.InfluxURL(t)
	cfg.Kafka.Group = stacktest.Unique("svc-group")
	cfg.Kafka.Readings = stacktest.Topic(t, "svc-readings", 3)
	cfg.Kafka.Scores = stacktest.Topic(t, "svc-scores", 3)
	cfg.Kafka.Alerts = stacktest.Topic(t, "svc-alerts", 1)
	cfg.Kafka.Models = stacktest.Topic(t, "svc-models", 1)
	cfg.Models.TrustedKeys = []string{base64.StdEncoding.EncodeToString(modeltest.Public)}
	cfg.Kafka.SessionTimeout = 6 * time.Second
	cfg.Influx.Bucket = stacktest.InfluxBucket(t)
	cfg.HTTP.Addr, cfg.HTTP.Token = "", token
	cfg.Alert.MinDuration = 5 * time.Second
	_, srv := startService(t, cfg)

	if code, body := call(t, srv, "PUT", "/v1/models/bearing/versions/7", trained(t)); code != 201 {
		t.Fatalf("upload: %d %v", code, body)
	}
	if code, body := call(t, srv, "POST", "/v1/models/bearing/activate", []byte(`{"version":"7","default":true}`)); code != 200 {
		t.Fatalf("activate: %d %v", code, body)
	}

	site := stacktest.Unique("site")
	const n = 400
	const wearFrom = 250
	w := &kafka.Writer{Addr: kafka.TCP(kc.Brokers...), Transport: kc.Transport(), Topic: cfg.Kafka.Readings, Balancer: &kafka.Murmur2Balancer{}, RequiredAcks: kafka.RequireAll, BatchTimeout: time.Millisecond}
	defer w.Close()
	var msgs []kafka.Message
	for seq := uint64(1); seq <= n; seq++ {
		for _, asset := range []string{"worn", "healthy"} {
			wf := uint64(0)
			if asset == "worn" {
				wf = wearFrom
			}
			r := wire.Reading{Site: site, Asset: asset, Seq: seq, Time: t0.Add(time.Duration(seq) * time.Second), Sensors: machine(seq, wf)}
			b, err := r.MarshalJSON()
			if err != nil {
				t.Fatal(err)
			}
			msgs = append(msgs, kafka.Message{Key: []byte(asset), Value: b})
		}
	}
	if err := w.WriteMessages(context.Background(), msgs...); err != nil {
		t.Fatal(err)
	}

	// Scores in InfluxDB, tagged with model and version.
	q := fmt.Sprintf(`SELECT count(score) FROM scores WHERE site='%s' AND model='bearing' AND version='7'`, site)
	stacktest.Eventually(t, 60*time.Second, func() bool { return influxCount(t, influxURL, cfg.Influx.Bucket, q) == 2*n },
		"influxdb holds %d scores, want %d", influxCount(t, influxURL, cfg.Influx.Bucket, q), 2*n)

	// The worn machine's alert, in the API and on Kafka.
	var opened alert.Alert
	stacktest.Eventually(t, 30*time.Second, func() bool {
		_, body := call(t, srv, "GET", "/v1/alerts?asset=worn", nil)
		list, _ := body["alerts"].([]any)
		if len(list) == 0 {
			return false
		}
		b, _ := json.Marshal(list[len(list)-1])
		return json.Unmarshal(b, &opened) == nil
	}, "no alert for the worn machine")
	t.Logf("alert %s %s severity %s at seq %d (wear from %d), top sensors %v, forecast %+v, model %s %s",
		opened.ID, opened.State, opened.Severity, opened.FirstSeq, wearFrom, opened.TopSensors, opened.Forecast, opened.Model, opened.Version)
	if opened.Model != "bearing" || opened.Version != "7" || opened.Site != site || len(opened.TopSensors) == 0 || opened.FirstSeq <= wearFrom {
		t.Errorf("alert content %+v", opened)
	}
	if _, body := call(t, srv, "GET", "/v1/alerts?asset=healthy", nil); len(body["alerts"].([]any)) != 0 {
		t.Errorf("the healthy machine raised alerts: %v", body["alerts"])
	}

	// Alert events are in InfluxDB too.
	qa := fmt.Sprintf(`SELECT count(score) FROM alerts WHERE site='%s' AND asset='worn'`, site)
	stacktest.Eventually(t, 10*time.Second, func() bool { return influxCount(t, influxURL, cfg.Influx.Bucket, qa) >= 1 }, "no alert in influxdb")

	// The floor sees the current state, retained, on MQTT.
	got := make(chan mqtt.Message, 4)
	var once sync.Once
	c := mqtt.NewClient(stacktest.MQTTOptions(t).SetClientID(stacktest.Unique("svc-test")))
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("mqtt connect: %v", tok.Error())
	}
	defer c.Disconnect(100)
	c.Subscribe(wire.AlertsTopic(site, "worn"), 1, func(_ mqtt.Client, m mqtt.Message) {
		once.Do(func() { got <- m })
	})
	select {
	case m := <-got:
		var a alert.Alert
		if err := json.Unmarshal(m.Payload(), &a); err != nil || !m.Retained() || a.ID != opened.ID {
			t.Fatalf("mqtt alert: retained %v, %v, %s", m.Retained(), err, m.Payload())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no retained alert on MQTT")
	}

	// An operator acknowledges it.
	code, body := call(t, srv, "POST", "/v1/alerts/"+opened.ID+"/ack", []byte(`{"by":"op-1"}`))
	if code != 200 || body["acked"] != true {
		t.Fatalf("ack: %d %v", code, body)
	}
	// Metrics carry the per-version series.
	resp, err := http.Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	mb, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if want := `pdm_scorer_readings_scored_total{model="bearing",version="7"} 800`; !bytes.Contains(mb, []byte(want)) {
		t.Errorf("metrics lack %s", want)
	}
}

// An operator says "this is the new normal" through the API: the alert an
// asset's new set point raised resolves at once (resolution operator,
// acknowledged with the reason), the asset learns the new level, and the
// readings at it raise no further alert.
func TestNewNormalThroughTheAPI(t *testing.T) {
	cfg := config.Default()
	stacktest.FromEnv(t, &cfg)
	kc := stacktest.KafkaConn(t)
	cfg.Kafka.Group = stacktest.Unique("svc-nn")
	cfg.Kafka.Readings = stacktest.Topic(t, "svc-nn-readings", 1)
	cfg.Kafka.Scores = stacktest.Topic(t, "svc-nn-scores", 1)
	cfg.Kafka.Alerts = stacktest.Topic(t, "svc-nn-alerts", 1)
	cfg.Kafka.Models = stacktest.Topic(t, "svc-nn-models", 1)
	cfg.Models.TrustedKeys = []string{base64.StdEncoding.EncodeToString(modeltest.Public)}
	cfg.Influx.URL, cfg.MQTT.URL = "", ""
	cfg.HTTP.Addr, cfg.HTTP.Token = "", token
	cfg.Alert.NewNormal.Off = true // only the operator re-baselines here
	_, srv := startService(t, cfg)

	site := stacktest.Unique("site")
	w := &kafka.Writer{Addr: kafka.TCP(kc.Brokers...), Transport: kc.Transport(), Topic: cfg.Kafka.Readings, RequiredAcks: kafka.RequireAll, BatchTimeout: time.Millisecond}
	defer w.Close()
	rng := rand.New(rand.NewPCG(3, 4))
	send := func(from, to uint64, level float64) {
		t.Helper()
		var msgs []kafka.Message
		for seq := from; seq < to; seq++ {
			r := wire.Reading{Site: site, Asset: "tank", Seq: seq, Time: t0.Add(time.Duration(seq) * time.Second),
				Sensors: map[string]float64{"level": level + rng.NormFloat64(), "flow": 30 + 0.5*rng.NormFloat64()}}
			b, err := r.MarshalJSON()
			if err != nil {
				t.Fatal(err)
			}
			msgs = append(msgs, kafka.Message{Key: []byte("tank"), Value: b})
		}
		if err := w.WriteMessages(context.Background(), msgs...); err != nil {
			t.Fatal(err)
		}
	}
	alerts := func() []alert.Alert {
		_, body := call(t, srv, "GET", "/v1/alerts?asset=tank", nil)
		var out []alert.Alert
		b, _ := json.Marshal(body["alerts"])
		_ = json.Unmarshal(b, &out)
		return out
	}
	send(1, 600, 50)   // warm-up and normal operation
	send(600, 700, 65) // the set point moves and holds
	var opened alert.Alert
	stacktest.Eventually(t, 60*time.Second, func() bool {
		for _, a := range alerts() {
			if a.State != alert.Resolved {
				opened = a
				return true
			}
		}
		return false
	}, "no alert at the new set point")

	code, body := call(t, srv, "POST", "/v1/alerts/"+opened.ID+"/ack", []byte(`{"by":"op-3","reason":"new_normal"}`))
	if code != 200 || body["state"] != "resolved" || body["resolution"] != alert.Operator || body["acked_by"] != "op-3" || body["reason"] != alert.NewNormal {
		t.Fatalf("new-normal acknowledgement: %d %v", code, body)
	}
	send(700, 1200, 65)
	stacktest.Eventually(t, 60*time.Second, func() bool { return scoredAtLeast(t, srv, 1199) },
		"the scorer did not score the readings after the acknowledgement")
	for _, a := range alerts() {
		if a.ID != opened.ID {
			t.Fatalf("an alert opened after the operator's new normal: %+v", a)
		}
		if a.State != alert.Resolved || a.Resolution != alert.Operator {
			t.Fatalf("the acknowledged alert is listed as %s/%s", a.State, a.Resolution)
		}
	}
}

// scoredAtLeast reports whether the service has scored n readings.
func scoredAtLeast(t *testing.T, srv *httptest.Server, n float64) bool {
	t.Helper()
	resp, err := http.Get(srv.URL + "/metrics")
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	total := 0.0
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "pdm_scorer_readings_scored_total{") {
			var v float64
			fmt.Sscan(line[strings.LastIndexByte(line, ' ')+1:], &v)
			total += v
		}
	}
	return total >= n
}
