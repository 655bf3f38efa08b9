package bridge

import (
	"fmt"
	"io"
	"log/slog"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/pdmstream/pdm/ingest/internal/config"
	"github.com/pdmstream/pdm/pdmkit/wire"
)

func newTestBridge(t *testing.T) *Bridge {
	t.Helper()
	b, err := New(config.Default(config.Bridge), slog.New(slog.NewTextHandler(io.Discard, nil)), NewMetrics(prometheus.NewRegistry()))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func reading(asset string, seq uint64, ts time.Time) wire.Reading {
	return wire.Reading{Site: "s1", Asset: asset, Seq: seq, Time: ts, Sensors: map[string]float64{"vibration_rms": 1.5}}
}

func TestTranslate(t *testing.T) {
	now := time.Now()
	single, _ := reading("pump-1", 1, now).MarshalJSON()
	batch, _ := wire.EncodeBatch([]wire.Reading{reading("pump-1", 2, now), reading("pump-1", 3, now)})
	mixed, _ := wire.EncodeBatch([]wire.Reading{reading("pump-1", 4, now), reading("pump-2", 5, now)})
	topic := wire.ReadingsTopic("s1", "pump-1")
	type want struct {
		topic, code, index string
	}
	for _, tc := range []struct {
		name    string
		topic   string
		payload string
		want    []want
	}{
		{"single", topic, string(single), []want{{topic: "pdm.readings"}}},
		{"batch", topic, string(batch), []want{{topic: "pdm.readings"}}},
		{"batch with a reading of another asset", topic, string(mixed), []want{{topic: "pdm.readings.dlq", code: "topic_mismatch", index: "1"}, {topic: "pdm.readings"}}},
		{"garbage", topic, "\x00\x01", []want{{topic: "pdm.readings.dlq", code: "malformed"}}},
		{"unknown version", topic, `{"v":9}`, []want{{topic: "pdm.readings.dlq", code: "version"}}},
		{"bad topic", "pdm/v1/s1/readings", string(single), []want{{topic: "pdm.readings.dlq", code: "topic_mismatch"}}},
		{"contradicting marks", topic, strings.Replace(string(single), `}}`, `},"quality":{"vibration_rms":"bad"}}`, 1), []want{{topic: "pdm.readings.dlq", code: "bad_quality"}}},
		{"unknown mark", topic, strings.Replace(string(single), `}}`, `},"quality":{"vibration_rms":"fine"}}`, 1), []want{{topic: "pdm.readings.dlq", code: "bad_quality"}}},
		{"string value", topic, strings.Replace(string(single), `"vibration_rms":1.5`, `"vibration_rms":"1.5"`, 1), []want{{topic: "pdm.readings.dlq", code: "bad_value"}}},
		{"huge", topic, `{"v":1,"x":"` + strings.Repeat("a", 2<<20) + `"}`, []want{{topic: "pdm.readings.dlq", code: "oversize"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := newTestBridge(t)
			var o outbox
			b.translate(&o, tc.topic, []byte(tc.payload), now)
			if len(o.records) != len(tc.want) {
				t.Fatalf("got %d records, want %d", len(o.records), len(tc.want))
			}
			for i, w := range tc.want {
				rec := o.records[i]
				if rec.Topic != w.topic {
					t.Errorf("record %d: topic %s, want %s", i, rec.Topic, w.topic)
				}
				headers := map[string]string{}
				for _, h := range rec.Headers {
					headers[h.Key] = string(h.Value)
				}
				if headers[wire.HeaderErrorCode] != w.code || headers[wire.HeaderBatchIndex] != w.index {
					t.Errorf("record %d: headers %v, want code %q index %q", i, headers, w.code, w.index)
				}
				if w.code == "oversize" && (len(rec.Value) != b.limits.MaxPayload || headers[wire.HeaderTruncatedFrom] != fmt.Sprint(len(tc.payload))) {
					t.Errorf("oversize dead letter: %d bytes, headers %v", len(rec.Value), headers)
				}
				if w.code != "" {
					if headers[wire.HeaderErrorReason] == "" || headers[wire.HeaderSource] != tc.topic {
						t.Errorf("record %d: dead letter without reason or source: %v", i, headers)
					}
					if len(rec.Value) == 0 {
						t.Errorf("record %d: dead letter lost the payload", i)
					}
				} else if string(rec.Key) != "pump-1" {
					t.Errorf("record %d: key %q, want the asset", i, rec.Key)
				}
			}
			// Readings count once Kafka has them, not on arrival.
			if got := testutil.ToFloat64(b.metrics.Readings); got != 0 {
				t.Errorf("readings counter %v before any write", got)
			}
		})
	}
}

// marked is a reading with quality marks, as an OPC UA source sends them.
func marked(asset string, seq uint64, ts time.Time) wire.Reading {
	r := reading(asset, seq, ts)
	r.Sensors["bearing_temp"] = 61.5
	r.Quality = map[string]string{"bearing_temp": "UncertainLastUsableValue", "flow": "BadSensorFailure"}
	return r
}

func TestValidMessagesPassThroughUnchanged(t *testing.T) {
	now := time.Now()
	single, _ := reading("pump-1", 7, now).MarshalJSON()
	batch, _ := wire.EncodeBatch([]wire.Reading{reading("pump-1", 8, now), reading("pump-1", 9, now)})
	withMarks, _ := marked("pump-1", 10, now).MarshalJSON()
	mixedMarks, _ := wire.EncodeBatch([]wire.Reading{marked("pump-1", 11, now), reading("pump-1", 12, now)})
	if !strings.Contains(string(withMarks), `"quality":{`) {
		t.Fatalf("marked reading without marks: %s", withMarks)
	}
	for _, payload := range [][]byte{single, batch, withMarks, mixedMarks} {
		b := newTestBridge(t)
		var o outbox
		b.translate(&o, wire.ReadingsTopic("s1", "pump-1"), payload, now)
		if len(o.records) != 1 || string(o.records[0].Value) != string(payload) {
			t.Fatalf("got %+v", o.records)
		}
	}
}

func TestBatchWithRefusedReadingKeepsTheOthers(t *testing.T) {
	now := time.Now()
	bad := reading("pump-1", 2, now)
	bad.Sensors = map[string]float64{}
	good1, _ := reading("pump-1", 1, now).MarshalJSON()
	good3, _ := marked("pump-1", 3, now).MarshalJSON()
	badRaw, _ := bad.MarshalJSON()
	payload := wire.JoinBatch([][]byte{good1, badRaw, good3})
	b := newTestBridge(t)
	var o outbox
	b.translate(&o, wire.ReadingsTopic("s1", "pump-1"), payload, now)
	if len(o.records) != 2 || o.records[0].Topic != "pdm.readings.dlq" || string(o.records[0].Value) != string(badRaw) {
		t.Fatalf("got %+v", o.records)
	}
	items, err := wire.DefaultLimits().Decode(o.records[1].Value, now)
	if err != nil || len(items) != 2 || items[0].Reading.Seq != 1 || items[1].Reading.Seq != 3 {
		t.Fatalf("rebuilt batch: %v %+v", err, items)
	}
	if string(items[1].Raw) != string(good3) || items[1].Reading.Quality["flow"] != "BadSensorFailure" {
		t.Fatalf("marks lost in the rebuilt batch: %s", items[1].Raw)
	}
}

// BenchmarkTranslate: a 50-reading batch, with and without the delivery
// confirmations' bookkeeping (mqtt.confirm).
func BenchmarkTranslate(b *testing.B) {
	now := time.Now()
	rs := make([]wire.Reading, 50)
	for i := range rs {
		rs[i] = reading("pump-1", uint64(i+1), now)
	}
	batch, _ := wire.EncodeBatch(rs)
	topic := wire.ReadingsTopic("s1", "pump-1")
	for _, confirm := range []bool{false, true} {
		b.Run(fmt.Sprintf("confirm=%v", confirm), func(b *testing.B) {
			cfg := config.Default(config.Bridge)
			cfg.MQTT.Confirm = confirm
			br := &Bridge{cfg: cfg, log: slog.New(slog.DiscardHandler), metrics: NewMetrics(prometheus.NewRegistry()), limits: wire.DefaultLimits()}
			var o outbox
			b.ReportAllocs()
			b.SetBytes(int64(len(batch)))
			for b.Loop() {
				o = outbox{}
				br.translate(&o, topic, batch, now)
			}
			b.ReportMetric(float64(b.N*len(rs))/b.Elapsed().Seconds(), "readings/s")
		})
	}
}

// The confirmation of a batch names, per asset of its topics, the highest
// seq taken, dead-lettered readings included (refused for good, they must
// not hold the agent's spool); a reading of another asset on the topic is
// not its asset's to confirm.
func TestConfirmationsCoverDeadLetters(t *testing.T) {
	now := time.Now()
	bad := reading("pump-1", 7, now)
	bad.Sensors = map[string]float64{}
	badRaw, _ := bad.MarshalJSON()
	good, _ := reading("pump-1", 6, now).MarshalJSON()
	other, _ := reading("pump-2", 99, now).MarshalJSON()
	b := newTestBridge(t)
	var o outbox
	b.translate(&o, wire.ReadingsTopic("s1", "pump-1"), wire.JoinBatch([][]byte{good, badRaw, other}), now)
	b.translate(&o, wire.ReadingsTopic("s1", "pump-3"), []byte("garbage"), now)
	if want := map[assetKey]uint64{{"s1", "pump-1"}: 7}; !maps.Equal(o.delivered, want) {
		t.Fatalf("confirmations %v, want %v", o.delivered, want)
	}

	off := config.Default(config.Bridge)
	off.MQTT.Confirm = false
	nb, err := New(off, slog.New(slog.DiscardHandler), NewMetrics(prometheus.NewRegistry()))
	if err != nil {
		t.Fatal(err)
	}
	o = outbox{}
	nb.translate(&o, wire.ReadingsTopic("s1", "pump-1"), good, now)
	if o.delivered != nil {
		t.Fatalf("mqtt.confirm off, yet confirmations %v", o.delivered)
	}
}
