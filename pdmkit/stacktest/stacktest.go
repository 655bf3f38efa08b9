// Package stacktest connects integration tests to the real local stack
// (Mosquitto, Kafka, InfluxDB) started by deployments/stack/stack.sh.
//
// Addresses come from the environment that deployments/stack/env.sh exports,
// with the stack's default ports as fallback. Every helper skips the test
// under -short and fails it, with the address it tried, when the server does
// not answer: a missing server is an error, not a reason to pass.
// Each test gets its own Kafka topics and InfluxDB database, removed at
// cleanup, so tests can run in parallel against one stack.
package stacktest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/segmentio/kafka-go"

	"github.com/pdmstream/pdm/pdmkit/config"
	"github.com/pdmstream/pdm/pdmkit/kafkaconn"
	"github.com/pdmstream/pdm/pdmkit/tlsconf"
)

// Env returns the value of key or def.
func Env(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

// MQTTURL returns the broker URL (PDM_MQTT_URL) after checking it accepts TCP.
func MQTTURL(t testing.TB) string {
	t.Helper()
	u := Env("PDM_MQTT_URL", "tcp://127.0.0.1:1883")
	pu, err := url.Parse(u)
	if err != nil {
		t.Fatalf("stacktest: PDM_MQTT_URL %q: %v", u, err)
	}
	dial(t, "mosquitto", pu.Host)
	return u
}

// MQTTSecurity is the mqtt section's credentials and tls block as the
// services read them from the environment (PDM_MQTT_USERNAME,
// PDM_MQTT_PASSWORD or PDM_MQTT_PASSWORD_FILE, PDM_MQTT_TLS_*).
type MQTTSecurity struct {
	Username string         `yaml:"username" env:"PDM_MQTT_USERNAME"`
	Password string         `yaml:"password" env:"PDM_MQTT_PASSWORD" secret:"true"`
	TLS      tlsconf.Config `yaml:"tls" env:"PDM_MQTT_TLS"`
}

// MQTTOptions are paho options for the shared broker with the
// environment's credentials and TLS (none on an open stack) and a fresh
// client id, for tests that make their own MQTT clients.
func MQTTOptions(t testing.TB) *mqtt.ClientOptions {
	t.Helper()
	o := mqtt.NewClientOptions().AddBroker(MQTTURL(t)).SetClientID(Unique("test"))
	var sec MQTTSecurity
	FromEnv(t, &sec)
	tc, err := sec.TLS.Client()
	if err != nil {
		t.Fatalf("stacktest: mqtt tls: %v", err)
	}
	if tc != nil {
		o.SetTLSConfig(tc)
	}
	if sec.Username != "" {
		o.SetUsername(sec.Username).SetPassword(sec.Password)
	}
	return o
}

// FromEnv applies the environment deployments/stack/env.sh exports (the
// stack's addresses, credentials and TLS) to a service's config, as its
// main would: cfg is a pointer to the config holding its defaults. Tests
// that run a service in process start from it and then give the service
// topics, groups and client ids of their own.
func FromEnv(t testing.TB, cfg any) {
	t.Helper()
	skipShort(t)
	if err := config.Load("", cfg); err != nil {
		t.Fatalf("stacktest: %v", err)
	}
}

// KafkaBrokers returns the bootstrap brokers (PDM_KAFKA_BROKERS).
func KafkaBrokers(t testing.TB) []string {
	t.Helper()
	brokers := strings.Split(Env("PDM_KAFKA_BROKERS", "127.0.0.1:9092"), ",")
	dial(t, "kafka", brokers[0])
	return brokers
}

// KafkaSecurity is the kafka section's tls and sasl blocks as the services
// read them from the environment (PDM_KAFKA_TLS_*, PDM_KAFKA_SASL_*, which
// deployments/stack/env.sh exports for the secured stack).
type KafkaSecurity struct {
	TLS  tlsconf.Config `yaml:"tls" env:"PDM_KAFKA_TLS"`
	SASL kafkaconn.SASL `yaml:"sasl" env:"PDM_KAFKA_SASL"`
}

// KafkaConn is the way to the shared stack's brokers with the
// environment's security, for tests that make their own readers, writers
// and clients. The tests of a process share one Conn per configuration,
// and so one transport: a topic Topic creates is known to their writers at
// once.
func KafkaConn(t testing.TB) *kafkaconn.Conn {
	t.Helper()
	brokers := KafkaBrokers(t)
	var sec KafkaSecurity
	FromEnv(t, &sec)
	key := fmt.Sprint(brokers, sec)
	conns.Lock()
	defer conns.Unlock()
	if c, ok := conns.m[key]; ok {
		return c
	}
	c, err := kafkaconn.New(brokers, sec.TLS, sec.SASL)
	if err != nil {
		t.Fatalf("stacktest: %v", err)
	}
	conns.m[key] = c
	return c
}

var conns = struct {
	sync.Mutex
	m map[string]*kafkaconn.Conn
}{m: map[string]*kafkaconn.Conn{}}

// InfluxURL returns the InfluxDB URL (PDM_INFLUX_URL) after a ping.
func InfluxURL(t testing.TB) string {
	t.Helper()
	u := Env("PDM_INFLUX_URL", "http://127.0.0.1:8086")
	skipShort(t)
	resp, err := http.Get(u + "/ping")
	if err != nil {
		t.Fatalf("stacktest: influxdb at %s does not answer (run `make up`): %v", u, err)
	}
	resp.Body.Close()
	return u
}

// InfluxToken returns the shared InfluxDB's token, PDM_INFLUX_TOKEN or
// the file PDM_INFLUX_TOKEN_FILE names ("" when authentication is off).
func InfluxToken(t testing.TB) string {
	t.Helper()
	var sec struct {
		Token string `yaml:"token" env:"PDM_INFLUX_TOKEN" secret:"true"`
	}
	FromEnv(t, &sec)
	return sec.Token
}

// influxDo sends req to InfluxDB with the shared stack's token.
func influxDo(t testing.TB, req *http.Request) (*http.Response, error) {
	t.Helper()
	if tok := InfluxToken(t); tok != "" {
		req.Header.Set("Authorization", "Token "+tok)
	}
	return http.DefaultClient.Do(req)
}

// influxPost posts a form or a body to the shared InfluxDB.
func influxPost(t testing.TB, u, contentType string, body io.Reader) (*http.Response, error) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, u, body)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", contentType)
	return influxDo(t, req)
}

func skipShort(t testing.TB) {
	t.Helper()
	if testing.Short() {
		t.Skip("stacktest: integration test skipped under -short")
	}
}

func dial(t testing.TB, name, addr string) {
	t.Helper()
	skipShort(t)
	c, err := net.DialTimeout("tcp", addr, 3*time.Second)
	if err != nil {
		t.Fatalf("stacktest: %s at %s does not answer (run `make up`): %v", name, addr, err)
	}
	c.Close()
}

// Unique returns prefix followed by a random suffix, for topic, database and
// client names that no other test uses.
func Unique(prefix string) string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return prefix + "-" + hex.EncodeToString(b)
}

// Topic creates a fresh Kafka topic named prefix-<random> with the given
// partitions and topic configs ("max.message.bytes=4194304", ...) and
// deletes it when the test ends.
func Topic(t testing.TB, prefix string, partitions int, configs ...string) string {
	t.Helper()
	conn := KafkaConn(t)
	name := Unique(prefix)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cfg := map[string]string{}
	for _, c := range configs {
		k, v, ok := strings.Cut(c, "=")
		if !ok {
			t.Fatalf("stacktest: topic config %q is not key=value", c)
		}
		cfg[k] = v
	}
	if err := CreateTopic(ctx, conn, name, partitions, cfg); err != nil {
		t.Fatalf("stacktest: create topic %s: %v", name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, _ = conn.Client(10*time.Second).DeleteTopics(ctx, &kafka.DeleteTopicsRequest{Topics: []string{name}})
	})
	return name
}

// CreateTopic creates a topic of replication factor 1 (the local stack has
// one broker) and waits until every partition has a leader. An existing
// topic is not an error.
func CreateTopic(ctx context.Context, conn *kafkaconn.Conn, name string, partitions int, configs map[string]string) error {
	return createTopic(ctx, conn, name, partitions, 1, configs)
}

func createTopic(ctx context.Context, conn *kafkaconn.Conn, name string, partitions, replication int, configs map[string]string) error {
	client := conn.Client(20 * time.Second)
	var entries []kafka.ConfigEntry
	for k, v := range configs {
		entries = append(entries, kafka.ConfigEntry{ConfigName: k, ConfigValue: v})
	}
	resp, err := client.CreateTopics(ctx, &kafka.CreateTopicsRequest{Topics: []kafka.TopicConfig{{
		Topic: name, NumPartitions: partitions, ReplicationFactor: replication, ConfigEntries: entries,
	}}})
	if err != nil {
		return fmt.Errorf("create topics: %w", err)
	}
	if e := resp.Errors[name]; e != nil && !strings.Contains(e.Error(), "already exists") {
		return fmt.Errorf("create topic %s: %w", name, e)
	}
	for {
		meta, err := client.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{name}})
		if err == nil && len(meta.Topics) == 1 && meta.Topics[0].Error == nil && len(meta.Topics[0].Partitions) == partitions && allLeaders(meta.Topics[0].Partitions) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("topic %s has no leaders yet: %w", name, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func allLeaders(ps []kafka.Partition) bool {
	for _, p := range ps {
		if p.Leader.ID < 0 || p.Error != nil {
			return false
		}
	}
	return true
}

// InfluxBucket creates a fresh InfluxDB 1.8 database and returns the
// influxdb-client-go bucket name for it ("db/autogen"). The database is
// dropped when the test ends.
func InfluxBucket(t testing.TB) string {
	t.Helper()
	base := InfluxURL(t)
	db := strings.ReplaceAll(Unique("test"), "-", "_")
	InfluxQL(t, base, "CREATE DATABASE "+db)
	t.Cleanup(func() { InfluxQL(t, base, "DROP DATABASE "+db) })
	// The write endpoint can answer "database not found" for a moment
	// after the database is created on a loaded machine: wait until a
	// write is taken.
	Eventually(t, 10*time.Second, func() bool {
		resp, err := influxPost(t, base+"/write?db="+db, "text/plain", strings.NewReader("stacktest_ready v=1 1"))
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusNoContent
	}, "database %s not writable", db)
	if resp, err := InfluxQuery(t, base, url.Values{"db": {db}, "q": {"DROP MEASUREMENT stacktest_ready"}}); err == nil {
		resp.Body.Close()
	}
	return db + "/autogen"
}

// InfluxWrite writes line-protocol lines (millisecond timestamps) to
// bucket through the v2 write endpoint, 5,000 lines a request.
func InfluxWrite(t testing.TB, base, bucket string, lines []string) {
	t.Helper()
	for len(lines) > 0 {
		n := min(len(lines), 5000)
		u := fmt.Sprintf("%s/api/v2/write?bucket=%s&precision=ms", base, url.QueryEscape(bucket))
		resp, err := influxPost(t, u, "text/plain", strings.NewReader(strings.Join(lines[:n], "\n")))
		if err != nil {
			t.Fatalf("stacktest: influx write: %v", err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode/100 != 2 {
			t.Fatalf("stacktest: influx write: %s: %s", resp.Status, body)
		}
		lines = lines[n:]
	}
}

const formType = "application/x-www-form-urlencoded"

// InfluxQuery posts an InfluxQL query (q, db, epoch, ...) to the 1.x
// /query endpoint at base with the shared stack's token; the caller reads
// and closes the response.
func InfluxQuery(t testing.TB, base string, params url.Values) (*http.Response, error) {
	t.Helper()
	return influxPost(t, base+"/query", formType, strings.NewReader(params.Encode()))
}

// InfluxQL runs one InfluxQL statement through the 1.x /query endpoint.
func InfluxQL(t testing.TB, base, q string) {
	t.Helper()
	resp, err := InfluxQuery(t, base, url.Values{"q": {q}})
	if err != nil {
		t.Fatalf("stacktest: influxql %q: %v", q, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("stacktest: influxql %q: %s", q, resp.Status)
	}
}

// Eventually polls cond every 50 ms until it returns true or timeout passes,
// then fails the test with the message. Arguments are values of the moment
// Eventually was called; an argument that is a func() any is called when
// the message is made, to show the state at the failure:
//
//	stacktest.Eventually(t, time.Minute, done, "%d scores", func() any { return scores.len() })
func Eventually(t testing.TB, timeout time.Duration, cond func() bool, format string, args ...any) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			vals := []any{timeout}
			for _, a := range args {
				if f, ok := a.(func() any); ok {
					a = f()
				}
				vals = append(vals, a)
			}
			t.Fatalf("after %s: "+format, vals...)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// ForgetSession ends the shared broker's persistent session of clientID
// by connecting once with a clean session, so a test's bridge leaves no
// queue behind to collect later traffic. Call it after the client has
// stopped.
func ForgetSession(t testing.TB, clientID string) {
	t.Helper()
	c := mqtt.NewClient(MQTTOptions(t).SetClientID(clientID).SetCleanSession(true))
	if tok := c.Connect(); tok.WaitTimeout(10*time.Second) && tok.Error() == nil {
		c.Disconnect(100)
	}
}

// MQTTDropped returns the count of messages the broker opts reach dropped
// because a client's inflight or queue limits were reached ($SYS,
// retained). Mosquitto publishes the counter only once it is non-zero, so
// silence means 0.
func MQTTDropped(t testing.TB, opts *mqtt.ClientOptions) int64 {
	t.Helper()
	got := make(chan int64, 1)
	c := mqtt.NewClient(opts.SetClientID(Unique("sys")))
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("stacktest: connect for $SYS: %v", tok.Error())
	}
	defer c.Disconnect(100)
	tok := c.Subscribe("$SYS/broker/publish/messages/dropped", 0, func(_ mqtt.Client, m mqtt.Message) {
		n, err := strconv.ParseInt(string(m.Payload()), 10, 64)
		if err == nil {
			select {
			case got <- n:
			default:
			}
		}
	})
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("stacktest: subscribe $SYS: %v", tok.Error())
	}
	select {
	case n := <-got:
		return n
	case <-time.After(2 * time.Second): // sys_interval is 1 s in our config
		return 0
	}
}

// FreeAddr returns a loopback address that nothing listens on right now,
// for a process the test starts.
func FreeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// Build compiles the given main packages (import paths, resolved through
// go.work) into a temporary directory and returns each binary's path, in
// order. Go's build cache keeps repeated builds to a link.
func Build(t testing.TB, pkgs ...string) []string {
	t.Helper()
	dir := t.TempDir()
	out := make([]string, len(pkgs))
	for i, pkg := range pkgs {
		if b, err := exec.Command("go", "build", "-o", dir+"/", pkg).CombinedOutput(); err != nil {
			t.Fatalf("stacktest: build %s: %v\n%s", pkg, err, b)
		}
		out[i] = filepath.Join(dir, path.Base(pkg))
	}
	return out
}
