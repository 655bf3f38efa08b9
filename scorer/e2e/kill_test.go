package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pdmstream/pdm/pdmkit/alert"
	"github.com/pdmstream/pdm/pdmkit/anomaly"
	"github.com/pdmstream/pdm/pdmkit/kafkaconn"
	"github.com/pdmstream/pdm/pdmkit/model/modeltest"
	"github.com/pdmstream/pdm/pdmkit/stacktest"
	"github.com/pdmstream/pdm/pdmkit/wire"
	"github.com/segmentio/kafka-go"
)

var k0 = time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC)

// machine is a smooth two-sensor signal; on seq 300..339 and 700..739 the
// bearing runs hot and shakes.
func machine(seq uint64) map[string]float64 {
	i := float64(seq)
	temp := 60 + 2*math.Sin(i/5)
	vib := 1 + 0.1*math.Cos(i/3)
	if (seq >= 300 && seq < 340) || (seq >= 700 && seq < 740) {
		temp += 25
		vib += 3
	}
	return map[string]float64{"bearing_temp": temp, "vibration": vib}
}

func forecaster(t *testing.T) []byte { return forecasterVersion(t, "1", "") }

// forecasterVersion trains version of the "bearing" forecaster on the
// healthy part of machine; parent, when set, is its parent version.
func forecasterVersion(t *testing.T, version, parent string) []byte {
	t.Helper()
	return trainedVersion(t, anomaly.ForecasterConfig{Name: "bearing", Version: version, Window: 8, Horizon: 2, Epochs: 20}, parent, "")
}

// trainedVersion trains cfg on the healthy part of machine; parent and
// job, when set, are its parent version and the trainer job it names.
func trainedVersion(t *testing.T, cfg anomaly.ForecasterConfig, parent, job string) []byte {
	t.Helper()
	var rows [][]float64
	var times []time.Time
	for seq := uint64(1); seq <= 280; seq++ {
		m := machine(seq)
		rows = append(rows, []float64{m["bearing_temp"], m["vibration"]})
		times = append(times, k0.Add(time.Duration(seq)*time.Second))
	}
	a, err := anomaly.TrainForecaster(rows, times, []string{"bearing_temp", "vibration"}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	a.ParentVersion, a.Training.Job = parent, job
	return modeltest.Encode(t, a)
}

// sendMachine writes readings from..to of machine for each asset of site,
// keyed by asset, k0 plus seq seconds apart.
func sendMachine(t *testing.T, w *kafka.Writer, site string, assets []string, from, to uint64) {
	t.Helper()
	var msgs []kafka.Message
	for seq := from; seq <= to; seq++ {
		for _, a := range assets {
			b, err := wire.Reading{Site: site, Asset: a, Seq: seq, Time: k0.Add(time.Duration(seq) * time.Second), Sensors: machine(seq)}.MarshalJSON()
			if err != nil {
				t.Fatal(err)
			}
			msgs = append(msgs, kafka.Message{Key: []byte(a), Value: b})
		}
	}
	if err := w.WriteMessages(context.Background(), msgs...); err != nil {
		t.Fatal(err)
	}
}

// readAll reads every record of topic's partitions through conn once at
// least want have arrived (or the timeout passed).
func readAll(t *testing.T, conn *kafkaconn.Conn, topic string, partitions, want int, timeout time.Duration) []kafka.Message {
	t.Helper()
	var mu sync.Mutex
	var out []kafka.Message
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var wg sync.WaitGroup
	for p := range partitions {
		r := kafka.NewReader(kafka.ReaderConfig{Brokers: conn.Brokers, Dialer: conn.Dialer(0), Topic: topic, Partition: p, MinBytes: 1, MaxBytes: 16 << 20, MaxWait: 100 * time.Millisecond})
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer r.Close()
			for {
				m, err := r.FetchMessage(ctx)
				if err != nil {
					return
				}
				mu.Lock()
				out = append(out, m)
				n := len(out)
				mu.Unlock()
				if n >= want {
					cancel()
				}
			}
		}()
	}
	wg.Wait()
	return out
}

// Three scorer processes split the partitions; one is killed with SIGKILL
// mid-stream, so it neither commits nor leaves the group. After the
// session timeout its partitions move to the other two, which replay from
// the last commit: every reading is scored, and each anomaly episode of
// each asset makes one alert, not one per owner.
func TestKillNineOneOfThree(t *testing.T) {
	kc := stacktest.KafkaConn(t) // skips under -short before the build
	_, _, scorerBin := binaries(t)
	brokers := strings.Join(kc.Brokers, ",")
	readings := stacktest.Topic(t, "e2e-kill-readings", 6)
	scores := stacktest.Topic(t, "e2e-kill-scores", 6)
	alerts := stacktest.Topic(t, "e2e-kill-alerts", 1)
	models := stacktest.Topic(t, "e2e-kill-models", 1)
	group := stacktest.Unique("e2e-kill")

	var addrs []string
	var procs []*stacktest.Proc
	for i := range 3 {
		addr := stacktest.FreeAddr(t)
		addrs = append(addrs, addr)
		procs = append(procs, stacktest.Start(t, []string{"PDM_API_TOKEN=e2e", trustTestKey()}, scorerBin, "serve", "-log.level", "warn",
			"-kafka.brokers", brokers, "-kafka.group", group, "-kafka.readings", readings, "-kafka.scores", scores,
			"-kafka.alerts", alerts, "-kafka.models", models, "-kafka.session-timeout", "6s",
			"-mqtt.url", "", "-influx.url", "", "-http.addr", addr, "-alert.min-duration", "3s",
			"-mqtt.client-id", fmt.Sprintf("kill-%d", i)))
		stacktest.WaitReady(t, "http://"+addr+"/v2/health/ready")
	}
	req, _ := http.NewRequest("PUT", "http://"+addrs[0]+"/v1/models/bearing/versions/1", bytes.NewReader(forecaster(t)))
	req.Header.Set("Authorization", "Bearer e2e")
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != http.StatusCreated {
		t.Fatalf("upload: %v %v", err, resp)
	}
	resp.Body.Close()
	req, _ = http.NewRequest("POST", "http://"+addrs[1]+"/v1/models/bearing/activate", strings.NewReader(`{"version":"1","default":true}`))
	req.Header.Set("Authorization", "Bearer e2e")
	if resp, err = http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("activate: %v %v", err, resp)
	}
	resp.Body.Close()
	// Every instance has it: the registry topic told them.
	for i, addr := range addrs {
		stacktest.Eventually(t, 5*time.Second, func() bool {
			r, err := http.Get("http://" + addr + "/v2/models/bearing/ready")
			if err != nil {
				return false
			}
			r.Body.Close()
			return r.StatusCode == http.StatusOK
		}, "instance %d does not know the model", i)
	}

	assets := []string{"a1", "a2", "a3", "a4", "a5", "a6", "a7", "a8", "a9", "a10", "a11", "a12"}
	const total = 1000
	w := &kafka.Writer{Addr: kafka.TCP(kc.Brokers...), Transport: kc.Transport(), Topic: readings, Balancer: &kafka.Murmur2Balancer{}, RequiredAcks: kafka.RequireAll, BatchTimeout: time.Millisecond}
	defer w.Close()
	send := func(from, to uint64) { sendMachine(t, w, "kill", assets, from, to) }
	// Stream in steps; kill instance 0 a third of the way through.
	for seq := uint64(1); seq <= total; seq += 20 {
		send(seq, seq+19)
		if seq == 321 {
			procs[0].Kill(t)
			t.Logf("instance 0 killed with SIGKILL after %d readings per asset were sent", seq+19)
		}
	}
	n := total * len(assets)
	var ids map[string]bool
	var records int
	stacktest.Eventually(t, 2*time.Minute, func() bool {
		ms := readAll(t, kc, scores, 6, n*2, 3*time.Second)
		ids = map[string]bool{}
		for _, m := range ms {
			var s struct {
				ID string `json:"id"`
			}
			if json.Unmarshal(m.Value, &s) == nil {
				ids[s.ID] = true
			}
		}
		records = len(ms)
		return len(ids) >= n
	}, "%d of %d readings scored", func() any { return len(ids) }, n)
	t.Logf("%d readings, %d score records (%d replayed after the kill)", n, records, records-n)
	for _, a := range assets {
		for seq := 1; seq <= total; seq++ {
			if !ids[fmt.Sprintf("%s/%d", a, seq)] {
				t.Fatalf("reading %s/%d lost", a, seq)
			}
		}
	}

	// Alerts: one id per episode per asset, however often an event was
	// replayed.
	var opened map[string]map[string]uint64
	stacktest.Eventually(t, 30*time.Second, func() bool {
		opened = map[string]map[string]uint64{}
		for _, m := range readAll(t, kc, alerts, 1, 1<<30, 3*time.Second) {
			var a alert.Alert
			if json.Unmarshal(m.Value, &a) != nil {
				continue
			}
			if opened[a.Asset] == nil {
				opened[a.Asset] = map[string]uint64{}
			}
			opened[a.Asset][a.ID] = a.FirstSeq
		}
		for _, a := range assets {
			if len(opened[a]) < 2 {
				return false
			}
		}
		return true
	}, "alerts: %v", opened)
	for _, a := range assets {
		var inFirst, inSecond int
		for _, first := range opened[a] {
			switch {
			case first >= 290 && first < 345:
				inFirst++
			case first >= 690 && first < 745:
				inSecond++
			default:
				t.Errorf("%s: alert starting at seq %d, outside both episodes", a, first)
			}
		}
		if inFirst != 1 || inSecond != 1 {
			t.Errorf("%s: %d alerts for the first episode and %d for the second, want one each: %v", a, inFirst, inSecond, opened[a])
		}
	}
	// Each surviving instance lists the whole fleet, not only the assets
	// of its partitions: the fleet view follows the scores topic.
	for i := 1; i < 3; i++ {
		var got map[string]uint64
		stacktest.Eventually(t, 20*time.Second, func() bool {
			got = fleetSeqs(t, addrs[i])
			for _, a := range assets {
				if got[a] != total {
					return false
				}
			}
			return true
		}, "instance %d lists %v, want all %d assets at seq %d", i, func() any { return got }, len(assets), total)
	}
}

// fleetSeqs is GET /v1/assets of the scorer at addr: each asset's latest
// scored sequence number.
func fleetSeqs(t *testing.T, addr string) map[string]uint64 {
	t.Helper()
	req, _ := http.NewRequest("GET", "http://"+addr+"/v1/assets", nil)
	req.Header.Set("Authorization", "Bearer e2e")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	var body struct {
		Assets []struct {
			Asset string `json:"asset"`
			Seq   uint64 `json:"seq"`
		} `json:"assets"`
	}
	if json.NewDecoder(resp.Body).Decode(&body) != nil {
		return nil
	}
	out := map[string]uint64{}
	for _, a := range body.Assets {
		out[a.Asset] = a.Seq
	}
	return out
}
