package stream

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Metrics are the scoring loop's Prometheus series.
type Metrics struct {
	Scored    *prometheus.CounterVec
	Errors    *prometheus.CounterVec
	Observe   *prometheus.HistogramVec
	EndToEnd  prometheus.Histogram
	Swaps     *prometheus.CounterVec
	Refused   *prometheus.CounterVec
	Invalid   prometheus.Counter
	Dupes     prometheus.Counter
	Late      prometheus.Counter
	Replayed  prometheus.Counter
	Alerts    *prometheus.CounterVec
	Batches   prometheus.Histogram
	Lag       *prometheus.GaugeVec
	ShadowDif *prometheus.HistogramVec
	Forgotten prometheus.Counter
}

// NewMetrics registers the series on reg (nil: not registered).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	f := promauto.With(reg) // registers each series as it is made; nil registers nothing
	m := &Metrics{
		Scored: f.NewCounterVec(prometheus.CounterOpts{
			Name: "pdm_scorer_readings_scored_total", Help: "Readings scored, by model and version.",
		}, []string{"model", "version"}),
		Errors: f.NewCounterVec(prometheus.CounterOpts{
			Name: "pdm_scorer_score_errors_total", Help: "Readings a detector could not score, by model and version.",
		}, []string{"model", "version"}),
		Observe: f.NewHistogramVec(prometheus.HistogramOpts{
			Name: "pdm_scorer_observe_seconds", Help: "Time a detector took for one reading, by model and version.",
			Buckets: prometheus.ExponentialBuckets(1e-6, 4, 10),
		}, []string{"model", "version"}),
		EndToEnd: f.NewHistogram(prometheus.HistogramOpts{
			Name: "pdm_scorer_end_to_end_seconds", Help: "From a reading's Kafka timestamp to its outputs being acknowledged.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 16),
		}),
		Swaps: f.NewCounterVec(prometheus.CounterOpts{
			Name: "pdm_scorer_model_swaps_total", Help: "Per-asset detector swaps, by the model and version swapped in.",
		}, []string{"model", "version"}),
		Refused: f.NewCounterVec(prometheus.CounterOpts{
			Name: "pdm_scorer_model_refused_total", Help: "Swaps refused (feature mismatch, load error), by model and version.",
		}, []string{"model", "version"}),
		Invalid: f.NewCounter(prometheus.CounterOpts{
			Name: "pdm_scorer_invalid_readings_total", Help: "Readings or messages that did not decode or validate.",
		}),
		Dupes: f.NewCounter(prometheus.CounterOpts{
			Name: "pdm_scorer_duplicate_readings_total", Help: "Readings skipped because their asset already had that sequence number.",
		}),
		Late: f.NewCounter(prometheus.CounterOpts{
			Name: "pdm_scorer_late_readings_total", Help: "Readings not scored because they arrived after scoring.reorder_wait, when later readings of their asset had been scored.",
		}),
		Replayed: f.NewCounter(prometheus.CounterOpts{
			Name: "pdm_scorer_replayed_readings_total", Help: "Readings re-read without output to rebuild state after an assignment.",
		}),
		Alerts: f.NewCounterVec(prometheus.CounterOpts{
			Name: "pdm_scorer_alert_events_total", Help: "Alert events, by state and severity.",
		}, []string{"state", "severity"}),
		Batches: f.NewHistogram(prometheus.HistogramOpts{
			Name: "pdm_scorer_batch_seconds", Help: "Time to score a batch and have every output acknowledge it.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 14),
		}),
		Lag: f.NewGaugeVec(prometheus.GaugeOpts{
			Name: "pdm_scorer_partition_lag", Help: "Readings behind the end of each owned partition.",
		}, []string{"partition"}),
		Forgotten: f.NewCounter(prometheus.CounterOpts{
			Name: "pdm_scorer_assets_forgotten_total", Help: "Assets forgotten after falling silent (scoring.idle_after) or beyond scoring.max_assets per partition."}),
		ShadowDif: f.NewHistogramVec(prometheus.HistogramOpts{
			Name: "pdm_scorer_shadow_abs_diff", Help: "|shadow score − active score|, by model and shadow version.",
			Buckets: []float64{0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1},
		}, []string{"model", "version"}),
	}
	return m
}
