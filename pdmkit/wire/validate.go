package wire

import (
	"math"
	"strings"
	"time"
)

// Limits bounds what Validate and Decode accept. The zero value is not
// useful; start from DefaultLimits.
type Limits struct {
	// MaxPayload is the largest message in bytes. Default 1 MiB.
	MaxPayload int
	// MaxBatch is the most readings one batch may hold. Default 10,000.
	MaxBatch int
	// MaxSensors is the most sensors one reading may hold. Default 256.
	MaxSensors int
	// MaxPast is how far before now a timestamp may be. Default 30 days, so an
	// edge agent may replay a month of spooled readings.
	MaxPast time.Duration
	// MaxFuture is how far after now a timestamp may be. Default 1 hour, for
	// gateway clocks that drift.
	MaxFuture time.Duration
}

// DefaultLimits returns the documented defaults.
func DefaultLimits() Limits {
	return Limits{
		MaxPayload: 1 << 20,
		MaxBatch:   10_000,
		MaxSensors: 256,
		MaxPast:    30 * 24 * time.Hour,
		MaxFuture:  time.Hour,
	}
}

// MaxIDLen is the longest site, asset or sensor name.
const MaxIDLen = 64

// ValidID reports whether s can name a site, asset or sensor: 1..64
// characters from [A-Za-z0-9._-], so it is safe as an MQTT topic level, a
// Kafka key, an InfluxDB tag or field and a Prometheus label value.
func ValidID(s string) bool {
	if len(s) == 0 || len(s) > MaxIDLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !idChar(s[i]) {
			return false
		}
	}
	return true
}

func idChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-'
}

// Sanitize maps s onto the ValidID alphabet: surrounding space is trimmed,
// other characters outside it become '_', and it is cut to MaxIDLen. The
// result is a valid ID unless it is empty.
func Sanitize(s string) string {
	b := []byte(strings.TrimSpace(s))
	for i, c := range b {
		if !idChar(c) {
			b[i] = '_'
		}
	}
	return string(b[:min(len(b), MaxIDLen)])
}

// reservedSensors are names the historian uses for its own fields.
var reservedSensors = map[string]bool{"seq": true, "time": true}

// ValidSensor reports whether name can name a sensor: a ValidID that is
// not one of the names the historian keeps for itself (seq, time).
func ValidSensor(name string) bool { return ValidID(name) && !reservedSensors[name] }

// Validate checks r against the limits at time now. The error is a
// *RejectError with Index -1.
func (l Limits) Validate(r *Reading, now time.Time) error {
	if err := l.validateMeta(r, now, -1); err != nil {
		return err
	}
	if err := l.validateSensors(r.Sensors, -1); err != nil {
		return err
	}
	return l.validateQuality(r.Sensors, r.Quality, -1)
}

// validateMeta checks everything but the sensors.
// MaxSeq is the largest sequence number: 2^63−1, so that every store
// (InfluxDB's integer fields, Kafka tooling, JSON readers that parse
// numbers as int64) holds it exactly.
const MaxSeq = math.MaxInt64

func (l Limits) validateMeta(r *Reading, now time.Time, index int) error {
	if !ValidID(r.Site) {
		return reject(ErrID, index, "site %q", clip(r.Site))
	}
	if !ValidID(r.Asset) {
		return reject(ErrID, index, "asset %q", clip(r.Asset))
	}
	if r.Seq == 0 {
		return reject(ErrSeq, index, "seq is 0 or missing")
	}
	if r.Seq > MaxSeq {
		return reject(ErrSeq, index, "seq %d is above %d", r.Seq, uint64(MaxSeq))
	}
	if r.Time.IsZero() {
		return reject(ErrTimestamp, index, "ts missing")
	}
	if d := now.Sub(r.Time); d > l.MaxPast {
		return reject(ErrTimestamp, index, "ts %s is %s before now (limit %s)", r.Time.Format(TimeLayout), d.Round(time.Second), l.MaxPast)
	}
	if d := r.Time.Sub(now); d > l.MaxFuture {
		return reject(ErrTimestamp, index, "ts %s is %s after now (limit %s)", r.Time.Format(TimeLayout), d.Round(time.Second), l.MaxFuture)
	}
	return nil
}

func (l Limits) validateSensors(sensors map[string]float64, index int) error {
	if len(sensors) == 0 {
		return reject(ErrSensors, index, "no sensors")
	}
	if len(sensors) > l.MaxSensors {
		return reject(ErrSensors, index, "%d sensors (limit %d)", len(sensors), l.MaxSensors)
	}
	// Report the first bad sensor in name order, so the same reading always
	// gets the same error whatever the map's iteration order.
	bad, found := "", false
	for name, v := range sensors {
		if (!ValidID(name) || reservedSensors[name] || math.IsNaN(v) || math.IsInf(v, 0)) && (!found || name < bad) {
			bad, found = name, true
		}
	}
	if !found {
		return nil
	}
	if !ValidID(bad) || reservedSensors[bad] {
		return reject(ErrSensors, index, "sensor name %q", clip(bad))
	}
	return reject(ErrValue, index, "sensor %q is %v", bad, sensors[bad])
}

// clip shortens hostile input before it goes into an error message.
func clip(s string) string {
	if len(s) > 80 {
		return s[:80] + "…"
	}
	return s
}
