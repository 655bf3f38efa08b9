package stacktest

import (
	"crypto/tls"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/pdmstream/pdm/pdmkit/tlsconf"
)

// Mosquitto is a Mosquitto broker of the test's own, run with the local
// stack's configuration (deployments/mosquitto/mosquitto.conf) on a free
// loopback port, its persistence in the test's temporary directory, so a
// test can kill and restart it without disturbing the shared stack. It is
// killed when the test ends.
type Mosquitto struct {
	t       testing.TB
	bin     string
	addr    string
	conf    string
	log     string
	secrets string // "" for an open broker
	proc    *exec.Cmd
	done    chan struct{}
}

// StartMosquitto starts an open broker (mosquitto.open.conf: plain TCP,
// anonymous) and waits until it accepts connections. Each override
// ("autosave_interval 1") replaces the configuration's line of that option.
func StartMosquitto(t testing.TB, overrides ...string) *Mosquitto {
	t.Helper()
	return startMosquitto(t, false, overrides)
}

// StartSecureMosquitto starts a broker configured as the secured stack
// (mosquitto.secure.conf): TLS only, users and passwords from
// deployments/stack/certs.sh run into the test's temporary directory, and
// the ACL deployments/mosquitto/auth.sh derives from acl.conf and
// gateways.txt. URL is then ssl://; Password and CAFile give what a client
// needs.
func StartSecureMosquitto(t testing.TB, overrides ...string) *Mosquitto {
	t.Helper()
	return startMosquitto(t, true, overrides)
}

func startMosquitto(t testing.TB, secure bool, overrides []string) *Mosquitto {
	t.Helper()
	skipShort(t)
	bin, err := exec.LookPath("mosquitto")
	if err != nil {
		if bin, err = exec.LookPath("/usr/sbin/mosquitto"); err != nil {
			t.Fatal("stacktest: mosquitto not installed (make up installs it)")
		}
	}
	root := RepoRoot(t)
	deploy := filepath.Join(root, "deployments")
	access := "mosquitto.open.conf"
	if secure {
		access = "mosquitto.secure.conf"
	}
	var tmpl []byte
	for _, name := range []string{"mosquitto.conf", access} {
		b, err := os.ReadFile(filepath.Join(deploy, "mosquitto", name))
		if err != nil {
			t.Fatal(err)
		}
		tmpl = append(append(tmpl, b...), '\n')
	}
	dir := t.TempDir()
	secrets, auth := filepath.Join(dir, "secrets"), filepath.Join(dir, "auth")
	if secure {
		for _, script := range [][]string{
			{filepath.Join(deploy, "stack", "certs.sh"), secrets},
			{filepath.Join(deploy, "mosquitto", "auth.sh"), secrets, auth},
		} {
			if out, err := exec.Command(script[0], script[1:]...).CombinedOutput(); err != nil {
				t.Fatalf("stacktest: %s: %v\n%s", filepath.Base(script[0]), err, out)
			}
		}
	}
	for _, d := range []string{"mosquitto/data", "logs"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	addr := FreeAddr(t)
	_, port, _ := net.SplitHostPort(addr)
	u, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	conf := strings.NewReplacer("@STACK_DIR@", dir, "@MQTT_PORT@", port, "@USER@", u.Username,
		"@SECRETS_DIR@", secrets, "@AUTH_DIR@", auth).Replace(string(tmpl))
	lines := strings.Split(conf, "\n")
	for _, o := range overrides {
		key, _, _ := strings.Cut(o, " ")
		found := false
		for i, l := range lines {
			if k, _, _ := strings.Cut(l, " "); k == key {
				lines[i], found = o, true
			}
		}
		if !found {
			lines = append(lines, o)
		}
	}
	conf = strings.Join(lines, "\n")
	m := &Mosquitto{t: t, bin: bin, addr: addr, conf: filepath.Join(dir, "mosquitto.conf"), log: filepath.Join(dir, "logs", "mosquitto.log")}
	if secure {
		m.secrets = secrets
	}
	if err := os.WriteFile(m.conf, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	m.start()
	t.Cleanup(m.Kill)
	return m
}

// URL is the broker's URL: ssl:// for a secured broker, tcp:// otherwise.
func (m *Mosquitto) URL() string {
	if m.secrets != "" {
		return "ssl://" + m.addr
	}
	return "tcp://" + m.addr
}

// CAFile is the PEM file of the CA that signed a secured broker's
// certificate.
func (m *Mosquitto) CAFile() string { return filepath.Join(m.secrets, "ca.pem") }

// TLS is the client TLS configuration that trusts a secured broker's CA,
// built through the tls block every service uses; nil for an open broker.
func (m *Mosquitto) TLS() *tls.Config {
	m.t.Helper()
	if m.secrets == "" {
		return nil
	}
	tc, err := tlsconf.Config{CAFile: m.CAFile()}.Client()
	if err != nil {
		m.t.Fatal(err)
	}
	return tc
}

// ClientOptions are paho options for this broker with a fresh client id:
// on a secured broker as user (with its password, over TLS), on an open
// one anonymous whatever user is.
func (m *Mosquitto) ClientOptions(user string) *mqtt.ClientOptions {
	m.t.Helper()
	o := mqtt.NewClientOptions().AddBroker(m.URL()).SetClientID(Unique("test"))
	if m.secrets != "" {
		o.SetUsername(user).SetPassword(m.Password(user)).SetTLSConfig(m.TLS())
	}
	return o
}

// Password returns the password of a secured broker's user (bridge,
// scorer, a gateway of gateways.txt).
func (m *Mosquitto) Password(user string) string {
	m.t.Helper()
	b, err := os.ReadFile(filepath.Join(m.secrets, "mqtt", user+".password"))
	if err != nil {
		m.t.Fatalf("stacktest: password of MQTT user %s: %v", user, err)
	}
	return strings.TrimSpace(string(b))
}

func (m *Mosquitto) start() {
	m.t.Helper()
	m.proc = exec.Command(m.bin, "-c", m.conf)
	dieWithTest(m.proc)
	if err := m.proc.Start(); err != nil {
		m.t.Fatalf("stacktest: start mosquitto: %v", err)
	}
	m.done = make(chan struct{})
	go func(cmd *exec.Cmd, done chan struct{}) { _ = cmd.Wait(); close(done) }(m.proc, m.done)
	Eventually(m.t, 10*time.Second, func() bool {
		select {
		case <-m.done:
			log, _ := os.ReadFile(m.log)
			m.t.Fatalf("stacktest: mosquitto exited:\n%s", log)
		default:
		}
		c, err := net.Dial("tcp", m.addr)
		if err == nil {
			c.Close()
		}
		return err == nil
	}, "mosquitto at %s did not come up", m.addr)
}

// Kill ends the broker with SIGKILL, as a crash would: what it had not
// saved is lost. Killing a stopped broker does nothing.
func (m *Mosquitto) Kill() { m.signal(os.Kill) }

// Stop ends the broker with SIGTERM, as a service manager would: it saves
// its sessions and exits.
func (m *Mosquitto) Stop() { m.signal(syscall.SIGTERM) }

func (m *Mosquitto) signal(sig os.Signal) {
	if m.proc == nil {
		return
	}
	_ = m.proc.Process.Signal(sig)
	<-m.done
	m.proc = nil
}

// Restart starts the stopped or killed broker again on its persistence
// file.
func (m *Mosquitto) Restart() {
	m.t.Helper()
	if m.proc != nil {
		m.t.Fatal("stacktest: mosquitto is running")
	}
	m.start()
}
