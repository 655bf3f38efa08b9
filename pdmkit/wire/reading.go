package wire

import (
	"encoding/json"
	"fmt"
	"strconv"
	"time"
)

// Version is the schema version this package writes and the only one it reads.
const Version = 1

// Reading is one sample of an asset's sensors.
type Reading struct {
	// Site is the plant or line the asset belongs to.
	Site string
	// Asset identifies the machine; it is the Kafka key of its readings.
	Asset string
	// Time is when the sensors were sampled, kept to the millisecond.
	Time time.Time
	// Seq is the per-asset sequence number, starting at 1 and increasing by one
	// per reading. Together with Asset it identifies a reading for
	// de-duplication.
	Seq uint64
	// Sensors maps a sensor name to its value.
	Sensors map[string]float64
	// Quality marks the sensors whose value is not plainly good, by name:
	// a mark of class QualityBad for a sensor left out of Sensors (its
	// source reported no usable value, and none is invented), of class
	// QualityUncertain or QualityStale for one kept in Sensors. Nil when
	// every value is good, and then absent from the wire form, so readings
	// without marks encode exactly as before the field existed.
	Quality map[string]string
}

// TimeLayout is RFC 3339 with milliseconds, in UTC.
const TimeLayout = "2006-01-02T15:04:05.000Z07:00"

// readingJSON is the wire form of a Reading.
type readingJSON struct {
	V       int                `json:"v"`
	Site    string             `json:"site"`
	Asset   string             `json:"asset"`
	TS      string             `json:"ts"`
	Seq     uint64             `json:"seq"`
	Sensors map[string]float64 `json:"sensors"`
	Quality map[string]string  `json:"quality,omitempty"`
	// sensorsChecked says the fast path validated the sensors in place and
	// left Sensors nil.
	sensorsChecked bool
}

// batchJSON is the wire form of a Batch.
type batchJSON struct {
	V        int               `json:"v"`
	Readings []json.RawMessage `json:"readings"`
}

// MarshalJSON encodes r in the versioned wire form. It fails on NaN or
// infinite sensor values, which JSON cannot carry.
func (r Reading) MarshalJSON() ([]byte, error) {
	return json.Marshal(readingJSON{
		V:       Version,
		Site:    r.Site,
		Asset:   r.Asset,
		TS:      r.Time.UTC().Format(TimeLayout),
		Seq:     r.Seq,
		Sensors: r.Sensors,
		Quality: r.Quality,
	})
}

// UnmarshalJSON decodes the wire form, refusing unknown versions.
func (r *Reading) UnmarshalJSON(b []byte) error {
	var j readingJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	if j.V != Version {
		return fmt.Errorf("%w: %d", ErrVersion, j.V)
	}
	t, err := time.Parse(time.RFC3339Nano, j.TS)
	if err != nil {
		return fmt.Errorf("%w: %q", ErrTimestamp, j.TS)
	}
	*r = Reading{Site: j.Site, Asset: j.Asset, Time: t.UTC(), Seq: j.Seq, Sensors: j.Sensors, Quality: nilIfEmpty(j.Quality)}
	return nil
}

// EncodeBatch encodes readings as one batch message.
func EncodeBatch(rs []Reading) ([]byte, error) {
	b := batchJSON{V: Version, Readings: make([]json.RawMessage, len(rs))}
	for i, r := range rs {
		enc, err := r.MarshalJSON()
		if err != nil {
			return nil, fmt.Errorf("reading %d: %w", i, err)
		}
		b.Readings[i] = enc
	}
	return json.Marshal(b)
}

// JoinBatch builds a batch message from readings already in wire form, such
// as the Raw of decoded items, without decoding them again.
func JoinBatch(raws [][]byte) []byte {
	n := len(`{"v":1,"readings":[]}`) + len(raws)
	for _, r := range raws {
		n += len(r)
	}
	out := make([]byte, 0, n)
	out = append(out, `{"v":`...)
	out = strconv.AppendInt(out, Version, 10)
	out = append(out, `,"readings":[`...)
	for i, r := range raws {
		if i > 0 {
			out = append(out, ',')
		}
		out = append(out, r...)
	}
	return append(out, "]}"...)
}
