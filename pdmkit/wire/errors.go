package wire

import (
	"errors"
	"fmt"
)

// Sentinel errors; a *RejectError wraps exactly one of them, so callers can
// test with errors.Is and count by Code.
var (
	// ErrOversize: the payload is larger than Limits.MaxPayload.
	ErrOversize = errors.New("payload too large")
	// ErrMalformed: the payload is not JSON of the expected shape.
	ErrMalformed = errors.New("malformed payload")
	// ErrVersion: the schema version is missing or unknown.
	ErrVersion = errors.New("unknown schema version")
	// ErrBatchSize: a batch holds no readings or more than Limits.MaxBatch.
	ErrBatchSize = errors.New("bad batch size")
	// ErrID: site or asset is empty, too long or uses characters outside [A-Za-z0-9._-].
	ErrID = errors.New("bad site or asset id")
	// ErrSeq: the sequence number is missing (0) or above MaxSeq.
	ErrSeq = errors.New("bad sequence number")
	// ErrTimestamp: the timestamp is missing, unparsable, or too far from now.
	ErrTimestamp = errors.New("bad timestamp")
	// ErrSensors: the sensor map is empty, too large, or has a bad name.
	ErrSensors = errors.New("bad sensor map")
	// ErrValue: a sensor value is not a finite number.
	ErrValue = errors.New("bad sensor value")
	// ErrTopic: the reading's site or asset differs from the topic it came on.
	ErrTopic = errors.New("topic mismatch")
	// ErrNoBirth: Sparkplug data of an edge node or device whose birth the
	// receiver has not seen (or that died, or lost messages since), so its
	// aliases cannot be trusted.
	ErrNoBirth = errors.New("no sparkplug birth")
	// ErrSeqGap: a Sparkplug message's seq is not the one after its edge
	// node's previous message: messages were lost or reordered.
	ErrSeqGap = errors.New("sparkplug seq gap")
	// ErrAlias: Sparkplug data names a metric alias (or name) its birth did
	// not define.
	ErrAlias = errors.New("unknown sparkplug metric")
	// ErrQuality: the quality map is too large, names a bad sensor, holds a
	// mark of no known class, or contradicts the sensor map (a bad value
	// that is present, an uncertain or stale one that is absent).
	ErrQuality = errors.New("bad quality mark")
)

// Code is a short, stable name for a rejection reason, used as a metric label
// and a dead-letter header.
type Code string

var codes = map[error]Code{
	ErrOversize:  "oversize",
	ErrMalformed: "malformed",
	ErrVersion:   "version",
	ErrBatchSize: "batch_size",
	ErrID:        "bad_id",
	ErrSeq:       "bad_seq",
	ErrTimestamp: "bad_timestamp",
	ErrSensors:   "bad_sensors",
	ErrValue:     "bad_value",
	ErrTopic:     "topic_mismatch",
	ErrNoBirth:   "no_birth",
	ErrSeqGap:    "seq_gap",
	ErrAlias:     "unknown_alias",
	ErrQuality:   "bad_quality",
}

// Codes lists every rejection code, for pre-registering metric labels.
func Codes() []Code {
	out := make([]Code, 0, len(codes))
	for _, c := range codes {
		out = append(out, c)
	}
	return out
}

// RejectError says why a message or one reading of a batch was refused.
type RejectError struct {
	// Kind is one of the sentinel errors above.
	Kind error
	// Index is the reading's position in its batch, or -1 for the message.
	Index int
	// Detail names the field and value at fault.
	Detail string
}

func (e *RejectError) Error() string {
	if e.Index >= 0 {
		return fmt.Sprintf("reading %d: %v: %s", e.Index, e.Kind, e.Detail)
	}
	return fmt.Sprintf("%v: %s", e.Kind, e.Detail)
}

func (e *RejectError) Unwrap() error { return e.Kind }

// Code returns the stable code of the rejection.
func (e *RejectError) Code() Code { return codes[e.Kind] }

// CodeOf returns the rejection code of err, or "internal" when err is not a
// rejection.
func CodeOf(err error) Code {
	var re *RejectError
	if errors.As(err, &re) {
		return re.Code()
	}
	return "internal"
}

// Reject returns a *RejectError of kind (one of the sentinels above) for
// the message as a whole (Index -1), for decoders of other wire forms.
func Reject(kind error, format string, args ...any) *RejectError {
	return reject(kind, -1, format, args...)
}

func reject(kind error, index int, format string, args ...any) *RejectError {
	return &RejectError{Kind: kind, Index: index, Detail: fmt.Sprintf(format, args...)}
}
