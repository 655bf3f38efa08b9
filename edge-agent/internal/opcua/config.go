package opcua

import (
	_ "embed"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/gopcua/opcua/ua"

	"github.com/pdmstream/pdm/pdmkit/wire"
)

// Sample is the opcua section of the edge agent's annotated sample
// configuration, with every default; the agent's -print-config prints it.
//
//go:embed sample.yaml
var Sample string

// Security policies and modes this source speaks.
const (
	PolicyNone           = "None"
	PolicyBasic256Sha256 = "Basic256Sha256"
	ModeNone             = "None"
	ModeSign             = "Sign"
	ModeSignAndEncrypt   = "SignAndEncrypt"
)

// Config is the opcua section of the edge agent's configuration: one
// server, and the assets read from it. yaml names double as flags
// (-opcua.endpoint); the asset list comes from the file only.
type Config struct {
	// Endpoint is the server's URL, opc.tcp://host:port[/path]. Empty turns
	// the source off. Default "".
	Endpoint string `yaml:"endpoint" env:"PDM_OPCUA_ENDPOINT" help:"OPC UA server, opc.tcp://host:4840 (empty = off)"`
	// SecurityPolicy is None or Basic256Sha256. Default "None".
	SecurityPolicy string `yaml:"security_policy" help:"OPC UA security policy: None or Basic256Sha256"`
	// SecurityMode is None (with policy None), Sign or SignAndEncrypt (with
	// Basic256Sha256). Default "None".
	SecurityMode string `yaml:"security_mode" help:"OPC UA message security mode: None, Sign or SignAndEncrypt"`
	// Certificate is the client's application instance certificate, PEM
	// (.pem) or DER; required with Basic256Sha256. Default "".
	Certificate string `yaml:"certificate" help:"client certificate file (.pem or DER)"`
	// PrivateKey is the certificate's RSA key, PEM (.pem) or DER; required
	// with Basic256Sha256. Default "".
	PrivateKey string `yaml:"private_key" help:"client private key file (.pem or DER, RSA)"`
	// ServerCertificate, when set, pins the server: its endpoint must
	// present exactly this certificate (PEM or DER), or the agent does not
	// connect. Empty takes the certificate the server's endpoint list
	// offers, which encrypts but does not authenticate the server.
	// Default "".
	ServerCertificate string `yaml:"server_certificate" help:"server certificate the endpoint must present (empty = accept the endpoint's)"`
	// Username and Password log in as a user; empty is anonymous. Send a
	// password only over Basic256Sha256. Default "".
	Username string `yaml:"username" env:"PDM_OPCUA_USERNAME" help:"OPC UA user (empty = anonymous)"`
	// Password of Username; from env or file, never logged. Default "".
	Password string `yaml:"password" env:"PDM_OPCUA_PASSWORD" secret:"true" help:"OPC UA password"`
	// PublishingInterval is the subscription's publishing interval: at most
	// one reading per asset per interval, when a value changed. Default 1s.
	PublishingInterval time.Duration `yaml:"publishing_interval" help:"OPC UA subscription publishing interval"`
	// StaleAfter marks a value "stale" once the server has not sent it for
	// this long; the value is still published. Servers send a value only
	// when it changes, so set it above the longest time a healthy value
	// may stay constant. 0 never marks. Default 0s.
	StaleAfter time.Duration `yaml:"stale_after" help:"mark a value stale after this long without an update (0 = never)"`
	// Timeout bounds connecting and each request; a session silent for
	// this long is probed with a read and dropped if that fails. Default 10s.
	Timeout time.Duration `yaml:"timeout" help:"OPC UA connect and request timeout"`
	// MaxReconnectInterval caps the backoff between connection attempts
	// after a failure. Default 10s.
	MaxReconnectInterval time.Duration `yaml:"max_reconnect_interval" help:"longest wait between OPC UA connection attempts"`
	// Assets lists what to read: one subscription (and session) per asset,
	// one monitored item per sensor. File only. Default none.
	Assets []Asset `yaml:"assets"`
}

// Asset is one machine read from the server.
type Asset struct {
	// ID is the asset id of its readings (topic level, Kafka key).
	ID string `yaml:"id"`
	// Items are its sensors.
	Items []Item `yaml:"items"`
}

// Item is one monitored item: a node's Value attribute as one sensor.
type Item struct {
	// Node is the node id in OPC UA's string form, e.g. "ns=2;s=Pump7.Vibration"
	// or "ns=3;i=1042".
	Node string `yaml:"node"`
	// Sensor is the sensor name in the readings.
	Sensor string `yaml:"sensor"`
	// SamplingInterval asks the server to sample the node this often; 0
	// asks for the publishing interval. The server may revise it.
	SamplingInterval time.Duration `yaml:"sampling_interval"`
}

// Default returns the section with every documented default: off.
func Default() Config {
	return Config{
		SecurityPolicy:       PolicyNone,
		SecurityMode:         ModeNone,
		PublishingInterval:   time.Second,
		Timeout:              10 * time.Second,
		MaxReconnectInterval: 10 * time.Second,
	}
}

// Enabled reports whether the section reads anything.
func (c *Config) Enabled() bool { return c.Endpoint != "" }

// Validate rejects bad values and combinations, naming the keys and values;
// the section's keys are checked even while it is off, so a typo shows.
func (c *Config) Validate() error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	switch u, err := url.Parse(c.Endpoint); {
	case c.Endpoint == "" && len(c.Assets) > 0:
		add("opcua.assets (%d assets) without opcua.endpoint: set the server's URL", len(c.Assets))
	case c.Endpoint == "":
	case err != nil || u.Scheme != "opc.tcp" || u.Host == "":
		add("opcua.endpoint (%q) must be a URL such as opc.tcp://127.0.0.1:4840", c.Endpoint)
	case len(c.Assets) == 0:
		add("opcua.endpoint (%q) is set but opcua.assets is empty: nothing to read", c.Endpoint)
	}
	switch c.SecurityPolicy {
	case PolicyNone:
		if c.SecurityMode != ModeNone {
			add("opcua.security_mode (%q) with opcua.security_policy (%q): want None", c.SecurityMode, c.SecurityPolicy)
		}
	case PolicyBasic256Sha256:
		if c.SecurityMode != ModeSign && c.SecurityMode != ModeSignAndEncrypt {
			add("opcua.security_mode (%q) with opcua.security_policy (%q): want Sign or SignAndEncrypt", c.SecurityMode, c.SecurityPolicy)
		}
		if c.Certificate == "" || c.PrivateKey == "" {
			add("opcua.security_policy (%q) needs opcua.certificate (%q) and opcua.private_key (%q)", c.SecurityPolicy, c.Certificate, c.PrivateKey)
		}
	default:
		add("opcua.security_policy (%q): want None or Basic256Sha256", c.SecurityPolicy)
	}
	if c.Password != "" && c.Username == "" {
		add("opcua.password is set but opcua.username (%q) is empty", c.Username)
	}
	if c.PublishingInterval < 10*time.Millisecond {
		add("opcua.publishing_interval (%s) must be at least 10ms", c.PublishingInterval)
	}
	if c.StaleAfter < 0 {
		add("opcua.stale_after (%s) must be >= 0", c.StaleAfter)
	} else if c.StaleAfter > 0 && c.StaleAfter < c.PublishingInterval {
		add("opcua.stale_after (%s) is shorter than opcua.publishing_interval (%s): values would be stale between two publishes", c.StaleAfter, c.PublishingInterval)
	}
	if c.Timeout < 100*time.Millisecond {
		add("opcua.timeout (%s) must be at least 100ms", c.Timeout)
	}
	if c.MaxReconnectInterval <= 0 {
		add("opcua.max_reconnect_interval (%s) must be > 0", c.MaxReconnectInterval)
	}
	ids := map[string]bool{}
	for i, a := range c.Assets {
		if !wire.ValidID(a.ID) {
			add("opcua.assets[%d].id (%q) must be 1..%d characters of [A-Za-z0-9._-]", i, a.ID, wire.MaxIDLen)
		}
		if ids[a.ID] {
			add("opcua.assets[%d].id (%q) is listed twice", i, a.ID)
		}
		ids[a.ID] = true
		if len(a.Items) == 0 || len(a.Items) > wire.DefaultLimits().MaxSensors {
			add("opcua asset %q has %d items: want 1..%d", a.ID, len(a.Items), wire.DefaultLimits().MaxSensors)
		}
		sensors := map[string]bool{}
		for j, it := range a.Items {
			if !validNodeID(it.Node) {
				add("opcua asset %q items[%d].node (%q) is not a node id such as ns=2;s=Pump.Temp", a.ID, j, it.Node)
			}
			if !wire.ValidSensor(it.Sensor) {
				add("opcua asset %q items[%d].sensor (%q) must be 1..%d characters of [A-Za-z0-9._-], not seq or time", a.ID, j, it.Sensor, wire.MaxIDLen)
			}
			if sensors[it.Sensor] {
				add("opcua asset %q sensor %q is listed twice", a.ID, it.Sensor)
			}
			sensors[it.Sensor] = true
			if it.SamplingInterval < 0 {
				add("opcua asset %q items[%d].sampling_interval (%s) must be >= 0", a.ID, j, it.SamplingInterval)
			}
		}
	}
	return errors.Join(errs...)
}

// validNodeID accepts OPC UA's string form with its identifier type
// spelled out: [ns=N;]i=..., s=..., g=... or b=... (gopcua alone would read
// a bare "Pump7.Temp" as s=Pump7.Temp in namespace 0, a likely mistake).
func validNodeID(s string) bool {
	rest := s
	if strings.HasPrefix(rest, "ns=") {
		_, after, ok := strings.Cut(rest, ";")
		if !ok {
			return false
		}
		rest = after
	}
	if len(rest) < 3 || rest[1] != '=' || !strings.ContainsRune("isgb", rune(rest[0])) {
		return false
	}
	_, err := ua.ParseNodeID(s)
	return err == nil
}

// AssetIDs lists the configured asset ids, in config order.
func (c *Config) AssetIDs() []string {
	var ids []string
	for _, a := range c.Assets {
		ids = append(ids, a.ID)
	}
	return ids
}
