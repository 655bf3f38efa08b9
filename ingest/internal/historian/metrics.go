package historian

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/pdmstream/pdm/pdmkit/wire"
)

// Metrics are the historian's Prometheus series.
type Metrics struct {
	Points       prometheus.Counter
	Rejected     *prometheus.CounterVec
	WriteErrors  prometheus.Counter
	CommitErrors prometheus.Counter
	FetchErrors  prometheus.Counter
	WriteSeconds prometheus.Histogram
}

// NewMetrics registers the historian's series on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	f := promauto.With(reg) // registers each series as it is made; nil registers nothing
	m := &Metrics{
		Points: f.NewCounter(prometheus.CounterOpts{
			Name: "pdm_historian_points_total", Help: "Readings written to InfluxDB."}),
		Rejected: f.NewCounterVec(prometheus.CounterOpts{
			Name: "pdm_historian_rejected_total", Help: "Records sent to the dead-letter topic, by reason."}, []string{"code"}),
		WriteErrors: f.NewCounter(prometheus.CounterOpts{
			Name: "pdm_historian_write_errors_total", Help: "Failed InfluxDB writes (retried, or the refused records dead-lettered)."}),
		CommitErrors: f.NewCounter(prometheus.CounterOpts{
			Name: "pdm_historian_commit_errors_total", Help: "Failed offset commits (the batch is replayed)."}),
		FetchErrors: f.NewCounter(prometheus.CounterOpts{
			Name: "pdm_historian_fetch_errors_total", Help: "Failed Kafka fetches (Kafka away; the historian waits and fetches again)."}),
		WriteSeconds: f.NewHistogram(prometheus.HistogramOpts{
			Name: "pdm_historian_write_seconds", Help: "Duration of one InfluxDB write.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 16)}),
	}
	for _, c := range append(wire.Codes(), codeRefused) {
		m.Rejected.WithLabelValues(string(c))
	}
	return m
}
