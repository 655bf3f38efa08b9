package e2e

import (
	"encoding/base64"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/pdmstream/pdm/pdmkit/model/modeltest"
	"github.com/pdmstream/pdm/pdmkit/stacktest"
)

// startScorer starts `scorer serve` with the write token, its own topics
// named after prefix, no MQTT, and InfluxDB at influxURL (none when
// empty); it returns the scorer's address once it is ready.
func startScorer(t *testing.T, bin, prefix string, brokers []string, influxURL, bucket string) string {
	t.Helper()
	addr := stacktest.FreeAddr(t)
	influx := []string{"-influx.url", ""}
	if influxURL != "" {
		influx = []string{"-influx.url", influxURL, "-influx.bucket", bucket}
	}
	args := append([]string{"serve", "-log.level", "warn", "-kafka.brokers", strings.Join(brokers, ","),
		"-kafka.group", stacktest.Unique(prefix + "-scorer"), "-kafka.readings", stacktest.Topic(t, prefix+"-readings", 1),
		"-kafka.scores", stacktest.Topic(t, prefix+"-scores", 1), "-kafka.alerts", stacktest.Topic(t, prefix+"-alerts", 1),
		"-kafka.models", stacktest.Topic(t, prefix+"-models", 1, "cleanup.policy=compact"), "-mqtt.url", "", "-http.addr", addr}, influx...)
	stacktest.Start(t, []string{"PDM_API_TOKEN=" + token, scorerTrust()}, bin, args...)
	stacktest.WaitReady(t, "http://"+addr+"/v2/health/ready")
	return addr
}

// scorerTrust makes a scorer trust the artifacts trainerKey signs.
func scorerTrust() string {
	return "PDM_MODELS_TRUSTED_KEYS=" + base64.StdEncoding.EncodeToString(modeltest.Public)
}

// trainerKey makes a trainer sign its artifacts with modeltest's key,
// passed as a secret in the environment.
func trainerKey(t *testing.T) string {
	t.Helper()
	return "PDM_SIGNING_KEY=" + modeltest.PrivateKeyPEM(t)
}

// pumpLines is one healthy pump's history in InfluxDB line protocol: rows
// readings a second apart, the last a second before end; the load cycles
// every 10 minutes, and flow and vibration follow it.
func pumpLines(site, asset string, rows int, end time.Time) []string {
	lines := make([]string, 0, rows)
	for i := range rows {
		at := end.Add(time.Duration(i-rows) * time.Second)
		load := 60 + 10*math.Sin(2*math.Pi*float64(i)/600) + 0.3*math.Sin(float64(i)*1.7)
		lines = append(lines, fmt.Sprintf("readings,site=%s,asset=%s flow=%.3f,load=%.3f,vibration=%.4f,seq=%di %d",
			site, asset, 2*load+0.5*math.Sin(float64(i)*2.3), load, 1+0.01*load+0.01*math.Sin(float64(i)*3.1), i+1, at.UnixMilli()))
	}
	return lines
}
