package sink

import (
	"math"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/pdmstream/pdm/scorer/internal/stream"
)

// appendScore appends s as JSON, the same document encoding/json makes of
// a stream.Score, without reflection: encoding scores was a sixth of the
// scorer's CPU. A non-finite number, which JSON cannot carry, is written
// as null. TestAppendScoreMatchesEncodingJSON keeps the two in step.
func appendScore(b []byte, s *stream.Score) []byte {
	b = append(b, `{"id":`...)
	b = appendString(b, s.ID)
	b = append(b, `,"site":`...)
	b = appendString(b, s.Site)
	b = append(b, `,"asset":`...)
	b = appendString(b, s.Asset)
	b = append(b, `,"seq":`...)
	b = strconv.AppendUint(b, s.Seq, 10)
	b = append(b, `,"ts":`...)
	b = appendTime(b, s.Time)
	b = append(b, `,"score":`...)
	b = appendFloat(b, s.Score)
	b = append(b, `,"alert":`...)
	b = strconv.AppendBool(b, s.Alert)
	b = append(b, `,"warming_up":`...)
	b = strconv.AppendBool(b, s.WarmingUp)
	if len(s.Contributions) > 0 {
		b = append(b, `,"contributions":[`...)
		for i, c := range s.Contributions {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"name":`...)
			b = appendString(b, c.Name)
			b = append(b, `,"share":`...)
			b = appendFloat(b, c.Share)
			b = append(b, '}')
		}
		b = append(b, ']')
	}
	if f := s.Forecast; f != nil {
		b = append(b, `,"forecast":{"ttf_seconds":`...)
		b = appendFloat(b, f.TimeToFailure)
		b = append(b, `,"ttf_low_seconds":`...)
		b = appendFloat(b, f.Low)
		b = append(b, `,"ttf_high_seconds":`...)
		b = appendFloat(b, f.High)
		b = append(b, `,"failure_at":`...)
		b = appendTime(b, f.FailureAt)
		b = append(b, '}')
	}
	b = append(b, `,"model":`...)
	b = appendString(b, s.Model)
	b = append(b, `,"version":`...)
	b = appendString(b, s.Version)
	if sh := s.Shadow; sh != nil {
		b = append(b, `,"shadow":{"version":`...)
		b = appendString(b, sh.Version)
		b = append(b, `,"score":`...)
		b = appendFloat(b, sh.Score)
		b = append(b, `,"alert":`...)
		b = strconv.AppendBool(b, sh.Alert)
		b = append(b, '}')
	}
	if s.Error != "" {
		b = append(b, `,"error":`...)
		b = appendString(b, s.Error)
	}
	b = append(b, `,"source":{"partition":`...)
	b = strconv.AppendInt(b, int64(s.Source.Partition), 10)
	b = append(b, `,"offset":`...)
	b = strconv.AppendInt(b, s.Source.Offset, 10)
	b = append(b, `,"kafka_ts":`...)
	b = appendTime(b, s.Source.Time)
	b = append(b, `},"scored_at":`...)
	b = appendTime(b, s.ScoredAt)
	if len(s.Sensors) > 0 {
		b = appendSensors(append(b, `,"sensors":`...), s.Sensors)
	}
	return append(b, '}')
}

// appendSensors writes m as encoding/json does, keys sorted.
func appendSensors(b []byte, m map[string]float64) []byte {
	var arr [16]string
	keys := arr[:0]
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	b = append(b, '{')
	for i, k := range keys {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(appendString(b, k), ':')
		b = appendFloat(b, m[k])
	}
	return append(b, '}')
}

func appendFloat(b []byte, v float64) []byte {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return append(b, "null"...)
	}
	return strconv.AppendFloat(b, v, 'g', -1, 64)
}

func appendTime(b []byte, t time.Time) []byte {
	b = append(b, '"')
	b = t.AppendFormat(b, time.RFC3339Nano)
	return append(b, '"')
}

// appendString writes s as a JSON string, escaping what JSON requires and
// replacing invalid UTF-8 as encoding/json does.
func appendString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				b = append(b, '\\', c)
			case c < 0x20:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			default:
				b = append(b, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, `\ufffd`...)
		} else {
			b = append(b, s[i:i+size]...)
		}
		i += size
	}
	return append(b, '"')
}
