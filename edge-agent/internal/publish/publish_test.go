package publish

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"
	"time"
)

func TestEnvelopeRoundTrip(t *testing.T) {
	for _, e := range []Envelope{
		{Topic: "pdm/v1/s/a/readings", Count: 7, LastSeq: 1 << 40, Payload: []byte(`{"v":1}`)},
		{Topic: "t", Count: 1, LastSeq: 1},
	} {
		got, err := DecodeEnvelope(e.Encode())
		if err != nil {
			t.Fatal(err)
		}
		if got.Topic != e.Topic || got.Count != e.Count || got.LastSeq != e.LastSeq || !bytes.Equal(got.Payload, e.Payload) {
			t.Fatalf("got %+v, want %+v", got, e)
		}
	}
	for _, bad := range [][]byte{nil, {0x80}, {1, 1, 50, 'x'}} {
		if _, err := DecodeEnvelope(bad); !errors.Is(err, ErrRecord) {
			t.Errorf("%v: %v", bad, err)
		}
	}
}

func TestStatusPayload(t *testing.T) {
	var s Status
	if err := json.Unmarshal(StatusPayload("gw-1", "online", []string{"p1"}, time.Unix(0, 0)), &s); err != nil {
		t.Fatal(err)
	}
	if s.Agent != "gw-1" || s.Status != "online" || len(s.Assets) != 1 {
		t.Fatalf("%+v", s)
	}
}
