package api

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/pdmstream/pdm/pdmkit/anomaly"
	"github.com/pdmstream/pdm/pdmkit/httpauth"
	"github.com/pdmstream/pdm/pdmkit/model/modeltest"
	"github.com/pdmstream/pdm/pdmkit/telemetry"
	"github.com/pdmstream/pdm/scorer/internal/alertview"
	"github.com/pdmstream/pdm/scorer/internal/registry"
)

// BenchmarkInfer is the throughput of inference over HTTP on loopback for
// one 64-reading window of a pump's six sensors scored by a trained
// forecaster: JSON in and out (the baseline) beside the binary tensor data
// extension in and out, in the same run.
func BenchmarkInfer(b *testing.B) {
	features := []string{"vibration_rms", "bearing_temp", "motor_current", "discharge_pressure", "flow", "speed"}
	row := func(i int) []float64 {
		x := float64(i)
		return []float64{2.5 + 0.1*math.Sin(x/4), 61 + math.Sin(x/9), 40 + 2*math.Cos(x/7), 5.2 + 0.1*math.Sin(x/5), 118 + 3*math.Cos(x/6), 1480 + 5*math.Sin(x/8)}
	}
	t0 := time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)
	var rows [][]float64
	var times []time.Time
	for i := range 400 {
		rows = append(rows, row(i))
		times = append(times, t0.Add(time.Duration(i)*time.Second))
	}
	art, err := anomaly.TrainForecaster(rows, times, features, anomaly.ForecasterConfig{Name: "pump", Version: "1", Window: 8, Horizon: 2, Epochs: 5})
	if err != nil {
		b.Fatal(err)
	}
	if err := art.Sign(modeltest.Private); err != nil {
		b.Fatal(err)
	}
	var buf bytes.Buffer
	if err := art.Write(&buf); err != nil {
		b.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	reg := registry.NewMemory(realFactory, nil, log)
	reg.SetTrust(modeltest.Trust())
	a := New(Options{Auth: httpauth.Config{WriteToken: token}}, reg, fakeAlerts{alertview.NewStore(0)}, nil, log)
	srv := httptest.NewServer(a.Handler(telemetry.NewRegistry(), nil))
	defer srv.Close()
	if _, err := reg.Upload(b.Context(), "pump", "1", buf.Bytes()); err != nil {
		b.Fatal(err)
	}

	const n = 64
	cols := make([][]float64, len(features))
	for i := range n {
		for j, v := range row(500 + i) {
			cols[j] = append(cols[j], v)
		}
	}
	var jsonInputs, binInputs []map[string]any
	var bin []byte
	for j, f := range features {
		jsonInputs = append(jsonInputs, map[string]any{"name": f, "shape": []int{n}, "datatype": "FP64", "data": cols[j]})
		for _, v := range cols[j] {
			bin = binary.LittleEndian.AppendUint64(bin, math.Float64bits(v))
		}
		binInputs = append(binInputs, map[string]any{"name": f, "shape": []int{n}, "datatype": "FP64", "parameters": map[string]any{"binary_data_size": 8 * n}})
	}
	jsonBody, _ := json.Marshal(map[string]any{"inputs": jsonInputs})
	header, _ := json.Marshal(map[string]any{"inputs": binInputs, "parameters": map[string]any{"binary_data_output": true}})
	binBody := append(append([]byte(nil), header...), bin...)

	url := srv.URL + "/v2/models/pump/versions/1/infer"
	for _, c := range []struct {
		name string
		body []byte
		hlen int
	}{{"encoding=json", jsonBody, -1}, {"encoding=binary", binBody, len(header)}} {
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(int64(len(c.body)))
			client := srv.Client()
			start := time.Now()
			for b.Loop() {
				req, _ := http.NewRequest("POST", url, bytes.NewReader(c.body))
				if c.hlen >= 0 {
					req.Header.Set(HeaderContentLength, strconv.Itoa(c.hlen))
				}
				resp, err := client.Do(req)
				if err != nil {
					b.Fatal(err)
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					b.Fatalf("%s: %s", c.name, resp.Status)
				}
			}
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "requests/s")
		})
	}
}
