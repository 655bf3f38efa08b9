package sink

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/pdmstream/pdm/pdmkit/alert"
	"github.com/pdmstream/pdm/pdmkit/stacktest"
	"github.com/pdmstream/pdm/scorer/internal/stream"
	"github.com/segmentio/kafka-go"
)

// TestKafkaRecordsCarryTheirProduceTime: a backlog of readings from months
// ago is stamped with when it was scored, so the topics' time-based
// retention does not delete it the moment it lands; the reading's own time
// stays in the value.
func TestKafkaRecordsCarryTheirProduceTime(t *testing.T) {
	kc := stacktest.KafkaConn(t)
	scores := stacktest.Topic(t, "sink-time-scores", 1)
	alerts := stacktest.Topic(t, "sink-time-alerts", 1)
	k := NewKafka(kc, scores, alerts, "")
	defer k.Close(context.Background())

	old := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	now := time.Now().UTC()
	b := &stream.Batch{
		Scores: []stream.Score{{ID: "p1/7", Site: "s", Asset: "p1", Seq: 7, Time: old, Score: 0.5, ScoredAt: now}},
		Alerts: []alert.Alert{{ID: "p1-1", Site: "s", Asset: "p1", State: alert.Opened, Revision: 1, FirstTime: old, LastTime: old}},
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := k.Write(ctx, b); err != nil {
		t.Fatal(err)
	}
	for _, topic := range []string{scores, alerts} {
		r := kafka.NewReader(kafka.ReaderConfig{Brokers: kc.Brokers, Dialer: kc.Dialer(0), Topic: topic, Partition: 0, MaxWait: 100 * time.Millisecond})
		m, err := r.ReadMessage(ctx)
		r.Close()
		if err != nil {
			t.Fatalf("%s: %v", topic, err)
		}
		if d := m.Time.Sub(now); d < -time.Minute || d > time.Minute {
			t.Errorf("%s: record time %s, want about %s (the reading's is %s)", topic, m.Time.UTC(), now, old)
		}
		var v struct {
			Time      time.Time `json:"ts"`
			FirstTime time.Time `json:"first_reading_time"`
		}
		if err := json.Unmarshal(m.Value, &v); err != nil {
			t.Fatalf("%s: %v", topic, err)
		}
		if !v.Time.Equal(old) && !v.FirstTime.Equal(old) {
			t.Errorf("%s: value %s does not keep the reading's time %s", topic, m.Value, old)
		}
	}
}
