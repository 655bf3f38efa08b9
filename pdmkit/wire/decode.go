package wire

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/pdmstream/pdm/pdmkit/strictjson"
)

// Item is one reading of a decoded message.
type Item struct {
	// Reading is valid when Err is nil; otherwise it holds what could be read.
	Reading Reading
	// Raw is the reading's own JSON: the whole payload for a single reading,
	// the batch element otherwise. It aliases the payload.
	Raw []byte
	// Err is a *RejectError when the reading was refused.
	Err error
}

// envelope holds either form; "readings" present means a batch.
type envelope struct {
	V        int               `json:"v"`
	Readings []json.RawMessage `json:"readings"`
	readingJSON
}

// Decode parses a single reading or a batch and validates every reading at
// time now. A message-level problem (size, syntax, version, batch size)
// returns an error and no items. Otherwise every reading is returned as an
// Item, good or refused, so a batch with one bad reading still delivers the
// others.
func (l Limits) Decode(payload []byte, now time.Time) ([]Item, error) {
	if len(payload) > l.MaxPayload {
		return nil, reject(ErrOversize, -1, "%d bytes (limit %d)", len(payload), l.MaxPayload)
	}
	if items, err, ok := l.decodeFast(payload, now, false); ok {
		return items, err
	}
	return l.decodeStd(payload, now)
}

// Check validates payload exactly as Decode does, for a caller that passes
// the readings on as they are (the MQTT bridge): the items are the same,
// except that a reading's Sensors may be nil, and the items' strings
// may alias payload. It does less work than Decode: sensors are checked in
// place, without building maps.
func (l Limits) Check(payload []byte, now time.Time) ([]Item, error) {
	if len(payload) <= l.MaxPayload {
		if items, err, ok := l.decodeFast(payload, now, true); ok {
			return items, err
		}
	}
	return l.Decode(payload, now)
}

// decodeStd decodes with encoding/json. It defines what Decode means; the
// fast path must agree with it on every input it accepts.
func (l Limits) decodeStd(payload []byte, now time.Time) ([]Item, error) {
	var env envelope
	err := json.Unmarshal(payload, &env)
	var typeErr *json.UnmarshalTypeError
	switch {
	case errors.As(err, &typeErr) && env.Readings == nil && !strings.HasSuffix(typeErr.Field, "readings") && typeErr.Field != "v":
		// A single reading with a field of the wrong type: the message is
		// well-formed JSON, so it is one refused reading.
		env.V = Version
	case err != nil:
		return nil, reject(ErrMalformed, -1, "%v", err)
	}
	// A key given twice is read one way here and another way by a reader
	// that keeps the first: refused, since the bytes go on unchanged. A
	// batch's readings are checked one by one below.
	depth := -1
	if env.Readings != nil {
		depth = 1
	}
	if k, ok := strictjson.DuplicateKey(payload, depth); ok {
		return nil, reject(ErrMalformed, -1, "key %q given twice", clip(k))
	}
	if env.V != Version {
		return nil, reject(ErrVersion, -1, "v=%d (want %d)", env.V, Version)
	}
	if env.Readings == nil {
		if bytes.Contains(payload, []byte(`"readings"`)) {
			return nil, reject(ErrBatchSize, -1, "readings is null or empty")
		}
		item := Item{Raw: payload}
		item.Reading, item.Err = l.fromJSON(payload, &env.readingJSON, err, now, -1)
		return []Item{item}, nil
	}
	if len(env.Readings) == 0 || len(env.Readings) > l.MaxBatch {
		return nil, reject(ErrBatchSize, -1, "%d readings (limit 1..%d)", len(env.Readings), l.MaxBatch)
	}
	items := make([]Item, len(env.Readings))
	for i, raw := range env.Readings {
		var j readingJSON
		uerr := json.Unmarshal(raw, &j)
		if k, ok := strictjson.DuplicateKey(raw, -1); ok && uerr == nil {
			uerr = reject(ErrMalformed, i, "key %q given twice", clip(k))
		}
		if uerr == nil && j.V != Version {
			uerr = reject(ErrVersion, i, "v=%d (want %d)", j.V, Version)
		}
		items[i].Raw = raw
		items[i].Reading, items[i].Err = l.fromJSON(raw, &j, uerr, now, i)
	}
	return items, nil
}

// fromJSON turns a decoded wire reading into a Reading and validates it.
// raw is the reading's JSON, read again only to explain a decode error.
func (l Limits) fromJSON(raw []byte, j *readingJSON, decodeErr error, now time.Time, index int) (Reading, error) {
	r := Reading{Site: j.Site, Asset: j.Asset, Seq: j.Seq, Sensors: j.Sensors, Quality: nilIfEmpty(j.Quality)}
	if decodeErr != nil {
		var re *RejectError
		if errors.As(decodeErr, &re) {
			return r, re
		}
		var typeErr *json.UnmarshalTypeError
		if errors.As(decodeErr, &typeErr) && strings.HasSuffix(typeErr.Field, "sensors") {
			return r, reject(ErrValue, index, "%s", badSensor(raw))
		}
		if errors.As(decodeErr, &typeErr) && strings.HasSuffix(typeErr.Field, "quality") {
			return r, reject(ErrQuality, index, "quality is not an object of strings")
		}
		return r, reject(ErrMalformed, index, "%v", decodeErr)
	}
	if j.TS == "" {
		return r, reject(ErrTimestamp, index, "ts missing")
	}
	t, err := time.Parse(time.RFC3339Nano, j.TS)
	if err != nil {
		return r, reject(ErrTimestamp, index, "ts %q is not RFC 3339", clip(j.TS))
	}
	r.Time = t.UTC()
	if err := l.validateMeta(&r, now, index); err != nil {
		return r, err
	}
	if j.sensorsChecked {
		// Check leaves the fast path on a quality map (its marks are
		// checked against the sensor map), so there is none to check here.
		return r, nil
	}
	if err := l.validateSensors(r.Sensors, index); err != nil {
		return r, err
	}
	return r, l.validateQuality(r.Sensors, r.Quality, index)
}

// badSensor names the first sensor whose value is not a finite float64. It
// runs only after the fast decode failed, so its allocations do not matter.
func badSensor(raw []byte) string {
	var j struct {
		Sensors map[string]json.RawMessage `json:"sensors"`
	}
	if err := json.Unmarshal(raw, &j); err != nil {
		return "sensors is not an object of numbers"
	}
	// The first bad one in name order, so the message is always the same.
	bad, found := "", false
	for name, v := range j.Sensors {
		if _, err := strconv.ParseFloat(string(v), 64); (err != nil || len(v) == 0 || v[0] == '"') && (!found || name < bad) {
			bad, found = name, true
		}
	}
	if !found {
		return "sensors is not an object of numbers"
	}
	return fmt.Sprintf("sensor %q: %s is not a finite number", clip(bad), clip(string(j.Sensors[bad])))
}
