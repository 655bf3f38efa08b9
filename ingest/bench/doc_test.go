// Package bench measures the MQTT→Kafka bridge against the real local stack
// (`make bench`). Every figure is printed beside a baseline measured in the
// same run under the same load: a bare paho subscriber that only counts
// messages from the same broker. Nothing here is a pass/fail test.
package bench
