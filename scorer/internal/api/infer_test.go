package api

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/pdmstream/pdm/pdmkit/anomaly"
	"github.com/pdmstream/pdm/pdmkit/httpauth"
	"github.com/pdmstream/pdm/pdmkit/model"
	"github.com/pdmstream/pdm/pdmkit/model/modeltest"
	"github.com/pdmstream/pdm/pdmkit/monitor"
	"github.com/pdmstream/pdm/pdmkit/telemetry"
	"github.com/pdmstream/pdm/pdmkit/wire"
	"github.com/pdmstream/pdm/scorer/internal/alertview"
	"github.com/pdmstream/pdm/scorer/internal/registry"
)

func realFactory(a *model.Artifact) (anomaly.Detector, error) { return anomaly.FromArtifact(a) }

// signal is a smooth two-sensor machine, with a bearing fault after 60.
func signal(i int) (float64, float64) {
	temp := 60 + 2*math.Sin(float64(i)/5)
	vib := 1 + 0.1*math.Cos(float64(i)/3)
	if i > 60 {
		temp += float64(i-60) * 0.8
		vib += float64(i-60) * 0.05
	}
	return temp, vib
}

// A trained forecaster served over the inference protocol gives exactly
// what the library computes for the same window.
func TestInferKnownModel(t *testing.T) {
	var rows [][]float64
	var times []time.Time
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range 400 {
		temp := 60 + 2*math.Sin(float64(i)/5)
		vib := 1 + 0.1*math.Cos(float64(i)/3)
		rows = append(rows, []float64{temp, vib})
		times = append(times, t0.Add(time.Duration(i)*time.Second))
	}
	art, err := anomaly.TrainForecaster(rows, times, []string{"bearing_temp", "vibration"}, anomaly.ForecasterConfig{Name: "bearing", Version: "7", Window: 8, Horizon: 2, Epochs: 20})
	if err != nil {
		t.Fatal(err)
	}
	if err := art.Sign(modeltest.Private); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := art.Write(&buf); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	reg := registry.NewMemory(realFactory, nil, log)
	reg.SetTrust(modeltest.Trust())
	a := New(Options{Auth: httpauth.Config{WriteToken: token}}, reg, fakeAlerts{alertview.NewStore(0)}, nil, log)
	srv := httptest.NewServer(a.Handler(telemetry.NewRegistry(), nil))
	defer srv.Close()
	f := &fixture{srv: srv, reg: reg}
	if code, body := f.do(t, "PUT", "/v1/models/bearing/versions/7", token, buf.Bytes()); code != 201 {
		t.Fatalf("upload: %d %v", code, body)
	}

	const n = 100
	temps, vibs, ts := make([]float64, n), make([]float64, n), make([]float64, n)
	want, err := anomaly.FromArtifact(art)
	if err != nil {
		t.Fatal(err)
	}
	mon, err := monitor.New(want, monitor.Config{})
	if err != nil {
		t.Fatal(err)
	}
	var wantRes []monitor.Decision
	for i := range n {
		temps[i], vibs[i] = signal(i)
		at := t0.Add(time.Duration(i) * time.Second)
		ts[i] = float64(at.UnixMilli())
		r, err := mon.Observe(&wire.Reading{Asset: "x", Seq: uint64(i + 1), Time: at, Sensors: map[string]float64{"bearing_temp": temps[i], "vibration": vibs[i]}})
		if err != nil {
			t.Fatal(err)
		}
		wantRes = append(wantRes, r)
	}
	req, _ := json.Marshal(map[string]any{"inputs": []map[string]any{
		{"name": "bearing_temp", "shape": []int{n}, "datatype": "FP64", "data": temps},
		{"name": "vibration", "shape": []int{n}, "datatype": "FP64", "data": vibs},
		{"name": "timestamp", "shape": []int{n}, "datatype": "INT64", "data": ts},
	}})
	code, body := f.do(t, "POST", "/v2/models/bearing/versions/7/infer", "", req)
	if code != 200 {
		t.Fatalf("infer: %d %v", code, body)
	}
	outs := map[string][]any{}
	for _, o := range body["outputs"].([]any) {
		m := o.(map[string]any)
		outs[m["name"].(string)] = m["data"].([]any)
	}
	alerts := 0
	for i, w := range wantRes {
		if got := outs["score"][i].(float64); got != w.Score {
			t.Fatalf("score[%d] = %v, the library says %v", i, got, w.Score)
		}
		if outs["alert"][i].(bool) != w.Open || outs["warming_up"][i].(bool) != w.WarmingUp {
			t.Fatalf("reading %d: alert/warming %v/%v, want %v/%v", i, outs["alert"][i], outs["warming_up"][i], w.Open, w.WarmingUp)
		}
		if w.Open {
			alerts++
		}
		wantTTF := -1.0
		if w.Forecast != nil {
			wantTTF = w.Forecast.TimeToFailure
		}
		if got := outs["ttf_seconds"][i].(float64); got != wantTTF {
			t.Fatalf("ttf[%d] = %v, want %v", i, got, wantTTF)
		}
	}
	if alerts == 0 {
		t.Fatalf("the fault in the window raised no alert: %s", fmt.Sprint(outs["score"][55:70]))
	}
}
