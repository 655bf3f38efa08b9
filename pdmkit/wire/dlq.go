package wire

// Headers of a dead-letter record. The record's value is the refused bytes,
// unchanged; these headers say why and where from, so a record can be
// inspected and replayed without loss.
const (
	// HeaderErrorCode is the rejection Code.
	HeaderErrorCode = "pdm-error-code"
	// HeaderErrorReason is the human-readable reason.
	HeaderErrorReason = "pdm-error-reason"
	// HeaderSource names where the bytes came from: an MQTT topic.
	HeaderSource = "pdm-source"
	// HeaderBatchIndex is the reading's index in its batch, absent for a
	// whole message.
	HeaderBatchIndex = "pdm-batch-index"
	// HeaderReceivedAt is when the bridge received the message (RFC 3339).
	HeaderReceivedAt = "pdm-received-at"
	// HeaderTruncatedFrom is the original length of a refused message too
	// large to keep whole; the value holds its first Limits.MaxPayload bytes.
	HeaderTruncatedFrom = "pdm-truncated-from"
)
