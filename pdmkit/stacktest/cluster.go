package stacktest

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/pdmstream/pdm/pdmkit/kafkaconn"
	"github.com/pdmstream/pdm/pdmkit/tlsconf"
)

// Cluster is an Apache Kafka cluster of the test's own: KRaft nodes, each
// broker and controller, started from the local stack's jars (make up
// resolves them) on free loopback ports with their data in the test's
// temporary directory. A test can kill and restart its brokers without
// disturbing the shared stack; the nodes are killed when the test ends.
type Cluster struct {
	t       testing.TB
	nodes   []*kafkaNode
	secrets string          // "" for an open cluster
	admin   *kafkaconn.Conn // how the helpers reach the brokers
}

type kafkaNode struct {
	id       int
	addr     string // the broker listener
	conf     string
	logs     string
	mu       sync.Mutex
	cmd      *exec.Cmd
	exited   chan struct{}
	javaArgs []string
}

// StartKafka starts an open cluster (PLAINTEXT, no authentication) of n
// nodes and waits until every broker answers and the controller quorum has
// a leader. Topics default to replication factor min(n, 3) and
// min.insync.replicas 2 from three nodes up.
func StartKafka(t testing.TB, n int) *Cluster {
	t.Helper()
	return startKafka(t, n, false)
}

// StartSecureKafka starts a cluster configured as the secured stack
// (deployments/kafka/server.secure.properties): SASL/SCRAM-SHA-512 over
// TLS on the broker listeners, the controller listener for the brokers'
// certificate only, and the users of deployments/stack/certs.sh (run into
// the test's temporary directory) created at format. Conn gives a user's
// way in.
func StartSecureKafka(t testing.TB, n int) *Cluster {
	t.Helper()
	return startKafka(t, n, true)
}

func startKafka(t testing.TB, n int, secure bool) *Cluster {
	t.Helper()
	skipShort(t)
	libs, log4j := kafkaJars(t)
	dir := t.TempDir()
	var (
		secureProps string
		scram       []string // StorageTool --add-scram arguments
	)
	c := &Cluster{t: t}
	if secure {
		c.secrets = filepath.Join(dir, "secrets")
		script := filepath.Join(RepoRoot(t), "deployments", "stack", "certs.sh")
		if out, err := exec.Command(script, c.secrets).CombinedOutput(); err != nil {
			t.Fatalf("stacktest: certs.sh: %v\n%s", err, out)
		}
		b, err := os.ReadFile(filepath.Join(RepoRoot(t), "deployments", "kafka", "server.secure.properties"))
		if err != nil {
			t.Fatal(err)
		}
		secureProps = strings.NewReplacer("@SECRETS_DIR@", c.secrets,
			"@KAFKA_ADMIN_PASSWORD@", c.Password("admin"),
			"@KAFKA_KEYSTORE_PASSWORD@", readSecret(t, filepath.Join(c.secrets, "kafka.p12.password"))).Replace(string(b))
		users, _ := filepath.Glob(filepath.Join(c.secrets, "kafka", "*.password"))
		for _, u := range users {
			name := strings.TrimSuffix(filepath.Base(u), ".password")
			scram = append(scram, "--add-scram", fmt.Sprintf("SCRAM-SHA-512=[name=%s,password=%s]", name, readSecret(t, u)))
		}
	}
	id := make([]byte, 16)
	_, _ = rand.Read(id)
	clusterID := base64.RawURLEncoding.EncodeToString(id)
	var voters []string
	ctrl := make([]string, n)
	for i := range n {
		ctrl[i] = FreeAddr(t)
		voters = append(voters, fmt.Sprintf("%d@%s", i+1, ctrl[i]))
	}
	rf, isr := min(n, 3), 1
	if n >= 3 {
		isr = 2
	}
	for i := range n {
		nd := &kafkaNode{id: i + 1, addr: FreeAddr(t), logs: filepath.Join(dir, fmt.Sprintf("node-%d", i+1))}
		nd.conf = filepath.Join(dir, fmt.Sprintf("node-%d.properties", i+1))
		props := strings.Join([]string{
			"process.roles=broker,controller",
			fmt.Sprintf("node.id=%d", nd.id),
			"controller.quorum.voters=" + strings.Join(voters, ","),
			"controller.listener.names=CONTROLLER",
			fmt.Sprintf("listeners=PLAINTEXT://%s,CONTROLLER://%s", nd.addr, ctrl[i]),
			"advertised.listeners=PLAINTEXT://" + nd.addr,
			"inter.broker.listener.name=PLAINTEXT",
			"listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
			"log.dirs=" + filepath.Join(nd.logs, "data"),
			"auto.create.topics.enable=false",
			"num.partitions=3",
			fmt.Sprintf("default.replication.factor=%d", rf),
			fmt.Sprintf("min.insync.replicas=%d", isr),
			fmt.Sprintf("offsets.topic.replication.factor=%d", rf),
			fmt.Sprintf("transaction.state.log.replication.factor=%d", rf),
			fmt.Sprintf("transaction.state.log.min.isr=%d", isr),
			fmt.Sprintf("share.coordinator.state.topic.replication.factor=%d", rf),
			fmt.Sprintf("share.coordinator.state.topic.min.isr=%d", isr),
			"offsets.topic.num.partitions=8",
			"group.initial.rebalance.delay.ms=0",
		}, "\n") + "\n"
		if secure {
			_, port, _ := strings.Cut(nd.addr, ":")
			_, cport, _ := strings.Cut(ctrl[i], ":")
			props += strings.NewReplacer("@KAFKA_PORT@", port, "@KAFKA_CONTROLLER_PORT@", cport).Replace(secureProps)
		}
		if err := os.MkdirAll(nd.logs, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(nd.conf, []byte(props), 0o644); err != nil {
			t.Fatal(err)
		}
		nd.javaArgs = []string{"-Xms256m", "-Xmx512m", "-XX:+UseG1GC", "-Djava.awt.headless=true",
			"-Dkafka.logs.dir=" + nd.logs, "-Dlog4j2.configurationFile=" + log4j, "-cp", libs + "/*"}
		c.nodes = append(c.nodes, nd)
	}
	// The storage tools run one JVM each: in parallel.
	errs := make(chan error, n)
	for _, nd := range c.nodes {
		go func() {
			// "=" keeps an id that starts with "-" (one in 64) from reading as a flag.
			args := append(append(append([]string{}, nd.javaArgs...), "kafka.tools.StorageTool", "format", "--cluster-id="+clusterID, "-c", nd.conf), scram...)
			if out, err := exec.Command("java", args...).CombinedOutput(); err != nil {
				errs <- fmt.Errorf("format node %d: %v\n%s", nd.id, err, out)
				return
			}
			errs <- nil
		}()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Fatalf("stacktest: %v", err)
		}
	}
	if secure {
		c.admin = c.Conn("admin")
	} else {
		c.admin = &kafkaconn.Conn{Brokers: c.Brokers()}
	}
	for i := range c.nodes {
		c.start(i)
	}
	t.Cleanup(func() {
		for i, nd := range c.nodes {
			c.Kill(i)
			if t.Failed() {
				for _, name := range []string{"kafka.out", "kafka.log"} {
					b, _ := os.ReadFile(filepath.Join(nd.logs, name))
					lines := strings.Split(strings.TrimSpace(string(b)), "\n")
					t.Logf("stacktest: Kafka node %d (%s), the end of its %s:\n%s", nd.id, nd.addr, name, strings.Join(lines[max(0, len(lines)-25):], "\n"))
				}
			}
		}
	})
	for i := range c.nodes {
		c.WaitBroker(i)
	}
	return c
}

// kafkaJars finds the local stack's Kafka jars and logging configuration.
func kafkaJars(t testing.TB) (libs, log4j string) {
	t.Helper()
	root := RepoRoot(t)
	libs = filepath.Join(root, ".stack", "kafka", "libs")
	if _, err := os.Stat(libs); err != nil {
		t.Fatalf("stacktest: Kafka jars not found at %s (make up resolves them): %v", libs, err)
	}
	return libs, filepath.Join(root, "deployments", "kafka", "log4j2.properties")
}

// RepoRoot is the repository root: the folder above the test's that holds
// go.work.
func RepoRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.work")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("stacktest: no go.work above the test's folder")
		}
		dir = parent
	}
}

// Brokers returns every broker's address.
func (c *Cluster) Brokers() []string {
	out := make([]string, len(c.nodes))
	for i, nd := range c.nodes {
		out[i] = nd.addr
	}
	return out
}

func (c *Cluster) start(i int) {
	nd := c.nodes[i]
	nd.mu.Lock()
	defer nd.mu.Unlock()
	out, err := os.OpenFile(filepath.Join(nd.logs, "kafka.out"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		c.t.Fatal(err)
	}
	nd.cmd = exec.Command("java", append(append([]string{}, nd.javaArgs...), "kafka.Kafka", nd.conf)...)
	nd.cmd.Stdout, nd.cmd.Stderr = out, out
	dieWithTest(nd.cmd)
	if err := nd.cmd.Start(); err != nil {
		out.Close()
		c.t.Fatalf("stacktest: start Kafka node %d: %v", nd.id, err)
	}
	nd.exited = make(chan struct{})
	go func(cmd *exec.Cmd, exited chan struct{}) {
		_ = cmd.Wait()
		out.Close()
		close(exited)
	}(nd.cmd, nd.exited)
}

// Kill ends node i with SIGKILL, as a crash would, and waits for it to
// exit. Killing a stopped node does nothing.
func (c *Cluster) Kill(i int) {
	nd := c.nodes[i]
	nd.mu.Lock()
	defer nd.mu.Unlock()
	if nd.cmd == nil {
		return
	}
	_ = nd.cmd.Process.Kill()
	<-nd.exited
	nd.cmd = nil
}

// Restart starts the killed node i again on its data and address and
// waits until it answers.
func (c *Cluster) Restart(i int) {
	c.t.Helper()
	c.start(i)
	c.WaitBroker(i)
}

// Leader is the index of the node that leads partition of topic, waiting
// up to a minute for a broker's metadata to name one.
func (c *Cluster) Leader(topic string, partition int) int {
	c.t.Helper()
	leader := -1
	var last any
	Eventually(c.t, time.Minute, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		md, err := c.admin.Client(10*time.Second).Metadata(ctx, &kafka.MetadataRequest{Topics: []string{topic}})
		if err != nil || len(md.Topics) != 1 {
			last = err
			return false
		}
		last = md.Topics[0]
		for _, p := range md.Topics[0].Partitions {
			for i, nd := range c.nodes {
				if p.ID == partition && nd.id == p.Leader.ID {
					leader = i
				}
			}
		}
		return leader >= 0
	}, "stacktest: no leader of %s/%d among the cluster's nodes: %v", topic, partition, func() any { return last })
	return leader
}

// WaitBroker waits up to two minutes until node i answers metadata
// requests with every broker of the cluster and a controller.
func (c *Cluster) WaitBroker(i int) {
	c.t.Helper()
	nd := c.nodes[i]
	Eventually(c.t, 2*time.Minute, func() bool {
		select {
		case <-nd.exited:
			c.t.Fatalf("stacktest: Kafka node %d exited; see %s", nd.id, filepath.Join(nd.logs, "kafka.out"))
		default:
		}
		conn, err := c.admin.Dialer(0).DialContext(context.Background(), "tcp", nd.addr)
		if err != nil {
			return false
		}
		defer conn.Close()
		brokers, err := conn.Brokers()
		if err != nil || len(brokers) < c.live() {
			return false
		}
		_, err = conn.Controller()
		return err == nil
	}, "Kafka node %d at %s did not come up", nd.id, nd.addr)
}

func (c *Cluster) live() int {
	n := 0
	for _, nd := range c.nodes {
		nd.mu.Lock()
		if nd.cmd != nil {
			n++
		}
		nd.mu.Unlock()
	}
	return n
}

// Topic creates a topic named prefix-<random> on the cluster, with the
// cluster's replication factor.
func (c *Cluster) Topic(prefix string, partitions int) string {
	c.t.Helper()
	name := Unique(prefix)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := createTopic(ctx, c.admin, name, partitions, min(len(c.nodes), 3), nil); err != nil {
		c.t.Fatalf("stacktest: create topic %s: %v", name, err)
	}
	return name
}

// Conn is user's way to the brokers: SCRAM-SHA-512 over TLS trusting the
// local CA on a secured cluster (user is then admin, ingest, scorer or
// trainer), plain and anonymous on an open one.
func (c *Cluster) Conn(user string) *kafkaconn.Conn {
	c.t.Helper()
	if c.secrets == "" {
		return &kafkaconn.Conn{Brokers: c.Brokers()}
	}
	return c.ConnWith(user, c.Password(user))
}

// Env is the environment that points a service process at the cluster in
// place of the shared stack's brokers, as user: its bootstrap list and, on
// a secured cluster, user's SCRAM credentials over TLS; on an open one no
// TLS and no SASL, whatever the test's environment holds for the stack.
func (c *Cluster) Env(user string) []string {
	c.t.Helper()
	env := []string{"PDM_KAFKA_BROKERS=" + strings.Join(c.Brokers(), ",")}
	if c.secrets == "" {
		return append(env, "PDM_KAFKA_TLS_CA_FILE=", "PDM_KAFKA_TLS_CERT_FILE=", "PDM_KAFKA_TLS_KEY_FILE=",
			"PDM_KAFKA_SASL_MECHANISM=", "PDM_KAFKA_SASL_USERNAME=", "PDM_KAFKA_SASL_PASSWORD=")
	}
	return append(env, "PDM_KAFKA_TLS_CA_FILE="+c.CAFile(), "PDM_KAFKA_SASL_MECHANISM="+kafkaconn.ScramSHA512,
		"PDM_KAFKA_SASL_USERNAME="+user, "PDM_KAFKA_SASL_PASSWORD="+c.Password(user))
}

// ConnWith is Conn with any password, to try a wrong one.
func (c *Cluster) ConnWith(user, password string) *kafkaconn.Conn {
	c.t.Helper()
	conn, err := kafkaconn.New(c.Brokers(), tlsconf.Config{CAFile: c.CAFile()},
		kafkaconn.SASL{Mechanism: kafkaconn.ScramSHA512, Username: user, Password: password})
	if err != nil {
		c.t.Fatal(err)
	}
	return conn
}

// CAFile is the PEM file of a secured cluster's CA.
func (c *Cluster) CAFile() string { return filepath.Join(c.secrets, "ca.pem") }

// Password is a secured cluster's password of user.
func (c *Cluster) Password(user string) string {
	c.t.Helper()
	return readSecret(c.t, filepath.Join(c.secrets, "kafka", user+".password"))
}

func readSecret(t testing.TB, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("stacktest: %v", err)
	}
	return strings.TrimSpace(string(b))
}
