// Package service assembles the scorer from its configuration: the model
// registry following its Kafka topic, the scoring consumer group, the
// outputs, and the HTTP API, and runs them until the context ends.
package service

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"sync"
	"sync/atomic"

	"github.com/pdmstream/pdm/pdmkit/anomaly"
	"github.com/pdmstream/pdm/pdmkit/cli"
	pdmconfig "github.com/pdmstream/pdm/pdmkit/config"
	"github.com/pdmstream/pdm/pdmkit/detect"
	"github.com/pdmstream/pdm/pdmkit/httpauth"
	"github.com/pdmstream/pdm/pdmkit/kafkaconn"
	"github.com/pdmstream/pdm/pdmkit/telemetry"
	"github.com/pdmstream/pdm/scorer/internal/alertview"
	"github.com/pdmstream/pdm/scorer/internal/api"
	"github.com/pdmstream/pdm/scorer/internal/config"
	"github.com/pdmstream/pdm/scorer/internal/console"
	"github.com/pdmstream/pdm/scorer/internal/fleet"
	"github.com/pdmstream/pdm/scorer/internal/follow"
	"github.com/pdmstream/pdm/scorer/internal/registry"
	"github.com/pdmstream/pdm/scorer/internal/sink"
	"github.com/pdmstream/pdm/scorer/internal/stream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/segmentio/kafka-go"
)

// Command is `scorer serve`: flags, file and environment into a Config,
// then Run until a signal.
func Command(ctx context.Context, args []string) (err error) {
	cfg := config.Default()
	if printed, err := pdmconfig.Parse("serve", args, &cfg, config.Sample, os.Stdout); printed || err != nil {
		return err
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	log, err := cfg.Log.Logger()
	if err != nil {
		return err
	}
	log.Info("scorer starting", "config", pdmconfig.String(&cfg))
	s, err := New(cfg, log)
	if err != nil {
		return err
	}
	defer func() { err = cli.Shutdown(ctx, s, err) }()
	return s.Run(ctx)
}

// Service is one scorer instance.
type Service struct {
	cfg      config.Config
	conn     *kafkaconn.Conn // every Kafka client's way to the brokers
	log      *slog.Logger
	prom     *prometheus.Registry
	models   *registry.KafkaLog
	reg      *registry.Registry
	consumer *stream.Consumer
	kafka    *sink.Kafka
	influx   *sink.Influx
	mqtt     *sink.MQTT
	alerts   *alertview.Store
	fleet    *fleet.Store
	// badScores counts records of the scores topic the fleet view cannot read.
	badScores prometheus.Counter
	view      *alertview.View
	handler   http.Handler

	caughtUp  atomic.Bool
	closeOnce sync.Once
}

// New builds the instance; it validates cfg and connects nothing.
func New(cfg config.Config, log *slog.Logger) (*Service, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	conn, err := cfg.Kafka.Conn()
	if err != nil {
		return nil, fmt.Errorf("scorer: kafka: %w", err)
	}
	s := &Service{cfg: cfg, conn: conn, log: log, prom: telemetry.NewRegistry(), alerts: alertview.NewStore(0),
		fleet: fleet.New(fleet.Options{MaxAssets: cfg.Scoring.MaxAssets})}
	s.models = registry.NewKafkaLog(conn, cfg.Kafka.Models, log.With("component", "registry"))
	s.reg = registry.New(s.models, detect.New, nil, log.With("component", "registry"))
	s.reg.SetFallback(cfg.Scoring.DefaultModel)
	s.reg.SetCacheBytes(cfg.Kafka.ModelsCacheBytes)
	promauto.With(s.prom).NewGaugeFunc(prometheus.GaugeOpts{Name: "pdm_scorer_model_cache_bytes",
		Help: "Bytes of model artifacts in memory (kafka.models_cache_bytes bounds those not in use)."},
		func() float64 { return float64(s.reg.ResidentBytes()) })
	promauto.With(s.prom).NewCounterFunc(prometheus.CounterOpts{Name: "pdm_scorer_model_cache_evictions_total",
		Help: "Model versions that left memory to keep within kafka.models_cache_bytes; they are read back from the registry topic when asked for."},
		func() float64 { return float64(s.reg.Evictions()) })
	trust, err := cfg.Models.Trust()
	if err != nil {
		return nil, err
	}
	s.reg.SetTrust(trust)
	if cfg.Models.AcceptUnsigned {
		log.Warn("INSECURE: models.accept_unsigned is on: unsigned model artifacts are loaded and score readings", "trusted_keys", trust.KeyIDs())
	} else if len(trust.KeyIDs()) == 0 {
		log.Warn("models.trusted_keys is empty: every model artifact is refused (generate keys with scorer model keygen)")
	} else {
		log.Info("model artifacts must be signed", "trusted_keys", trust.KeyIDs())
	}
	promauto.With(s.prom).NewCounterFunc(prometheus.CounterOpts{Name: "pdm_scorer_model_records_refused_total",
		Help: "Artifact records of the models topic refused when read (unsigned, bad signature, checksum, invalid)."},
		func() float64 { return float64(s.reg.RefusedRecords()) })

	s.badScores = promauto.With(s.prom).NewCounter(prometheus.CounterOpts{Name: "pdm_scorer_fleet_records_refused_total",
		Help: "Records of the scores topic the fleet view could not read."})
	s.kafka = sink.NewKafka(conn, cfg.Kafka.Scores, cfg.Kafka.Alerts, cfg.Kafka.Retrain)
	outs := []stream.Output{s.kafka, s.alerts}
	checks := map[string]telemetry.ReadyFunc{"scorer": s.ready}
	if cfg.Influx.URL != "" {
		dropped := promauto.With(s.prom).NewCounter(prometheus.CounterOpts{Name: "pdm_scorer_influx_dropped_points_total",
			Help: "Score and alert points dropped from the InfluxDB output's full queue while InfluxDB was away (Kafka holds them)."})
		s.influx = sink.NewInflux(cfg.Influx.URL, cfg.Influx.Token, cfg.Influx.Org, cfg.Influx.Bucket, cfg.Influx.BatchSize, dropped, log.With("component", "influxdb"))
		outs = append(outs, s.influx)
		checks["influxdb"] = s.influx.Ping
	}
	if cfg.MQTT.URL != "" {
		host, _ := os.Hostname()
		tc, err := cfg.MQTT.TLS.Client()
		if err != nil {
			return nil, fmt.Errorf("scorer: mqtt.%w", err)
		}
		s.mqtt = sink.NewMQTT(sink.MQTTConn{URL: cfg.MQTT.URL, ClientID: fmt.Sprintf("%s-%s-%d", cfg.MQTT.ClientID, host, os.Getpid()),
			Username: cfg.MQTT.Username, Password: cfg.MQTT.Password, TLS: tc}, log.With("component", "mqtt"))
		refused := promauto.With(s.prom).NewCounter(prometheus.CounterOpts{Name: "pdm_scorer_gateway_status_refused_total",
			Help: "Gateway status messages (pdm/v1/{site}/{agent}/status) that could not be read."})
		flog := log.With("component", "fleet")
		s.mqtt.OnStatus(func(site, agent string, payload []byte) {
			if err := s.fleet.Gateway(site, agent, payload); err != nil {
				refused.Inc()
				flog.Warn("gateway status ignored", "err", err)
			}
		})
		outs = append(outs, s.mqtt)
		checks["mqtt"] = s.mqtt.Ready
	}
	s.consumer, err = stream.New(stream.Options{
		Conn: conn, Group: cfg.Kafka.Group, Topic: cfg.Kafka.Readings,
		SessionTimeout: cfg.Kafka.SessionTimeout,
		Replay:         cfg.Scoring.Replay, MaxBatch: cfg.Scoring.MaxBatch, History: cfg.Scoring.History,
		Decision: cfg.Alert.Config(), ColdStart: cfg.Scoring.ColdStart,
		IdleAfter: cfg.Scoring.IdleAfter, MaxAssets: cfg.Scoring.MaxAssets, ReorderWait: cfg.Scoring.ReorderWait,
		Online: Online,
	}, s.reg, outs, stream.NewMetrics(s.prom), log.With("component", "stream"))
	if err != nil {
		return nil, err
	}
	s.reg.SetCatalog(s.consumer.Catalog())
	s.view = alertview.New(conn, cfg.Kafka.Alerts, s.alerts, s.consumer, log.With("component", "alertview"))
	page, err := console.Handler(console.Options{TrainerURL: cfg.HTTP.TrainerURL})
	if err != nil {
		return nil, err
	}
	auth := httpauth.Config{ReadToken: cfg.HTTP.ReadToken, WriteToken: cfg.HTTP.Token, Realm: "pdm-scorer",
		ReadKey: "http.read_token (PDM_API_READ_TOKEN)", WriteKey: "http.token (PDM_API_TOKEN)"}
	a := api.New(api.Options{Auth: auth, Ready: s.ready, Decision: cfg.Alert.Config(),
		Fleet: s.fleet, StaleAfter: cfg.HTTP.StaleAfter, Console: page}, s.reg, s.view, s.prom, log.With("component", "api"))
	if cfg.HTTP.Addr != "" {
		a.LogAuth(log.With("component", "api"))
	}
	s.handler = a.Handler(s.prom, checks)
	return s, nil
}

// Handler is the HTTP API, for tests that serve it themselves.
func (s *Service) Handler() http.Handler { return s.handler }

// Registry is the instance's model registry.
func (s *Service) Registry() *registry.Registry { return s.reg }

func (s *Service) ready(ctx context.Context) error {
	if err := telemetry.Reachable(ctx, s.cfg.Kafka.Brokers); err != nil {
		return fmt.Errorf("waiting for kafka: %w", err)
	}
	switch {
	case !s.caughtUp.Load():
		if err := s.models.Failed(); err != nil {
			return fmt.Errorf("model registry not read yet: %w", err)
		}
		return errors.New("model registry not read yet")
	case !s.consumer.Joined():
		return errors.New("consumer group not joined yet")
	}
	return nil
}

// followScores fills the fleet view from the scores topic, so every
// instance lists every asset.
func (s *Service) followScores(ctx context.Context) error {
	flog := s.log.With("component", "fleet")
	return follow.Run(ctx, follow.Options{Conn: s.conn, Topic: s.cfg.Kafka.Scores, Since: s.cfg.HTTP.FleetSince, Log: flog},
		func(_ context.Context, m *kafka.Message) {
			if err := s.fleet.Apply(m.Value); err != nil {
				s.badScores.Inc()
				flog.Warn("score record ignored", "partition", m.Partition, "offset", m.Offset, "err", err)
			}
		})
}

// Ready reports whether a Kafka broker answers, the registry is read and
// the group joined.
func (s *Service) Ready() bool { return s.ready(context.Background()) == nil }

// Run works until ctx ends. The registry is read to its end before the
// first reading is scored, so no reading is scored by a stale version.
func (s *Service) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if s.mqtt != nil {
		s.mqtt.Connect()
	}
	var wg sync.WaitGroup
	errs := make(chan error, 6)
	run := func(name string, fn func(context.Context) error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := fn(ctx); err != nil {
				errs <- fmt.Errorf("%s: %w", name, err)
				cancel()
			}
		}()
	}
	caught := make(chan struct{})
	run("registry", func(ctx context.Context) error {
		return s.models.Follow(ctx, s.reg.Apply, func() {
			s.caughtUp.Store(true)
			close(caught)
		})
	})
	run("alertview", s.view.Run)
	run("fleet", s.followScores)
	run("http", func(ctx context.Context) error {
		tc, err := s.cfg.HTTP.TLS.Server()
		if err != nil {
			return fmt.Errorf("http.tls: %w", err)
		}
		return telemetry.ServeTLS(ctx, s.cfg.HTTP.Addr, tc, s.handler, s.log.With("component", "http"))
	})
	run("admin", func(ctx context.Context) error {
		return telemetry.ServeAdmin(ctx, s.cfg.HTTP.AdminAddr, s.log)
	})
	run("stream", func(ctx context.Context) error {
		select {
		case <-ctx.Done():
			return nil
		case <-caught:
		}
		s.log.Info("model registry read", "models", len(s.reg.Models()))
		return s.consumer.Run(ctx)
	})
	wg.Wait()
	close(errs)
	var all []error
	for err := range errs {
		all = append(all, err)
	}
	return errors.Join(all...)
}

// Close releases the clients, waiting for their writers until ctx ends;
// safe to call twice.
func (s *Service) Close(ctx context.Context) error {
	var err error
	s.closeOnce.Do(func() {
		err = errors.Join(s.kafka.Close(ctx), s.models.Close(ctx), s.view.Close(ctx))
		if s.influx != nil {
			err = errors.Join(err, s.influx.Close(ctx))
		}
		if s.mqtt != nil {
			err = errors.Join(err, s.mqtt.Close(ctx))
		}
	})
	return err
}

// Online builds the detector of an asset that has no model yet.
func Online() (anomaly.Detector, error) {
	return anomaly.NewOnline(anomaly.DefaultOnlineConfig())
}
