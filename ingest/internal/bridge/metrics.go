package bridge

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/pdmstream/pdm/pdmkit/wire"
)

// Metrics are the bridge's Prometheus series.
type Metrics struct {
	Messages        prometheus.Counter
	Readings        prometheus.Counter
	SubscribeErrors prometheus.Counter
	Rejected        *prometheus.CounterVec
	KafkaErrors     prometheus.Counter
	Reconnects      prometheus.Counter
	KafkaWrite      prometheus.Histogram
	BatchMessages   prometheus.Histogram
	// AgeAtKafka is the time from a reading's timestamp to Kafka's ack.
	AgeAtKafka prometheus.Histogram
	// Sparkplug counts Sparkplug messages by type; Rebirths the rebirth
	// requests sent.
	Sparkplug *prometheus.CounterVec
	Rebirths  prometheus.Counter
	// Confirmations counts the delivery confirmations published.
	Confirmations prometheus.Counter
}

// NewMetrics registers the bridge's series on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	f := promauto.With(reg) // registers each series as it is made; nil registers nothing
	m := &Metrics{
		Messages: f.NewCounter(prometheus.CounterOpts{
			Name: "pdm_bridge_mqtt_messages_total", Help: "MQTT messages received."}),
		SubscribeErrors: f.NewCounter(prometheus.CounterOpts{
			Name: "pdm_bridge_subscribe_errors_total", Help: "Failed or refused MQTT subscriptions (each is retried on the same connection)."}),
		Readings: f.NewCounter(prometheus.CounterOpts{
			Name: "pdm_bridge_readings_total", Help: "Valid readings written to Kafka, counted when Kafka acknowledged them."}),
		Rejected: f.NewCounterVec(prometheus.CounterOpts{
			Name: "pdm_bridge_rejected_total", Help: "Messages or readings sent to the dead-letter topic, by reason."}, []string{"code"}),
		KafkaErrors: f.NewCounter(prometheus.CounterOpts{
			Name: "pdm_bridge_kafka_errors_total", Help: "Failed Kafka writes (each is retried)."}),
		Reconnects: f.NewCounter(prometheus.CounterOpts{
			Name: "pdm_bridge_mqtt_connection_lost_total", Help: "Lost MQTT connections."}),
		KafkaWrite: f.NewHistogram(prometheus.HistogramOpts{
			Name: "pdm_bridge_kafka_write_seconds", Help: "Time from taking a batch's first MQTT message to Kafka's acknowledgement of the batch.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16)}),
		BatchMessages: f.NewHistogram(prometheus.HistogramOpts{
			Name: "pdm_bridge_batch_messages", Help: "MQTT messages per Kafka write (one produce request per leader broker).",
			Buckets: prometheus.ExponentialBuckets(1, 2, 14)}),
		AgeAtKafka: f.NewHistogram(prometheus.HistogramOpts{
			Name: "pdm_bridge_reading_age_at_kafka_seconds", Help: "Time from a reading's timestamp to Kafka's acknowledgement.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 20)}),
		Sparkplug: f.NewCounterVec(prometheus.CounterOpts{
			Name: "pdm_bridge_sparkplug_messages_total", Help: "Sparkplug B messages received, by message type."}, []string{"type"}),
		Confirmations: f.NewCounter(prometheus.CounterOpts{
			Name: "pdm_bridge_confirmations_total", Help: "Delivery confirmations published to the agents (one per asset per Kafka write)."}),
		Rebirths: f.NewCounter(prometheus.CounterOpts{
			Name: "pdm_bridge_sparkplug_rebirth_requests_total", Help: "Sparkplug rebirth requests (NCMD) sent to edge nodes whose data could not be mapped."}),
	}
	for _, c := range wire.Codes() {
		m.Rejected.WithLabelValues(string(c))
	}
	return m
}

// observeWritten counts the readings of a batch Kafka has acknowledged,
// and their age.
func (m *Metrics) observeWritten(sampled []time.Time, now time.Time) {
	m.Readings.Add(float64(len(sampled)))
	for _, t := range sampled {
		m.AgeAtKafka.Observe(now.Sub(t).Seconds())
	}
}
