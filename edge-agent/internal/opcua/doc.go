// Package opcua is the edge agent's OPC UA source: each configured asset is
// one session and one subscription on the server, with one monitored item
// (a node's Value attribute) per sensor. It implements source.Source, so
// its readings take the same path as every other source's: validation,
// batch, spool, QoS 1 publish.
//
// How notifications become readings:
//
//   - A reading is made for each data-change notification the subscription
//     delivers, so at most one per publishing interval, and none while no
//     value changes (OPC UA servers send a value only when it changes).
//   - It holds the latest value of every item the server has sent in this
//     session: items that changed in the notification and those held from
//     earlier ones. A value the server has not sent is never in a reading.
//   - Status codes are carried through as wire quality marks: Good values
//     are plain; Uncertain ones keep their value and are marked with the
//     status name ("UncertainLastUsableValue"); Bad ones are left out of the
//     sensors and marked with theirs ("BadSensorFailure"), as are items the
//     server refused to monitor ("BadNodeIdUnknown") and values that are no
//     number ("BadTypeMismatch"). A held value older than stale_after is
//     marked "stale".
//   - A session silent for opcua.timeout reads every item's value: a value
//     that differs from what it holds (a notification lost, or left out by
//     the server) is taken and makes a reading; a failed read means the
//     server hangs.
//   - A notification in which no item has a usable value yields no reading
//     (a missed cycle, source.ErrMissed), since a reading needs a value.
//   - A failed connection attempt, or a session lost (the server restarted,
//     the connection broke, the subscription ended, a probe of a silent
//     session failed), is a missed cycle. The source forgets what the
//     session held, waits pdmkit/retry's backoff and connects, subscribes
//     and monitors again; the new subscription's initial values are the
//     first reading after it.
//
// Readings are stamped by the agent when they are made, not with the
// server's source timestamps, so a controller's clock cannot push them out
// of the wire's time window.
package opcua
