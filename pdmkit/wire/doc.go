// Package wire defines the messages that cross process boundaries in the
// predictive-maintenance pipeline: readings (single and batched), their
// validation, the MQTT topic names and the Kafka dead-letter headers.
//
// Invariants:
//   - Every message carries a schema version ("v"); decoders refuse versions
//     they do not know instead of guessing.
//   - A Reading that passes Validate has a site and asset usable as MQTT topic
//     levels and InfluxDB tags, a sequence number ≥ 1, a timestamp inside the
//     configured window around now, and 1..MaxSensors finite sensor values.
//   - Quality marks are optional and carried beside the values: a sensor
//     marked bad has no value in the reading (none is invented), one marked
//     uncertain or stale has its value. A reading without marks has no
//     "quality" key, so its bytes are those of the schema before marks.
//   - Encoding a valid Reading and decoding it again yields an equal Reading
//     (timestamps are kept to the millisecond).
package wire
