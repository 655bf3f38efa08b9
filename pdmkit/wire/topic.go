package wire

import "strings"

// TopicRoot is the first levels of every MQTT topic of schema v1.
const TopicRoot = "pdm/v1"

// Kafka topic names of the pipeline.
const (
	TopicReadings    = "pdm.readings"
	TopicReadingsDLQ = "pdm.readings.dlq"
	TopicScores      = "pdm.scores"
	TopicAlerts      = "pdm.alerts"
	// TopicRetrain carries TrainingRequests to the trainer, keyed by asset
	// or class.
	TopicRetrain = "pdm.retrain"
)

// ReadingsTopic is where an asset's readings are published.
func ReadingsTopic(site, asset string) string { return assetTopic(site, asset, "readings") }

// StatusTopic carries the retained online/offline status.
func StatusTopic(site, asset string) string { return assetTopic(site, asset, "status") }

// AlertsTopic carries the retained current alert state of an asset.
func AlertsTopic(site, asset string) string { return assetTopic(site, asset, "alerts") }

// DeliveredTopic carries the ingest bridge's confirmations that Kafka holds
// an asset's readings (Delivered), for the agent that published them.
func DeliveredTopic(site, asset string) string { return assetTopic(site, asset, "delivered") }

// DeliveredFilter matches the confirmations of every asset of a site.
func DeliveredFilter(site string) string { return TopicRoot + "/" + site + "/+/delivered" }

// IngestJoinedTopic is where a bridge says it has (re)subscribed to the
// readings (IngestJoined): readings published while no bridge was
// subscribed were dropped by the broker, so agents send again what has not
// been confirmed.
const IngestJoinedTopic = "pdm/ingest/joined"

// ReadingsFilter matches the readings of every asset of every site.
const ReadingsFilter = TopicRoot + "/+/+/readings"

// DeeperFilter returns the filter of the topics one or more levels deeper
// than a readings filter ending in "/readings" (pdm/v1/+/+/readings gives
// pdm/v1/+/+/+/+/#, which matches pdm/v1/s/a/b/readings): readings
// published there are misaddressed, and a subscriber that takes them can
// refuse them with a reason instead of letting them vanish unseen.
func DeeperFilter(readings string) (string, bool) {
	base, ok := strings.CutSuffix(readings, "/readings")
	if !ok || strings.Contains(base, "#") {
		return "", false
	}
	return base + "/+/+/#", true
}

// MatchFilter reports whether topic matches the MQTT topic filter, with
// its single-level "+" and multi-level "#" wildcards.
func MatchFilter(filter, topic string) bool {
	fs, ts := strings.Split(filter, "/"), strings.Split(topic, "/")
	for i, f := range fs {
		switch {
		case f == "#":
			return true
		case i >= len(ts):
			return false
		case f != "+" && f != ts[i]:
			return false
		}
	}
	return len(fs) == len(ts)
}

func assetTopic(site, asset, kind string) string {
	return TopicRoot + "/" + site + "/" + asset + "/" + kind
}

// ParseTopic splits pdm/v1/{site}/{asset}/{kind}.
func ParseTopic(topic string) (site, asset, kind string, err error) {
	parts := strings.Split(topic, "/")
	if len(parts) != 5 || parts[0]+"/"+parts[1] != TopicRoot || !ValidID(parts[2]) || !ValidID(parts[3]) {
		return "", "", "", reject(ErrTopic, -1, "%q is not %s/{site}/{asset}/{kind}", clip(topic), TopicRoot)
	}
	return parts[2], parts[3], parts[4], nil
}
