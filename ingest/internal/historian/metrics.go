package historian

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/pdmstream/pdm/pdmkit/wire"
)

// Metrics are the historian's Prometheus series.
type Metrics struct {
	Points       prometheus.Counter
	Rejected     *prometheus.CounterVec
	WriteErrors  prometheus.Counter
	CommitErrors prometheus.Counter
	WriteSeconds prometheus.Histogram
}

// NewMetrics registers the historian's series on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Points: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pdm_historian_points_total", Help: "Readings written to InfluxDB."}),
		Rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pdm_historian_rejected_total", Help: "Records sent to the dead-letter topic, by reason."}, []string{"code"}),
		WriteErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pdm_historian_write_errors_total", Help: "Failed InfluxDB writes (each is retried)."}),
		CommitErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pdm_historian_commit_errors_total", Help: "Failed offset commits (the batch is replayed)."}),
		WriteSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "pdm_historian_write_seconds", Help: "Duration of one InfluxDB write.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 16)}),
	}
	reg.MustRegister(m.Points, m.Rejected, m.WriteErrors, m.CommitErrors, m.WriteSeconds)
	for _, c := range wire.Codes() {
		m.Rejected.WithLabelValues(string(c))
	}
	return m
}
