package wire

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Delivered is the payload of DeliveredTopic: every reading of the asset
// with a sequence number up to Seq that the bridge took is in Kafka, as a
// reading or as a dead letter. The agent keeps its readings in its spool
// until a confirmation covers them, so a broker that loses what it
// acknowledged (a crash before its store was saved, a shared subscription
// it did not restore) loses nothing.
//
// Confirmations are cumulative by sequence number, which is exact for one
// bridge (it writes an asset's readings in order). With several bridges
// in a share group, one bridge's confirmation may cover a reading another
// still holds unacknowledged; the broker's session keeps that one.
type Delivered struct {
	Seq uint64 `json:"seq"`
}

// IngestJoined is the payload of IngestJoinedTopic.
type IngestJoined struct {
	Bridge string    `json:"bridge"`
	Time   time.Time `json:"time"`
	// Filter is the readings filter the bridge subscribed to: an agent
	// none of whose readings it matches ignores the message, so a bridge
	// of another site or pipeline on the same broker makes it send
	// nothing again. Empty: every agent.
	Filter string `json:"filter,omitempty"`
}

// DecodeDelivered parses a Delivered payload.
func DecodeDelivered(b []byte) (Delivered, error) {
	var d Delivered
	if err := json.Unmarshal(b, &d); err != nil {
		return d, fmt.Errorf("delivered: %w", err)
	}
	if d.Seq == 0 {
		return d, errors.New("delivered: no seq")
	}
	return d, nil
}
