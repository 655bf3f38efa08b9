package publish

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/pdmstream/pdm/pdmkit/sparkplug"
	"github.com/pdmstream/pdm/pdmkit/wire"
)

// sparkplugFramer publishes the spooled readings as Sparkplug B 3.0 of
// edge node node in group: NBIRTH on every connection, a DBIRTH before an
// asset's first DDATA on it, NDEATH as the will, DDEATHs and NDEATH on a
// clean stop, and the births again on a rebirth request (NCMD). Sparkplug
// numbers messages per connection, so encoding happens here, at publish
// time: what is sent again after a reconnect is numbered on the new
// connection, after its births.
type sparkplugFramer struct {
	edge     *sparkplug.Edge
	commands string
}

// NewSparkplug returns the framer of Sparkplug B with group = site and
// edge node = the agent id.
func NewSparkplug(site, agentID string) Framer {
	return &sparkplugFramer{
		edge:     sparkplug.NewEdge(site, agentID),
		commands: sparkplug.Topic{Group: site, Type: sparkplug.NCmd, Node: agentID}.String(),
	}
}

func (f *sparkplugFramer) Connect(now time.Time) Session {
	// The specification wants a clean session of an MQTT 3.1.1 edge node;
	// nothing is lost by it, since what was in flight is sent again from
	// the spool.
	return Session{Will: message(f.edge.Connect(now)), Commands: f.commands, CleanSession: true}
}

func (f *sparkplugFramer) Online(now time.Time) []Message {
	return []Message{message(f.edge.Birth(now))}
}

func (f *sparkplugFramer) Frame(env Envelope, now time.Time) ([]Message, error) {
	var rs []wire.Reading
	if env.Count == 1 {
		var r wire.Reading
		if err := json.Unmarshal(env.Payload, &r); err != nil {
			return nil, fmt.Errorf("spooled reading: %w", err)
		}
		rs = []wire.Reading{r}
	} else {
		var b struct {
			Readings []wire.Reading `json:"readings"`
		}
		if err := json.Unmarshal(env.Payload, &b); err != nil {
			return nil, fmt.Errorf("spooled batch: %w", err)
		}
		rs = b.Readings
	}
	ms, err := f.edge.Data(rs, now)
	return messages(ms), err
}

func (f *sparkplugFramer) Command(payload []byte, now time.Time) []Message {
	if !sparkplug.IsRebirth(payload) {
		return nil
	}
	return messages(f.edge.Rebirth(now))
}

func (f *sparkplugFramer) Offline(now time.Time) []Message {
	return messages(f.edge.Deaths(now))
}

func message(m sparkplug.Message) Message { return Message{Topic: m.Topic, Payload: m.Payload} }

func messages(ms []sparkplug.Message) []Message {
	out := make([]Message, len(ms))
	for i, m := range ms {
		out[i] = message(m)
	}
	return out
}
