// Package config is the trainer's configuration: one struct whose defaults
// live in Default, loaded from a YAML file, the environment (PDM_*) and
// flags in rising precedence by pdmkit/config, and checked by Validate.
//
// A class is a set of assets sharing one model (all pumps of one make, or
// one asset alone); its Job settings override the defaults field by field.
// An asset the trainer is asked about that no class names is a class of
// its own, named after it, with the default Job.
package config

import (
	"cmp"
	"crypto/ed25519"
	_ "embed"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"time"

	"github.com/pdmstream/pdm/pdmkit/kafkaconn"
	"github.com/pdmstream/pdm/pdmkit/model"
	"github.com/pdmstream/pdm/pdmkit/monitor"
	"github.com/pdmstream/pdm/pdmkit/telemetry"
	"github.com/pdmstream/pdm/pdmkit/tlsconf"
	"github.com/pdmstream/pdm/pdmkit/wire"
	"github.com/pdmstream/pdm/trainer/internal/validate"
)

// Sample is the documented sample configuration printed by -print-config.
//
//go:embed sample.yaml
var Sample string

// Config is everything the trainer can be told.
type Config struct {
	Influx  Influx        `yaml:"influx"`
	Kafka   Kafka         `yaml:"kafka"`
	Scorer  Scorer        `yaml:"scorer"`
	Signing Signing       `yaml:"signing"`
	HTTP    HTTP          `yaml:"http"`
	Log     telemetry.Log `yaml:"log"`
	// DataDir holds every job's record and plots. Default "trainer-data".
	DataDir string `yaml:"data_dir" env:"PDM_TRAINER_DATA" help:"folder of job records and plots"`
	// Alert is the decision a job validates with: the scorer's (keep the
	// two configurations' alert sections alike).
	Alert monitor.Settings `yaml:"alert"`
	// Job is the default of every class.
	Job Job `yaml:"job"`
	// Classes name the assets that share a model.
	Classes []Class `yaml:"classes"`
}

// Influx is where the history is read.
type Influx struct {
	// URL of InfluxDB. Default http://127.0.0.1:8086.
	URL string `yaml:"url" env:"PDM_INFLUX_URL" help:"InfluxDB URL"`
	// Token is "user:password" on 1.8 (empty without authentication), an
	// API token on 2.x. Default empty.
	Token string `yaml:"token" env:"PDM_INFLUX_TOKEN" secret:"true" help:"InfluxDB token"`
	// Org is ignored by 1.8. Default empty.
	Org string `yaml:"org" env:"PDM_INFLUX_ORG" help:"InfluxDB organisation"`
	// Bucket is "db/retention" on 1.8. Default pdm/autogen.
	Bucket string `yaml:"bucket" env:"PDM_INFLUX_BUCKET" help:"InfluxDB bucket"`
	// Resample is where each step's mean is taken: "reader" (the trainer
	// reads stored points and averages them: InfluxDB 1.8's aggregateWindow
	// is about 20× slower) or "server" (Flux aggregateWindow, less data over
	// the network on 2.x). Default reader.
	Resample string `yaml:"resample" env:"PDM_INFLUX_RESAMPLE" help:"reader or server"`
	// RetryFor is how long InfluxDB may be unreachable before a job gives
	// up (and its request is tried again later). Default 10m.
	RetryFor time.Duration `yaml:"retry_for" help:"how long InfluxDB may fail before a job gives up"`
}

// Kafka carries training requests.
type Kafka struct {
	// Brokers are the bootstrap brokers. Default 127.0.0.1:9092.
	Brokers []string `yaml:"brokers" env:"PDM_KAFKA_BROKERS" help:"Kafka bootstrap brokers, comma separated"`
	// TLS is the tls block for brokers that take TLS: ca_file is the CA
	// that signed the brokers' certificates. Default empty (plain TCP).
	TLS tlsconf.Config `yaml:"tls" env:"PDM_KAFKA_TLS"`
	// SASL is the sasl block: mechanism (SCRAM-SHA-512, SCRAM-SHA-256 or
	// PLAIN), username and password (the secured stack's user is
	// trainer). Default empty (no authentication).
	SASL kafkaconn.SASL `yaml:"sasl" env:"PDM_KAFKA_SASL"`
	// Retrain is the topic of training requests, keyed by class: the
	// scorer's drift and cold-start requests, the API's and the
	// schedules' (the scorer's kafka.retrain). Default pdm.retrain.
	Retrain string `yaml:"retrain" env:"PDM_KAFKA_RETRAIN" help:"topic of training requests"`
	// Group is the consumer group trainer instances share; a class's
	// requests land on one partition, so its jobs run one at a time on
	// one instance. Default pdm-trainer.
	Group string `yaml:"group" env:"PDM_TRAINER_GROUP" help:"Kafka consumer group"`
}

// Conn is the way to the brokers the section's blocks describe.
func (k Kafka) Conn() (*kafkaconn.Conn, error) {
	return kafkaconn.New(k.Brokers, k.TLS, k.SASL)
}

// Scorer is the model registry the trainer publishes to, over the
// scorer's API.
type Scorer struct {
	// URL of a scorer instance. Default http://127.0.0.1:8080.
	URL string `yaml:"url" env:"PDM_SCORER_URL" help:"scorer API URL"`
	// Token is the scorer's write token. Default empty (publishing fails).
	Token string `yaml:"token" env:"PDM_API_TOKEN" secret:"true" help:"scorer API bearer token"`
}

// Signing is the ed25519 key the trainer signs every artifact it
// publishes or writes with; scorers load only artifacts signed by a key
// in their models.trusted_keys.
type Signing struct {
	// KeyFile is the private key's file (PEM PKCS#8, as `trainer keygen`
	// and `scorer model keygen` write it); PDM_SIGNING_KEY_FILE names it
	// too. Default empty: artifacts are unsigned.
	KeyFile string `yaml:"key_file" help:"ed25519 private key (PEM) artifacts are signed with (empty: unsigned)"`
	// Key is the PEM itself, for a secret passed in the environment
	// (PDM_SIGNING_KEY, or the file PDM_SIGNING_KEY_FILE names). Set
	// KeyFile or Key, not both.
	Key string `yaml:"key" env:"PDM_SIGNING_KEY" secret:"true" help:"ed25519 private key PEM (instead of key_file)"`
}

// PrivateKey reads the signing key; nil when none is configured.
func (s Signing) PrivateKey() (ed25519.PrivateKey, error) {
	switch {
	case s.Key != "":
		k, err := model.ParsePrivateKey([]byte(s.Key))
		if err != nil {
			return nil, fmt.Errorf("config: signing.key: %w", err)
		}
		return k, nil
	case s.KeyFile != "":
		k, err := model.LoadPrivateKeyFile(s.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("config: signing.key_file: %w", err)
		}
		return k, nil
	}
	return nil, nil
}

// HTTP is the trainer's own API, metrics and health server.
type HTTP struct {
	// Addr to listen on; empty disables the server. Default 127.0.0.1:9104
	// (loopback only).
	Addr string `yaml:"addr" env:"PDM_HTTP_ADDR" help:"HTTP listen address"`
	// AdminAddr serves the Go profiles (/debug/pprof/), off when empty
	// (the default); bind it to loopback.
	AdminAddr string `yaml:"admin_addr" env:"PDM_HTTP_ADMIN_ADDR" help:"profiles (/debug/pprof/) listen address, loopback (empty = off)"`
	// TLS serves Addr over HTTPS with cert_file and key_file; a ca_file
	// also requires every client to present a certificate it signed.
	// Empty: plain HTTP.
	TLS tlsconf.Config `yaml:"tls" env:"PDM_HTTP_TLS"`
	// Token guards POST /v1/jobs (and grants reads). Default empty, which
	// refuses it.
	Token string `yaml:"token" env:"PDM_TRAINER_TOKEN" secret:"true" help:"bearer token for starting jobs"`
	// ReadToken guards the GETs (job records and plots). Default empty:
	// reads are open, as the console's plot images need (an image request
	// carries no token).
	ReadToken string `yaml:"read_token" env:"PDM_TRAINER_READ_TOKEN" secret:"true" help:"bearer token for reading jobs (empty = reads open)"`
}

// Job is how one class is trained, validated and published. In a class,
// zero fields take the default job's value.
type Job struct {
	// Site of the class's readings. Default "demo".
	Site string `yaml:"site" help:"site of the readings"`
	// Kind of model: reconstruction, forecaster, or rul (remaining useful
	// life: every asset's history is one run to failure, ending at its
	// failure). Default reconstruction.
	Kind string `yaml:"kind" help:"model kind: reconstruction, forecaster or rul"`
	// Step is the resampling step of the history; it should be the
	// readings' interval, which is what the scorer scores. Default 1s.
	Step time.Duration `yaml:"step" help:"history resampling step (the readings' interval)"`
	// History is how far back a job reads. Default 168h.
	History time.Duration `yaml:"history" help:"how far back a job reads history"`
	// MinRows is the normal history a class needs before it gets a model
	// (cold start) and below which a job trains nothing. Default 600.
	MinRows int `yaml:"min_rows" help:"rows of normal history needed to train"`
	// Holdout is the share of the newest history kept out of training to
	// validate candidate and active version on. Default 0.2.
	Holdout float64 `yaml:"holdout" help:"share of the newest history held out for validation"`
	// Every schedules a job per class at this interval; 0 never. Default 0.
	Every time.Duration `yaml:"every" help:"scheduled retraining interval (0: none)"`
	// Shadow, when set, publishes a promoted candidate as the model's
	// shadow first and activates it after this long if it disagreed with
	// the active version's alerts on at most ShadowDisagreements readings.
	// Default 0: activate at once.
	Shadow              time.Duration `yaml:"shadow" help:"run a candidate in shadow this long before activating it (0: at once)"`
	ShadowDisagreements int           `yaml:"shadow_disagreements" help:"readings the shadow's alerts may differ on"`
	// Window, Hidden, Epochs and Smoothing are the model's
	// hyperparameters (0: the kind's defaults, see pdmkit/anomaly).
	Window    int     `yaml:"window" help:"readings per model input (0: the kind's default)"`
	Hidden    int     `yaml:"hidden" help:"hidden units (0: the kind's default)"`
	Epochs    int     `yaml:"epochs" help:"training epochs at most (0: the kind's default)"`
	Smoothing float64 `yaml:"smoothing" help:"weight of the newest error in the moving average (0: the kind's default)"`
	// Members (rul kind) is how many networks are trained with successive
	// seeds and averaged into the one model (0: one).
	Members int `yaml:"members" help:"rul kind: networks trained and averaged into the model (0: one)"`
	// FailureScore, when set, is carried in the model as the score at
	// which the asset counts as failed, for time-to-failure forecasts.
	FailureScore float64 `yaml:"failure_score" help:"score at which the class counts as failed (0: none)"`
	// Promote is the rule a candidate must pass against the active
	// version on the held-out history (see trainer/internal/validate).
	// Defaults: max_false_alarms 0, min_detection 0.5, tolerance 0.05.
	Promote validate.Rule `yaml:"promote"`
}

// Class is a set of assets sharing one model.
type Class struct {
	// Name is the model's name in the registry.
	Name   string   `yaml:"name"`
	Assets []string `yaml:"assets"`
	Job    Job      `yaml:"job"`
}

// Default returns the configuration with every documented default.
func Default() Config {
	return Config{
		Influx:  Influx{URL: "http://127.0.0.1:8086", Bucket: "pdm/autogen", Resample: "reader", RetryFor: 10 * time.Minute},
		Kafka:   Kafka{Brokers: []string{"127.0.0.1:9092"}, Retrain: wire.TopicRetrain, Group: "pdm-trainer"},
		Scorer:  Scorer{URL: "http://127.0.0.1:8080"},
		HTTP:    HTTP{Addr: "127.0.0.1:9104"},
		Log:     telemetry.DefaultLog(),
		DataDir: "trainer-data",
		Alert:   monitor.DefaultSettings(),
		Job: Job{Site: "demo", Kind: string(model.Reconstruction), Step: time.Second, History: 7 * 24 * time.Hour,
			MinRows: 600, Holdout: 0.2, Promote: validate.Rule{MinDetection: 0.5, Tolerance: 0.05}},
	}
}

// Or fills j's zero fields from def.
func (j Job) Or(def Job) Job {
	j.Site = cmp.Or(j.Site, def.Site)
	j.Kind = cmp.Or(j.Kind, def.Kind)
	j.Step = cmp.Or(j.Step, def.Step)
	j.History = cmp.Or(j.History, def.History)
	j.MinRows = cmp.Or(j.MinRows, def.MinRows)
	j.Holdout = cmp.Or(j.Holdout, def.Holdout)
	j.Every = cmp.Or(j.Every, def.Every)
	j.Shadow = cmp.Or(j.Shadow, def.Shadow)
	j.ShadowDisagreements = cmp.Or(j.ShadowDisagreements, def.ShadowDisagreements)
	j.Window = cmp.Or(j.Window, def.Window)
	j.Hidden = cmp.Or(j.Hidden, def.Hidden)
	j.Epochs = cmp.Or(j.Epochs, def.Epochs)
	j.Smoothing = cmp.Or(j.Smoothing, def.Smoothing)
	j.Members = cmp.Or(j.Members, def.Members)
	j.FailureScore = cmp.Or(j.FailureScore, def.FailureScore)
	j.Promote.MaxFalseAlarms = cmp.Or(j.Promote.MaxFalseAlarms, def.Promote.MaxFalseAlarms)
	j.Promote.MinDetection = cmp.Or(j.Promote.MinDetection, def.Promote.MinDetection)
	j.Promote.Tolerance = cmp.Or(j.Promote.Tolerance, def.Promote.Tolerance)
	return j
}

// Class returns the class of name — a class name or an asset — with its
// job's defaults filled in; an asset no class names is a class of its own.
func (c *Config) Class(name string) Class {
	for _, k := range c.Classes {
		if k.Name == name || slices.Contains(k.Assets, name) {
			k.Job = k.Job.Or(c.Job)
			return k
		}
	}
	return Class{Name: name, Assets: []string{name}, Job: c.Job}
}

// Validate rejects values and combinations the trainer cannot run with.
func (c *Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if c.Signing.Key != "" && c.Signing.KeyFile != "" {
		bad("signing.key and signing.key_file are both set; set one")
	} else if _, err := c.Signing.PrivateKey(); err != nil {
		errs = append(errs, err)
	}
	if u, err := url.Parse(c.Influx.URL); err != nil || u.Host == "" {
		bad("influx.url (%q) is not an http URL", c.Influx.URL)
	}
	if c.Influx.Bucket == "" {
		bad("influx.bucket is empty")
	}
	if c.Influx.Resample != "reader" && c.Influx.Resample != "server" {
		bad("influx.resample (%q) must be reader or server", c.Influx.Resample)
	}
	if len(c.Kafka.Brokers) == 0 || c.Kafka.Retrain == "" || c.Kafka.Group == "" {
		bad("kafka.brokers (%v), kafka.retrain (%q) and kafka.group (%q) are required", c.Kafka.Brokers, c.Kafka.Retrain, c.Kafka.Group)
	}
	if _, err := c.HTTP.TLS.Server(); err != nil {
		bad("http.tls: %w", err)
	}
	if _, err := c.Kafka.Conn(); err != nil {
		bad("kafka: %w", err)
	}
	if u, err := url.Parse(c.Scorer.URL); err != nil || u.Host == "" {
		bad("scorer.url (%q) is not an http URL", c.Scorer.URL)
	}
	if c.DataDir == "" {
		bad("data_dir is empty")
	}
	if err := c.Log.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := c.Alert.Config().Validate(); err != nil {
		bad("alert: %v", err)
	}
	if err := c.Job.validate("job"); err != nil {
		errs = append(errs, err)
	}
	seen := map[string]string{}
	for i, k := range c.Classes {
		if !wire.ValidID(k.Name) || len(k.Assets) == 0 {
			bad("classes[%d]: name (%q) must be a valid id and assets (%v) not empty", i, k.Name, k.Assets)
		}
		for _, a := range k.Assets {
			if other, ok := seen[a]; ok {
				bad("asset %s is in classes %s and %s", a, other, k.Name)
			}
			seen[a] = k.Name
		}
		if err := k.Job.Or(c.Job).validate(fmt.Sprintf("classes[%s].job", k.Name)); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	return nil
}

func (j Job) validate(at string) error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(at+"."+format, args...)) }
	switch model.Kind(j.Kind) {
	case model.Reconstruction, model.Forecaster, model.RUL:
	default:
		bad("kind (%q) must be reconstruction, forecaster or rul", j.Kind)
	}
	if j.Step < time.Millisecond || j.History < 100*j.Step {
		bad("step (%s) must be at least 1ms and history (%s) at least 100 steps", j.Step, j.History)
	}
	if j.MinRows < 50 {
		bad("min_rows (%d) must be at least 50", j.MinRows)
	}
	if !(j.Holdout > 0 && j.Holdout < 0.9) {
		bad("holdout (%v) must be in (0, 0.9)", j.Holdout)
	}
	if j.Every < 0 || j.Shadow < 0 || j.ShadowDisagreements < 0 {
		bad("every (%s), shadow (%s) and shadow_disagreements (%d) must not be negative", j.Every, j.Shadow, j.ShadowDisagreements)
	}
	if !(j.FailureScore >= 0 && j.FailureScore < 1) {
		bad("failure_score (%v) must be in [0, 1)", j.FailureScore)
	}
	if !(j.Promote.MinDetection >= 0 && j.Promote.MinDetection <= 1) || j.Promote.Tolerance < 0 || j.Promote.MaxFalseAlarms < 0 {
		bad("promote: min_detection (%v) in [0, 1], tolerance (%v) and max_false_alarms (%d) not negative", j.Promote.MinDetection, j.Promote.Tolerance, j.Promote.MaxFalseAlarms)
	}
	return errors.Join(errs...)
}
