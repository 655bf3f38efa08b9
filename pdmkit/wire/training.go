package wire

import (
	"encoding/json"
	"fmt"
	"time"
)

// TrainingRequest asks the trainer for a new model of an asset or a class
// of assets. It travels as JSON on TopicRetrain, keyed by the class (or the
// asset, which the trainer maps to its class), so one class's jobs run one
// at a time.
type TrainingRequest struct {
	// Site and Asset name the asset the request is about; Class, when set,
	// the class instead (a manual or scheduled job).
	Site  string `json:"site"`
	Asset string `json:"asset,omitempty"`
	Class string `json:"class,omitempty"`
	// Reason is why: drift (the scorer learnt a new normal), operator (an
	// operator said so), cold_start (a new asset has enough history),
	// schedule or manual.
	Reason string `json:"reason"`
	// By is who asked (a component or an operator).
	By string `json:"by,omitempty"`
	// At is when the request was made: a job that started after it
	// satisfies it, so a burst of requests for one class makes one job.
	At time.Time `json:"at"`
	// Since is, for drift and operator requests, when the asset's new
	// normal began: the trainer validates on the newest part of the
	// history since then and trains on the rest, so the candidate has
	// seen the new normal it is judged on.
	Since time.Time `json:"since,omitzero"`
}

// Reasons of a TrainingRequest.
const (
	ReasonDrift     = "drift"
	ReasonOperator  = "operator"
	ReasonColdStart = "cold_start"
	ReasonSchedule  = "schedule"
	ReasonManual    = "manual"
)

// Key is the request's Kafka key: its class, else its asset.
func (r TrainingRequest) Key() string {
	if r.Class != "" {
		return r.Class
	}
	return r.Asset
}

// DecodeTrainingRequest reads one request, refusing one that names
// neither an asset nor a class or has no time.
func DecodeTrainingRequest(b []byte) (TrainingRequest, error) {
	var r TrainingRequest
	if err := json.Unmarshal(b, &r); err != nil {
		return r, fmt.Errorf("training request: %w", err)
	}
	if r.Key() == "" || r.At.IsZero() {
		return r, fmt.Errorf("training request: needs an asset or a class and a time, got %+v", r)
	}
	return r, nil
}
