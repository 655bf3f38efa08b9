// Package config holds the edge agent's configuration: one plain struct whose
// defaults are set in Default, loaded from YAML, environment and flags by
// pdmkit/config, and checked by Validate before anything starts.
package config

import (
	_ "embed"
	"errors"
	"fmt"
	"hash/fnv"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/pdmstream/pdm/edge-agent/internal/modbus"
	"github.com/pdmstream/pdm/edge-agent/internal/opcua"
	"github.com/pdmstream/pdm/pdmkit/telemetry"
	"github.com/pdmstream/pdm/pdmkit/tlsconf"
	"github.com/pdmstream/pdm/pdmkit/wire"
)

//go:embed sample.yaml
var sample string

// Sample is the annotated sample configuration printed by -print-config:
// the agent's own keys, then each source's section: OPC UA's (off while
// its endpoint is empty), and the Modbus devices commented out (no device
// is polled by default).
var Sample = sample + opcua.Sample + commented(modbus.Sample)

// commented turns a source's sample into comment lines.
func commented(s string) string {
	var b strings.Builder
	b.WriteString("\n")
	for _, line := range strings.SplitAfter(strings.TrimRight(s, "\n"), "\n") {
		if strings.HasPrefix(line, "#") {
			b.WriteString(line)
		} else {
			b.WriteString("# " + line)
		}
	}
	return b.String() + "\n"
}

// Config is everything the agent needs. yaml names double as flag names
// (nested ones dotted, e.g. -mqtt.url).
type Config struct {
	// Site names the plant or line; the first topic level after pdm/v1.
	// Default "plant1".
	Site string `yaml:"site" env:"PDM_SITE" help:"site id (topic level)"`
	// AgentID identifies this gateway: the status topic and the MQTT client
	// id derive from it, so it must be stable across restarts and unique per
	// broker. Default: the host name (sanitised), or "edge-1".
	AgentID string `yaml:"agent_id" env:"PDM_AGENT_ID" help:"stable gateway id"`
	// Assets lists the simulated assets as id=kind pairs, comma separated;
	// kinds are pump and motor. Default "pump-1=pump,motor-1=motor".
	Assets string `yaml:"assets" env:"PDM_ASSETS" help:"simulated assets, id=kind,... (kinds: pump, motor)"`
	// Rate is readings per second per asset; 0 means as fast as the broker
	// takes them. Default 1.
	Rate float64 `yaml:"rate" env:"PDM_RATE" help:"readings per second per asset (0 = as fast as the broker acks)"`
	// Batch is how many readings of one asset go into one MQTT message; 1
	// sends the single-reading form. Default 1.
	Batch int `yaml:"batch" env:"PDM_BATCH" help:"readings per MQTT message"`
	// Limit makes the agent publish this many readings per asset, wait until
	// the broker acknowledged all of them, and exit 0. 0 runs forever.
	// Default 0.
	Limit int `yaml:"limit" env:"PDM_LIMIT" help:"readings per asset, then wait for acks and exit (0 = run forever)"`
	// Seed makes the simulator reproducible: same seed and config, same
	// sensor values. Default 1.
	Seed uint64 `yaml:"seed" help:"simulator random seed"`
	// TimeScale is simulated seconds per real second, so a wear-to-failure
	// run of days fits in minutes. Default 60.
	TimeScale float64 `yaml:"time_scale" help:"simulated seconds per real second"`
	// Degrade starts degradation modes, comma separated, as
	// asset=mode[@delay][/ttf]: delay is simulated time after start (default
	// 0), ttf the simulated time from onset to failure (default per mode).
	// Modes: bearing_wear, cavitation (pumps), misalignment. Default "".
	Degrade string `yaml:"degrade" help:"degradation to start, asset=mode[@delay][/ttf],... (simulated durations)"`
	HTTP    HTTP   `yaml:"http"`
	MQTT    MQTT   `yaml:"mqtt"`
	Spool   Spool  `yaml:"spool"`
	CSV     CSV    `yaml:"csv"`
	// Modbus lists Modbus TCP devices polled as assets, each with its
	// register map (internal/modbus/README.md). File only, no flags.
	// Default none.
	Modbus modbus.Config `yaml:"modbus"`
	Log    telemetry.Log `yaml:"log"`
	// OPCUA reads assets from an OPC UA server; see internal/opcua.
	OPCUA opcua.Config `yaml:"opcua"`
}

// HTTP is the admin server.
type HTTP struct {
	// Addr serves /metrics, /healthz, /readyz and the /v1/assets control
	// API. Empty disables it. Default "127.0.0.1:9101" (loopback only).
	Addr string `yaml:"addr" env:"PDM_HTTP_ADDR" help:"admin HTTP listen address (empty = off)"`
	// AdminAddr serves the Go profiles (/debug/pprof/), off when empty
	// (the default); bind it to loopback.
	AdminAddr string `yaml:"admin_addr" env:"PDM_HTTP_ADMIN_ADDR" help:"profiles (/debug/pprof/) listen address, loopback (empty = off)"`
	// TLS serves Addr over HTTPS with cert_file and key_file; a ca_file
	// also requires every client to present a certificate it signed.
	// Empty: plain HTTP.
	TLS tlsconf.Config `yaml:"tls" env:"PDM_HTTP_TLS"`
	// Token is the bearer token the control API's writes (degrade, repair,
	// setpoint) require; it also grants reads. Default empty, which
	// refuses every write.
	Token string `yaml:"token" env:"PDM_AGENT_TOKEN" secret:"true" help:"bearer token for the control API's writes (empty = writes off)"`
	// ReadToken is the bearer token GET /v1/assets requires. Default
	// empty: reads are open to whoever reaches Addr.
	ReadToken string `yaml:"read_token" env:"PDM_AGENT_READ_TOKEN" secret:"true" help:"bearer token for GET /v1/assets (empty = reads open)"`
}

// MQTT configures the broker connection.
type MQTT struct {
	// URL of the broker, tcp:// or ssl://. Default "tcp://127.0.0.1:1883".
	URL string `yaml:"url" env:"PDM_MQTT_URL" help:"broker URL"`
	// ClientID must be stable so the broker keeps the persistent session,
	// and unique, or two clients take the connection from each other.
	// Default "pdm-edge-<agent_id>-<hash of site and assets>", so two agents
	// left at the default agent id (the host name) on one host do not clash.
	ClientID string `yaml:"client_id" env:"PDM_MQTT_CLIENT_ID" help:"MQTT client id (default pdm-edge-<agent_id>-<hash of site and assets>)"`
	// Username for the broker. Default "".
	Username string `yaml:"username" env:"PDM_MQTT_USERNAME" help:"broker user"`
	// Password for the broker; from env or file, never logged. Default "".
	Password string `yaml:"password" env:"PDM_MQTT_PASSWORD" secret:"true" help:"broker password"`
	// TLS is the tls block for an ssl:// broker: ca_file is the CA that
	// signed the broker's certificate. Default empty (the system roots).
	TLS tlsconf.Config `yaml:"tls" env:"PDM_MQTT_TLS"`
	// Window is how many messages may await their PUBACK at once; it also
	// bounds the burst resent after a reconnect. Default 256.
	Window int `yaml:"window" help:"QoS 1 messages in flight"`
	// KeepAlive is the MQTT keep-alive. Default 15s.
	KeepAlive time.Duration `yaml:"keep_alive" help:"MQTT keep-alive"`
	// MaxReconnectInterval caps the reconnect back-off. Default 5s.
	MaxReconnectInterval time.Duration `yaml:"max_reconnect_interval" help:"longest wait between reconnect attempts"`
	// Payload is what the agent publishes: "json", the pipeline's readings
	// on pdm/v1/{site}/{asset}/readings with the retained status, or
	// "sparkplug", Sparkplug B 3.0 on spBv1.0/{site}/.../{agent_id}/{asset}
	// (births, DDATA with aliases, NDEATH as the will, rebirth on NCMD;
	// no pdm/v1 status). The spool holds the same either way. Default "json".
	Payload string `yaml:"payload" env:"PDM_MQTT_PAYLOAD" help:"json or sparkplug (Sparkplug B 3.0)"`
	// Confirm keeps readings in the spool until the ingest bridge confirms
	// Kafka has them (pdm/v1/{site}/{asset}/delivered), and sends again
	// what is not confirmed when a bridge subscribes: a broker crash then
	// loses nothing. Off, a reading is done once the broker acknowledged
	// it. Needs a bridge with mqtt.confirm on; json payload only. Default
	// true.
	Confirm bool `yaml:"confirm" env:"PDM_MQTT_CONFIRM" help:"keep readings until the bridge confirms Kafka has them"`
}

// Payload forms.
const (
	PayloadJSON      = "json"
	PayloadSparkplug = "sparkplug"
)

// Spool configures the store-and-forward queue on disk.
type Spool struct {
	// Dir holds the segment files and the cursor. Empty means a temporary
	// directory removed at exit: readings then survive link loss but not an
	// agent restart. Set it on real gateways. Default "".
	Dir string `yaml:"dir" env:"PDM_SPOOL_DIR" help:"spool directory (empty = temporary, lost on restart)"`
	// MaxBytes bounds the spool on disk; when full, new readings are dropped,
	// counted and logged, so what is already queued is sent in order.
	// Default 1 GiB.
	MaxBytes int64 `yaml:"max_bytes" help:"spool size limit in bytes"`
	// SegmentBytes is the size at which a new segment file starts. Default 8 MiB.
	SegmentBytes int64 `yaml:"segment_bytes" help:"spool segment size in bytes"`
	// SyncInterval is how often appended data is fsynced; 0 fsyncs every
	// record. A killed process loses nothing either way (the data is in the
	// page cache); a power cut loses at most this much. Default 200ms.
	SyncInterval time.Duration `yaml:"sync_interval" help:"fsync interval for appended records (0 = every record)"`
}

// CSV configures replay of a recorded file as one more asset.
type CSV struct {
	// File to replay; empty disables replay. Default "".
	File string `yaml:"file" help:"CSV file to replay (empty = off)"`
	// Asset is the id the replayed readings carry. Default "csv-1".
	Asset string `yaml:"asset" help:"asset id of the replayed readings"`
	// Speed is the replay speed: 1 real time, 10 ten times faster, 0 as
	// fast as the broker takes them. Default 1.
	Speed float64 `yaml:"speed" help:"replay speed (1 = real time, 0 = as fast as possible)"`
	// Loop restarts the file at its end. Default false.
	Loop bool `yaml:"loop" help:"replay the file again at its end"`
}

// Default returns the configuration with every documented default.
func Default() Config {
	return Config{
		Site:      "plant1",
		AgentID:   defaultAgentID(),
		Assets:    "pump-1=pump,motor-1=motor",
		Rate:      1,
		Batch:     1,
		Seed:      1,
		TimeScale: 60,
		HTTP:      HTTP{Addr: "127.0.0.1:9101"},
		MQTT: MQTT{
			URL:                  "tcp://127.0.0.1:1883",
			Window:               256,
			KeepAlive:            15 * time.Second,
			MaxReconnectInterval: 5 * time.Second,
			Payload:              PayloadJSON,
			Confirm:              true,
		},
		Spool: Spool{
			MaxBytes:     1 << 30,
			SegmentBytes: 8 << 20,
			SyncInterval: 200 * time.Millisecond,
		},
		CSV:   CSV{Asset: "csv-1", Speed: 1},
		Log:   telemetry.DefaultLog(),
		OPCUA: opcua.Default(),
	}
}

func defaultAgentID() string {
	h, err := os.Hostname()
	if err != nil {
		return "edge-1"
	}
	if id := wire.Sanitize(h); wire.ValidID(id) {
		return id
	}
	return "edge-1"
}

// ClientID returns the MQTT client id, derived from the agent id, site and
// assets unless set.
func (c *Config) ClientID() string {
	if c.MQTT.ClientID != "" {
		return c.MQTT.ClientID
	}
	h := fnv.New32a()
	h.Write([]byte(c.Site + "|" + c.Assets + "|" + c.CSV.File + "|" + c.CSV.Asset))
	if ids := c.Modbus.Assets(); len(ids) > 0 {
		h.Write([]byte("|modbus=" + strings.Join(ids, ",")))
	}
	for _, id := range c.OPCUA.AssetIDs() { // nothing without OPC UA assets, so older ids stay
		h.Write([]byte("|opcua:" + id))
	}
	return fmt.Sprintf("pdm-edge-%s-%08x", c.AgentID, h.Sum32())
}

// Asset is one simulated asset.
type Asset struct {
	ID   string
	Kind string
}

// Kinds of simulated assets.
const (
	KindPump  = "pump"
	KindMotor = "motor"
)

// ParseAssets reads "id=kind,id=kind".
func ParseAssets(s string) ([]Asset, error) {
	var out []Asset
	seen := map[string]bool{}
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		id, kind, ok := strings.Cut(part, "=")
		if !ok {
			return nil, fmt.Errorf("asset %q: want id=kind", part)
		}
		id, kind = strings.TrimSpace(id), strings.TrimSpace(kind)
		if !wire.ValidID(id) {
			return nil, fmt.Errorf("asset id %q: want 1..%d characters of [A-Za-z0-9._-]", id, wire.MaxIDLen)
		}
		if kind != KindPump && kind != KindMotor {
			return nil, fmt.Errorf("asset %q kind %q: want pump or motor", id, kind)
		}
		if seen[id] {
			return nil, fmt.Errorf("asset %q listed twice", id)
		}
		seen[id] = true
		out = append(out, Asset{ID: id, Kind: kind})
	}
	return out, nil
}

// Degradation is one mode to start at a simulated time.
type Degradation struct {
	Asset string
	Mode  string
	// After is the simulated time from start to onset.
	After time.Duration
	// TTF is the simulated time from onset to failure; 0 means the mode's
	// default.
	TTF time.Duration
}

// ParseDegrade reads "asset=mode[@delay][/ttf],...".
func ParseDegrade(s string) ([]Degradation, error) {
	var out []Degradation
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		asset, rest, ok := strings.Cut(part, "=")
		if !ok {
			return nil, fmt.Errorf("degrade %q: want asset=mode[@delay][/ttf]", part)
		}
		d := Degradation{Asset: strings.TrimSpace(asset)}
		rest, ttf, hasTTF := strings.Cut(rest, "/")
		mode, delay, hasDelay := strings.Cut(rest, "@")
		d.Mode = strings.TrimSpace(mode)
		var err error
		if hasDelay {
			if d.After, err = time.ParseDuration(strings.TrimSpace(delay)); err != nil || d.After < 0 {
				return nil, fmt.Errorf("degrade %q: delay %q: want a duration >= 0 such as 30m", part, delay)
			}
		}
		if hasTTF {
			if d.TTF, err = time.ParseDuration(strings.TrimSpace(ttf)); err != nil || d.TTF <= 0 {
				return nil, fmt.Errorf("degrade %q: time to failure %q: want a duration > 0 such as 48h", part, ttf)
			}
		}
		out = append(out, d)
	}
	return out, nil
}

// Modes lists the degradation modes and the asset kinds they apply to.
var Modes = map[string][]string{
	"bearing_wear": {KindPump, KindMotor},
	"cavitation":   {KindPump},
	"misalignment": {KindPump, KindMotor},
}

// ModeApplies reports whether mode exists and fits kind.
func ModeApplies(mode, kind string) error {
	kinds, ok := Modes[mode]
	if !ok {
		return fmt.Errorf("mode %q: want bearing_wear, cavitation or misalignment", mode)
	}
	for _, k := range kinds {
		if k == kind {
			return nil
		}
	}
	return fmt.Errorf("mode %q does not apply to kind %q", mode, kind)
}

// Validate rejects bad values and bad combinations, naming the values.
func (c *Config) Validate() error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if !wire.ValidID(c.Site) {
		add("site (%q) must be 1..%d characters of [A-Za-z0-9._-]", c.Site, wire.MaxIDLen)
	}
	if !wire.ValidID(c.AgentID) {
		add("agent_id (%q) must be 1..%d characters of [A-Za-z0-9._-]", c.AgentID, wire.MaxIDLen)
	}
	if _, err := c.HTTP.TLS.Server(); err != nil {
		add("http.tls: %w", err)
	}
	assets, err := ParseAssets(c.Assets)
	if err != nil {
		add("assets (%q): %w", c.Assets, err)
	}
	if len(assets) == 0 && c.CSV.File == "" && len(c.Modbus.Devices) == 0 && !c.OPCUA.Enabled() {
		add("assets (%q), csv.file (%q), modbus.devices (%d) and opcua.endpoint (%q) are all empty: nothing to publish",
			c.Assets, c.CSV.File, len(c.Modbus.Devices), c.OPCUA.Endpoint)
	}
	if c.Rate < 0 {
		add("rate (%v) must be >= 0", c.Rate)
	}
	if c.MQTT.Payload != PayloadJSON && c.MQTT.Payload != PayloadSparkplug {
		add("mqtt.payload (%q) must be %s or %s", c.MQTT.Payload, PayloadJSON, PayloadSparkplug)
	}
	if c.Batch < 1 || c.Batch > wire.DefaultLimits().MaxBatch {
		add("batch (%d) must be 1..%d", c.Batch, wire.DefaultLimits().MaxBatch)
	}
	if c.Limit < 0 {
		add("limit (%d) must be >= 0", c.Limit)
	}
	if c.Limit > 0 && c.CSV.File != "" && c.CSV.Loop {
		add("limit (%d) with csv.loop (%v): the limit applies per asset, set only one", c.Limit, c.CSV.Loop)
	}
	if c.TimeScale <= 0 {
		add("time_scale (%v) must be > 0", c.TimeScale)
	}
	if c.Rate > 0 && c.TimeScale/c.Rate > 3600 {
		add("time_scale (%v) / rate (%v) is %v simulated seconds per reading; more than 3600 makes the physics meaningless", c.TimeScale, c.Rate, c.TimeScale/c.Rate)
	}
	if c.Rate == 0 && c.TimeScale > 3600 {
		add("time_scale (%v) with rate (0) is %v simulated seconds per reading; more than 3600 makes the physics meaningless", c.TimeScale, c.TimeScale)
	}
	degs, err := ParseDegrade(c.Degrade)
	if err != nil {
		add("degrade (%q): %w", c.Degrade, err)
	}
	kinds := map[string]string{}
	for _, a := range assets {
		kinds[a.ID] = a.Kind
	}
	for _, d := range degs {
		kind, ok := kinds[d.Asset]
		if !ok {
			add("degrade asset (%q) is not in assets (%q)", d.Asset, c.Assets)
			continue
		}
		if err := ModeApplies(d.Mode, kind); err != nil {
			add("degrade (%q): %w", c.Degrade, err)
		}
	}
	if u, err := url.Parse(c.MQTT.URL); err != nil || u.Host == "" {
		add("mqtt.url (%q) must be a URL such as tcp://127.0.0.1:1883", c.MQTT.URL)
	} else if s := u.Scheme; s != "tcp" && s != "ssl" && s != "tls" && s != "mqtt" && s != "mqtts" && s != "ws" && s != "wss" {
		add("mqtt.url (%q) scheme %q: want tcp, ssl, mqtt, mqtts, ws or wss", c.MQTT.URL, s)
	}
	if c.MQTT.Window < 1 || c.MQTT.Window > 65535 {
		add("mqtt.window (%d) must be 1..65535", c.MQTT.Window)
	}
	if c.MQTT.KeepAlive < time.Second {
		add("mqtt.keep_alive (%s) must be at least 1s", c.MQTT.KeepAlive)
	}
	if c.MQTT.MaxReconnectInterval <= 0 {
		add("mqtt.max_reconnect_interval (%s) must be > 0", c.MQTT.MaxReconnectInterval)
	}
	if c.Spool.SegmentBytes < 4096 {
		add("spool.segment_bytes (%d) must be at least 4096", c.Spool.SegmentBytes)
	}
	if c.Spool.MaxBytes < 2*c.Spool.SegmentBytes {
		add("spool.max_bytes (%d) must be at least twice spool.segment_bytes (%d)", c.Spool.MaxBytes, c.Spool.SegmentBytes)
	}
	if c.Spool.SyncInterval < 0 {
		add("spool.sync_interval (%s) must be >= 0", c.Spool.SyncInterval)
	}
	if c.CSV.File != "" {
		if !wire.ValidID(c.CSV.Asset) {
			add("csv.asset (%q) must be 1..%d characters of [A-Za-z0-9._-]", c.CSV.Asset, wire.MaxIDLen)
		}
		if _, dup := kinds[c.CSV.Asset]; dup {
			add("csv.asset (%q) is also in assets (%q)", c.CSV.Asset, c.Assets)
		}
		if c.CSV.Speed < 0 {
			add("csv.speed (%v) must be >= 0", c.CSV.Speed)
		}
	}
	if err := c.Modbus.Validate(); err != nil {
		add("modbus: %w", err)
	}
	if err := c.OPCUA.Validate(); err != nil {
		errs = append(errs, err)
	}
	// Every source's asset ids are checked against the simulated assets,
	// the CSV replay and each other: two sources of one asset would
	// interleave their readings under one sequence.
	owner := map[string]string{}
	for _, src := range []struct {
		what string // how an error names one of its ids
		ids  []string
	}{{"modbus device asset (%q)", c.Modbus.Assets()}, {"opcua asset %q", c.OPCUA.AssetIDs()}} {
		for _, id := range src.ids {
			name := fmt.Sprintf(src.what, id)
			if _, dup := kinds[id]; dup {
				add("%s is also in assets (%q)", name, c.Assets)
			}
			if c.CSV.File != "" && id == c.CSV.Asset {
				add("%s is also csv.asset (%q)", name, c.CSV.Asset)
			}
			if other, dup := owner[id]; dup {
				add("%s is also %s", name, other)
			}
			owner[id] = name
		}
	}
	if err := c.Log.Validate(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
