package agent

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/pdmstream/pdm/pdmkit/wire"
)

type metrics struct {
	generated    *prometheus.CounterVec
	dropped      *prometheus.CounterVec
	missed       *prometheus.CounterVec
	marked       *prometheus.CounterVec
	published    prometheus.Counter
	acked        prometheus.Counter
	reconnects   prometheus.Counter
	spoolRecords prometheus.Gauge
	spoolBytes   prometheus.Gauge
	connected    prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) *metrics {
	f := promauto.With(reg) // registers each series as it is made; nil registers nothing
	m := &metrics{
		generated: f.NewCounterVec(prometheus.CounterOpts{
			Name: "pdm_edge_readings_generated_total", Help: "Readings taken from sources, valid or not.",
		}, []string{"asset"}),
		dropped: f.NewCounterVec(prometheus.CounterOpts{
			Name: "pdm_edge_readings_dropped_total", Help: "Readings dropped, by reason: a wire rejection code, spool_full, spool_error or encode.",
		}, []string{"reason"}),
		missed: f.NewCounterVec(prometheus.CounterOpts{
			Name: "pdm_edge_cycles_missed_total", Help: "Source cycles that yielded no reading (failed or timed-out polls), by asset.",
		}, []string{"asset"}),
		marked: f.NewCounterVec(prometheus.CounterOpts{
			Name: "pdm_edge_values_marked_total", Help: "Sensor values published with a quality mark, by asset, sensor and quality class (bad: left out of the reading; uncertain, stale: published with their value).",
		}, []string{"asset", "sensor", "quality"}),
		published: f.NewCounter(prometheus.CounterOpts{
			Name: "pdm_edge_readings_published_total", Help: "Readings handed to the MQTT client (resends after a rewind count again).",
		}),
		acked: f.NewCounter(prometheus.CounterOpts{
			Name: "pdm_edge_readings_acked_total", Help: "Readings the broker acknowledged (QoS 1 PUBACK).",
		}),
		reconnects: f.NewCounter(prometheus.CounterOpts{
			Name: "pdm_edge_mqtt_reconnects_total", Help: "MQTT connections after the first.",
		}),
		spoolRecords: f.NewGauge(prometheus.GaugeOpts{
			Name: "pdm_edge_spool_records", Help: "Messages in the spool not yet acknowledged.",
		}),
		spoolBytes: f.NewGauge(prometheus.GaugeOpts{
			Name: "pdm_edge_spool_bytes", Help: "Bytes of spool segment files on disk.",
		}),
		connected: f.NewGauge(prometheus.GaugeOpts{
			Name: "pdm_edge_mqtt_connected", Help: "1 while the MQTT link is up.",
		}),
	}
	for _, c := range wire.Codes() {
		m.dropped.WithLabelValues(string(c))
	}
	for _, r := range []string{"spool_full", "spool_error", "encode"} {
		m.dropped.WithLabelValues(r)
	}
	return m
}
