package modbus

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Metrics are the Modbus series, labelled by asset (one asset per device).
// The agent's pdm_edge_cycles_missed_total counts the same missed polls as
// polls_missed, without the reason.
type Metrics struct {
	requests  *prometheus.CounterVec
	errors    *prometheus.CounterVec
	connects  *prometheus.CounterVec
	connected *prometheus.GaugeVec
	missed    *prometheus.CounterVec
	omitted   *prometheus.CounterVec
	valueOK   *prometheus.GaugeVec
	pollTime  *prometheus.HistogramVec
}

// Error kinds of pdm_edge_modbus_request_errors_total: timeout, a
// connection that failed (io) or spoke garbage (protocol), a response from
// the wrong unit, and the exceptions a device answers with.
var errorKinds = []string{
	"timeout", "io", "protocol", "bad_unit_id",
	"illegal_function", "illegal_data_address", "illegal_data_value", "server_device_failure",
	"acknowledge", "server_device_busy", "memory_parity_error", "gateway_path_unavailable",
	"gateway_target_failed", "exception_other",
}

// Reasons of pdm_edge_modbus_polls_missed_total: the connection could not
// be made (connect) or is waiting out its backoff (backoff); every request
// failed (failed); every value read was NaN or infinite (bad_values); the
// poll would have started a whole interval after its due time (late).
var missReasons = []string{"connect", "backoff", "failed", "bad_values", "late"}

// NewMetrics registers the Modbus series on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	f := promauto.With(reg)
	return &Metrics{
		requests: f.NewCounterVec(prometheus.CounterOpts{
			Name: "pdm_edge_modbus_requests_total", Help: "Modbus read requests sent, by asset (device).",
		}, []string{"asset"}),
		errors: f.NewCounterVec(prometheus.CounterOpts{
			Name: "pdm_edge_modbus_request_errors_total", Help: "Modbus read requests that failed, by asset and kind: timeout, io, protocol, bad_unit_id or the exception the device answered.",
		}, []string{"asset", "kind"}),
		connects: f.NewCounterVec(prometheus.CounterOpts{
			Name: "pdm_edge_modbus_connects_total", Help: "Modbus TCP connection attempts, by asset and result (ok, error).",
		}, []string{"asset", "result"}),
		connected: f.NewGaugeVec(prometheus.GaugeOpts{
			Name: "pdm_edge_modbus_connected", Help: "1 while the device's connection is open.",
		}, []string{"asset"}),
		missed: f.NewCounterVec(prometheus.CounterOpts{
			Name: "pdm_edge_modbus_polls_missed_total", Help: "Polls that yielded no reading, by asset and reason: connect, backoff, failed, bad_values, late.",
		}, []string{"asset", "reason"}),
		omitted: f.NewCounterVec(prometheus.CounterOpts{
			Name: "pdm_edge_modbus_values_omitted_total", Help: "Sensor values left out of a published reading, by asset and reason: request (its read failed or was not made) or not_finite (NaN or Inf on the device).",
		}, []string{"asset", "reason"}),
		valueOK: f.NewGaugeVec(prometheus.GaugeOpts{
			Name: "pdm_edge_modbus_value_ok", Help: "1 if the sensor's value was read at its group's last poll, 0 if it was missing or bad.",
		}, []string{"asset", "sensor"}),
		pollTime: f.NewHistogramVec(prometheus.HistogramOpts{
			Name: "pdm_edge_modbus_poll_seconds", Help: "Time the reads of one poll took, by asset.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 14), // 1ms … 8s
		}, []string{"asset"}),
	}
}

// deviceMetrics are one device's series.
type deviceMetrics struct {
	asset                string
	m                    *Metrics
	requests             prometheus.Counter
	connectOK, connectKO prometheus.Counter
	connected            prometheus.Gauge
	pollTime             prometheus.Observer
}

func (m *Metrics) device(asset string, sensors []string) deviceMetrics {
	for _, k := range errorKinds {
		m.errors.WithLabelValues(asset, k)
	}
	for _, r := range missReasons {
		m.missed.WithLabelValues(asset, r)
	}
	for _, r := range []string{"request", "not_finite"} {
		m.omitted.WithLabelValues(asset, r)
	}
	for _, s := range sensors {
		m.valueOK.WithLabelValues(asset, s)
	}
	return deviceMetrics{
		asset: asset, m: m,
		requests:  m.requests.WithLabelValues(asset),
		connectOK: m.connects.WithLabelValues(asset, "ok"),
		connectKO: m.connects.WithLabelValues(asset, "error"),
		connected: m.connected.WithLabelValues(asset),
		pollTime:  m.pollTime.WithLabelValues(asset),
	}
}
