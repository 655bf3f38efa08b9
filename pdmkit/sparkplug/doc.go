// Package sparkplug carries pipeline readings as Sparkplug B 3.0 (Eclipse
// Sparkplug, protobuf payloads of sparkplugpb) on
// spBv1.0/{group}/{NBIRTH|NDEATH|DBIRTH|DDATA|DDEATH}/{edge node}/{device}:
// Edge encodes an edge node's births, data and deaths from wire.Readings,
// and Host is the receiving side's state machine that turns DDATA back into
// the same wire.Readings.
//
// Mapping: group = site, edge node = the edge agent's id, device = asset,
// metric name = sensor name. A reading's per-asset Seq (the pipeline's
// de-duplication key with the asset) travels as the metric "pdm/seq"
// (UInt64) beside the sensors; the metrics of one DDATA that share a
// timestamp are one reading, so one DDATA carries one reading or a batch.
// Sensors are Double metrics; Host also takes the other numeric types and
// Boolean (0 or 1), and skips metrics of other types.
//
// Invariants of Host:
//   - DDATA becomes readings only with the births of its edge node and
//     device seen, in the same unbroken run of seq numbers (0..255, wrapping
//     after 255): data before a birth, with an alias its birth did not
//     define, or after a gap is refused with a wire.RejectError
//     (no_birth, unknown_alias, seq_gap), and a rebirth is asked for.
//   - NDEATH ends a node only when its bdSeq is the one of the node's
//     NBIRTH, so a late will of an earlier connection does not end the
//     current one.
//   - Encoding readings with Edge and decoding them with Host gives the
//     readings back unchanged (times in milliseconds).
package sparkplug
