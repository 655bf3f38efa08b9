package sparkplug

import (
	"testing"
	"time"

	"github.com/pdmstream/pdm/pdmkit/wire"
)

// FuzzSparkplugDecode feeds any payload, on each message type, to a host
// that has seen a birth: nothing panics, every refusal has a code, and
// readings come only from DDATA, with the topic's site and asset and a
// pdm/seq.
func FuzzSparkplugDecode(f *testing.F) {
	e := NewEdge("plant1", "gw-1")
	e.Connect(t0)
	nbirth := e.Birth(t0)
	first, _ := e.Data([]wire.Reading{reading("pump-1", 1)}, t0)
	next, _ := e.Data([]wire.Reading{reading("pump-1", 2), reading("pump-1", 3)}, t0)
	f.Add(uint8(0), next[0].Payload)
	f.Add(uint8(1), first[0].Payload)
	f.Add(uint8(2), e.Deaths(t0)[0].Payload)
	f.Add(uint8(3), nbirth.Payload)
	f.Add(uint8(0), ddata(3, seqMetric(1, 1), aliased(9, 1)))
	f.Add(uint8(0), []byte{0x12, 0x02, 0x10, 0x01})
	kinds := []string{"DDATA/gw-1/pump-1", "DBIRTH/gw-1/pump-1", "DDEATH/gw-1/pump-1", "NBIRTH/gw-1", "NDEATH/gw-1", "NDATA/gw-1", "NCMD/gw-1"}
	f.Fuzz(func(t *testing.T, kind uint8, payload []byte) {
		h := NewHost(HostOptions{})
		for _, m := range append([]Message{nbirth}, first[0]) {
			if res := h.Handle(m.Topic, m.Payload, t0); res.Err != nil {
				t.Fatal(res.Err)
			}
		}
		topic := "spBv1.0/plant1/" + kinds[int(kind)%len(kinds)]
		res := h.Handle(topic, payload, t0.Add(time.Minute))
		if res.Err != nil {
			if wire.CodeOf(res.Err) == "internal" {
				t.Fatalf("refusal without a code: %v", res.Err)
			}
			if len(res.Readings) != 0 {
				t.Fatalf("refused with readings: %v", res.Err)
			}
			return
		}
		if len(res.Readings) > 0 && res.Topic.Type != DData {
			t.Fatalf("readings from %s", res.Topic.Type)
		}
		for _, r := range res.Readings {
			if r.Site != "plant1" || r.Asset != "pump-1" || r.Sensors == nil {
				t.Fatalf("reading %+v", r)
			}
		}
	})
}
