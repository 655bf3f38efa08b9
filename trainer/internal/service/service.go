// Package service is `trainer serve`: a member of the trainer's Kafka
// consumer group on the training-request topic, running each request's job
// (one at a time per instance; a class's requests share a partition, so
// its jobs never overlap), the schedules, the shadow trials, and the HTTP
// API with the job records and plots.
//
// Invariants:
//   - A request's offset is committed only after its job ended (promoted,
//     kept, no data, failed for good): a killed instance's request is run
//     again by the next owner, as the same job.
//   - Requests made before the last job of their class started are
//     satisfied by it: a burst of requests makes one job.
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
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/segmentio/kafka-go"

	"github.com/pdmstream/pdm/pdmkit/cli"
	pdmconfig "github.com/pdmstream/pdm/pdmkit/config"
	"github.com/pdmstream/pdm/pdmkit/httpauth"
	"github.com/pdmstream/pdm/pdmkit/kafkaconn"
	"github.com/pdmstream/pdm/pdmkit/retry"
	"github.com/pdmstream/pdm/pdmkit/telemetry"
	"github.com/pdmstream/pdm/pdmkit/wire"
	"github.com/pdmstream/pdm/trainer/internal/config"
	"github.com/pdmstream/pdm/trainer/internal/history"
	"github.com/pdmstream/pdm/trainer/internal/job"
	"github.com/pdmstream/pdm/trainer/internal/registry"
)

// Command is `trainer serve`.
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
	log.Info("trainer starting", "config", pdmconfig.String(&cfg))
	s, err := New(cfg, log)
	if err != nil {
		return err
	}
	defer func() { err = cli.Shutdown(ctx, s, err) }()
	return s.Run(ctx)
}

// Service is one trainer instance.
type Service struct {
	cfg    config.Config
	log    *slog.Logger
	prom   *prometheus.Registry
	runner *job.Runner
	kafka  *kafkaconn.Conn // every Kafka client's way to the brokers
	guard  *httpauth.Guard // the API's tokens
	reader *kafka.Reader
	writer *kafka.Writer

	mu        sync.Mutex
	lastStart map[string]time.Time // class → start of its last job
	running   string

	joined    atomic.Bool
	kafkaDown atomic.Int32 // readiness as last checked: 0 unknown, 1 ready, 2 not
	jobs      *prometheus.CounterVec
	jobSecs   prometheus.Histogram
	closeOnce sync.Once
}

// New builds the instance; it validates cfg and connects nothing.
func New(cfg config.Config, log *slog.Logger) (*Service, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	hist, err := history.New(history.Config{URL: cfg.Influx.URL, Token: cfg.Influx.Token, Org: cfg.Influx.Org, Bucket: cfg.Influx.Bucket,
		Resample: history.Resample(cfg.Influx.Resample), RetryFor: cfg.Influx.RetryFor}, log)
	if err != nil {
		return nil, err
	}
	conn, err := cfg.Kafka.Conn()
	if err != nil {
		return nil, err
	}
	store, err := job.NewStore(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	key, err := job.SigningKey(cfg, log)
	if err != nil {
		return nil, err
	}
	s := &Service{cfg: cfg, log: log, prom: telemetry.NewRegistry(), kafka: conn, lastStart: map[string]time.Time{},
		guard: httpauth.New(httpauth.Config{ReadToken: cfg.HTTP.ReadToken, WriteToken: cfg.HTTP.Token, Realm: "pdm-trainer",
			ReadKey: "http.read_token (PDM_TRAINER_READ_TOKEN)", WriteKey: "http.token (PDM_TRAINER_TOKEN)"})}
	if cfg.HTTP.Addr != "" {
		s.guard.LogMode(log.With("component", "api"))
	}
	s.runner = &job.Runner{Config: &s.cfg, History: hist, Registry: registry.New(cfg.Scorer.URL, cfg.Scorer.Token, log.With("component", "registry")),
		Store: store, Log: log.With("component", "job"), Key: key}
	f := promauto.With(s.prom)
	s.jobs = f.NewCounterVec(prometheus.CounterOpts{Name: "pdm_trainer_jobs_total", Help: "Training jobs ended, by state (promoted, shadow, kept, no_data, failed)."}, []string{"state"})
	s.jobSecs = f.NewHistogram(prometheus.HistogramOpts{Name: "pdm_trainer_job_seconds", Help: "Duration of training jobs.", Buckets: prometheus.ExponentialBuckets(0.5, 2, 12)})
	s.reader = kafka.NewReader(kafka.ReaderConfig{Brokers: conn.Brokers, Dialer: conn.Dialer(0), GroupID: cfg.Kafka.Group, Topic: cfg.Kafka.Retrain,
		MinBytes: 1, MaxBytes: 1 << 20, MaxWait: 500 * time.Millisecond, CommitInterval: 0, StartOffset: kafka.FirstOffset,
		SessionTimeout: 10 * time.Second, RebalanceTimeout: 10 * time.Second})
	s.writer = &kafka.Writer{Addr: kafka.TCP(conn.Brokers...), Transport: conn.Transport(), Topic: cfg.Kafka.Retrain, Balancer: &kafka.Murmur2Balancer{},
		RequiredAcks: kafka.RequireAll, BatchTimeout: time.Millisecond, AllowAutoTopicCreation: true}
	// The last job of every class this instance remembers.
	if recs, err := store.List(); err == nil {
		for _, r := range recs {
			if r.Started.After(s.lastStart[r.Class]) {
				s.lastStart[r.Class] = r.Started
			}
		}
	}
	return s, nil
}

// Store is the instance's job records.
func (s *Service) Store() *job.Store { return s.runner.Store }

// Run works until ctx ends.
func (s *Service) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	run := func(name string, fn func(context.Context) error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := fn(ctx); err != nil && ctx.Err() == nil {
				errs <- fmt.Errorf("%s: %w", name, err)
				cancel()
			}
		}()
	}
	run("http", func(ctx context.Context) error {
		tc, err := s.cfg.HTTP.TLS.Server()
		if err != nil {
			return fmt.Errorf("http.tls: %w", err)
		}
		return telemetry.ServeTLS(ctx, s.cfg.HTTP.Addr, tc, s.Handler(), s.log.With("component", "http"))
	})
	run("admin", func(ctx context.Context) error {
		return telemetry.ServeAdmin(ctx, s.cfg.HTTP.AdminAddr, s.log)
	})
	// A first readiness check, so the log tells at once whether the
	// brokers take the trainer (a refused password, a CA that does not
	// match): the consumer group only retries quietly.
	go func() {
		check, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		_ = s.ready(check)
	}()
	run("requests", s.consume)
	run("schedules", s.schedules)
	s.resumeShadows(ctx, &wg)
	wg.Wait()
	close(errs)
	var all []error
	for err := range errs {
		all = append(all, err)
	}
	return errors.Join(all...)
}

// consume runs the requests of this instance's partitions in order.
func (s *Service) consume(ctx context.Context) error {
	backoff := retry.Backoff{Initial: 100 * time.Millisecond, Max: 5 * time.Second}
	for failed := 0; ; {
		m, err := s.reader.FetchMessage(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			wait := backoff.Next(failed)
			failed++
			s.log.Warn("reading training requests failed; retrying", "attempt", failed, "backoff", wait, "err", err)
			if !retry.Sleep(ctx, wait) {
				return nil
			}
			continue
		}
		failed = 0
		s.joined.Store(true)
		if err := s.handle(ctx, m); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		if err := s.reader.CommitMessages(ctx, m); err != nil && ctx.Err() == nil {
			s.log.Warn("commit failed; the request may run again", "err", err)
		}
	}
}

// handle runs one request's job, retrying while a server it needs is
// unavailable.
func (s *Service) handle(ctx context.Context, m kafka.Message) error {
	req, err := wire.DecodeTrainingRequest(m.Value)
	if err != nil {
		s.log.Warn("training request refused", "offset", m.Offset, "err", err)
		return nil
	}
	class := s.cfg.Class(req.Key())
	if string(m.Key) != class.Name {
		// Keyed by an asset of a class: forward it under the class's key so
		// the class's jobs share one partition.
		req.Class = class.Name
		b, _ := jsonMarshal(req)
		return s.writer.WriteMessages(ctx, kafka.Message{Key: []byte(class.Name), Value: b})
	}
	s.mu.Lock()
	last := s.lastStart[class.Name]
	s.mu.Unlock()
	if !req.At.After(last) {
		s.log.Info("training request satisfied by a later job", "class", class.Name, "request", req.At, "last_job", last, "reason", req.Reason)
		return nil
	}
	b := retry.Backoff{Initial: time.Second, Max: time.Minute}
	for attempt := 0; ; attempt++ {
		start := time.Now()
		s.mu.Lock()
		s.running = job.ID(class.Name, req.At)
		s.lastStart[class.Name] = start.UTC()
		s.mu.Unlock()
		rec, err := s.runner.Run(ctx, req)
		s.mu.Lock()
		s.running = ""
		s.mu.Unlock()
		s.jobSecs.Observe(time.Since(start).Seconds())
		if err == nil {
			s.jobs.WithLabelValues(rec.State).Inc()
			if rec.State == job.Shadow {
				s.shadowLater(ctx, rec)
			}
			return nil
		}
		if !errors.Is(err, job.ErrUnavailable) {
			return err
		}
		s.jobs.WithLabelValues(job.Failed).Inc()
		wait := b.Next(attempt)
		s.log.Warn("job could not finish; the request is run again", "job", job.ID(class.Name, req.At), "err", err, "in", wait)
		if !retry.Sleep(ctx, wait) {
			return ctx.Err()
		}
	}
}

// Request publishes a training request (the API's and the schedules').
func (s *Service) Request(ctx context.Context, req wire.TrainingRequest) error {
	b, err := jsonMarshal(req)
	if err != nil {
		return err
	}
	return s.writer.WriteMessages(ctx, kafka.Message{Key: []byte(req.Key()), Value: b})
}

// schedules publishes each scheduled class's request at its interval,
// stamped with the interval's start so that every instance publishes the
// same request and the class's partition owner runs it once.
func (s *Service) schedules(ctx context.Context) error {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	next := map[string]time.Time{}
	for {
		select {
		case <-ctx.Done():
			return nil
		case now := <-tick.C:
			for _, c := range s.cfg.Classes {
				every := c.Job.Or(s.cfg.Job).Every
				if every <= 0 {
					continue
				}
				at := now.UTC().Truncate(every)
				if !at.After(next[c.Name]) {
					continue
				}
				next[c.Name] = at
				if err := s.Request(ctx, wire.TrainingRequest{Site: c.Job.Or(s.cfg.Job).Site, Class: c.Name, Reason: wire.ReasonSchedule, By: "trainer", At: at}); err != nil {
					s.log.Warn("scheduled request not published", "class", c.Name, "err", err)
					delete(next, c.Name)
				}
			}
		}
	}
}

// resumeShadows schedules the end of every shadow trial on record.
func (s *Service) resumeShadows(ctx context.Context, wg *sync.WaitGroup) {
	recs, err := s.Store().List()
	if err != nil {
		s.log.Warn("job records not read", "err", err)
		return
	}
	for _, r := range recs {
		if r.State == job.Shadow && r.Shadow != nil {
			s.shadowLater(ctx, r)
		}
	}
}

// shadowLater ends rec's shadow trial when it is due.
func (s *Service) shadowLater(ctx context.Context, rec *job.Record) {
	go func() {
		if !retry.Sleep(ctx, time.Until(rec.Shadow.Until)) {
			return
		}
		b := retry.Backoff{Initial: time.Second, Max: time.Minute}
		for attempt := 0; ; attempt++ {
			r, err := s.runner.EndShadow(ctx, rec)
			if err == nil {
				s.jobs.WithLabelValues(r.State).Inc()
				return
			}
			s.log.Warn("shadow trial could not end; retrying", "job", rec.ID, "err", err)
			if !retry.Sleep(ctx, b.Next(attempt)) {
				return
			}
		}
	}()
}

// ready: a bootstrap broker takes a connection (TLS and SASL included):
// the trainer has no other dependency it could be ready without. The
// brokers are dialled at once and the first to answer makes it ready. A
// change between ready and not is logged, with the brokers' errors.
func (s *Service) ready(ctx context.Context) error {
	err := s.kafka.Answers(ctx, 2*time.Second)
	if err != nil {
		if s.kafkaDown.Swap(2) != 2 {
			s.log.Warn("kafka not ready", "brokers", s.kafka.Brokers, "err", err)
		}
		return err
	}
	if s.kafkaDown.Swap(1) == 2 {
		s.log.Info("kafka ready", "brokers", s.kafka.Brokers)
	}
	return nil
}

// Handler is the HTTP API (see api.go), metrics and health.
func (s *Service) Handler() http.Handler {
	mux := telemetry.Handler(s.prom, map[string]telemetry.ReadyFunc{"kafka": s.ready})
	s.routes(mux)
	return mux
}

// Close releases the clients; safe to call twice. The Kafka clients'
// Close takes no context, so ctx only marks the shape every service shares.
func (s *Service) Close(context.Context) error {
	var err error
	s.closeOnce.Do(func() { err = errors.Join(s.reader.Close(), s.writer.Close()) })
	return err
}
