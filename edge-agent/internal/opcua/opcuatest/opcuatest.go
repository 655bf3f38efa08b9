// Package opcuatest gives tests a real OPC UA server (gopcua's server
// package) on a free loopback port: a namespace of variables whose values
// and status codes the test sets, and a Stop and Start on the same port,
// which is what a server restart looks like to a client (its session and
// subscriptions are gone).
package opcuatest

import (
	"context"
	"crypto/rsa"
	"fmt"
	"io"
	"log"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/gopcua/opcua/id"
	"github.com/gopcua/opcua/server"
	"github.com/gopcua/opcua/ua"

	"github.com/pdmstream/pdm/pdmkit/stacktest"
)

// Namespace is the name of the test variables' namespace; it is namespace
// index 1 on the server, so variable "x" is node "ns=1;s=x".
const Namespace = "urn:pdm:test"

// Server is an OPC UA server whose variables keep their values across a
// Stop and Start, like a controller's data behind a restarted server.
type Server struct {
	t    testing.TB
	port int // the clients' port; the server listens on a private one behind a proxy
	opt  Options

	mu    sync.Mutex
	vals  map[string]*ua.DataValue
	names []string
	srv   *server.Server
	stop  func() // the proxy's
}

var quietOnce sync.Once

// Options give the server a certificate.
type Options struct {
	// Certificate (DER) and Key make the server present a certificate in
	// its endpoints and list Basic256Sha256 Sign and SignAndEncrypt
	// endpoints beside None. (gopcua v0.8.0's server lists them but cannot
	// open such a channel: it does not decrypt the OpenSecureChannel
	// request, so clients time out.)
	Certificate []byte
	Key         *rsa.PrivateKey
	// Advertise lists more host:port addresses the server lists endpoints
	// for, for a test that puts its own relay in front of it (the server
	// answers GetEndpoints only with the endpoints of the URL asked for).
	Advertise []string
}

// New starts a server with one Double variable per name, each 0 with
// status Good until the test sets it.
func New(t testing.TB, opt Options, names ...string) *Server {
	t.Helper()
	if testing.Short() {
		t.Skip("OPC UA server test skipped under -short")
	}
	quietOnce.Do(func() {
		if !testing.Verbose() {
			log.SetOutput(io.Discard) // the server package logs its node set import with the standard logger
		}
	})
	s := &Server{t: t, port: freePort(t), opt: opt, vals: map[string]*ua.DataValue{}, names: names}
	for _, n := range names {
		s.vals[n] = good(0)
	}
	s.Start()
	t.Cleanup(s.Stop)
	return s
}

// Endpoint is the server's URL.
func (s *Server) Endpoint() string { return fmt.Sprintf("opc.tcp://127.0.0.1:%d", s.port) }

// NodeID is the node id of variable name, as a config names it.
func NodeID(name string) string { return "ns=1;s=" + name }

// Set gives variable name a Good value and notifies its monitored items.
func (s *Server) Set(name string, v float64) {
	s.SetValue(name, &ua.DataValue{
		EncodingMask: ua.DataValueValue | ua.DataValueStatusCode | ua.DataValueSourceTimestamp | ua.DataValueServerTimestamp,
		Value:        ua.MustVariant(v), Status: ua.StatusGood, SourceTimestamp: time.Now(), ServerTimestamp: time.Now(),
	})
}

// SetStatus gives variable name a status code; with a value for an
// Uncertain code, without one for a Bad code, as servers send them.
func (s *Server) SetStatus(name string, code ua.StatusCode, v float64) {
	dv := &ua.DataValue{
		EncodingMask: ua.DataValueStatusCode | ua.DataValueSourceTimestamp | ua.DataValueServerTimestamp,
		Status:       code, SourceTimestamp: time.Now(), ServerTimestamp: time.Now(),
	}
	if code&0xC0000000 == 0x40000000 {
		dv.EncodingMask |= ua.DataValueValue
		dv.Value = ua.MustVariant(v)
	}
	s.SetValue(name, dv)
}

// SetValue sets variable name to any data value and notifies its
// monitored items.
func (s *Server) SetValue(name string, dv *ua.DataValue) {
	s.mu.Lock()
	if _, ok := s.vals[name]; !ok {
		s.mu.Unlock()
		s.t.Fatalf("opcuatest: no variable %q", name)
	}
	s.vals[name] = dv
	srv := s.srv
	s.mu.Unlock()
	if srv != nil {
		srv.ChangeNotification(ua.NewStringNodeID(1, name))
	}
}

// Start starts the server on its port (again, after Stop).
func (s *Server) Start() {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.srv != nil {
		return
	}
	// The server listens on a private port and advertises the clients'
	// one; clients reach it through a proxy, which Stop closes with every
	// connection, as a dying process would. (gopcua's server.Close leaves
	// clients' connections open for up to 10 s.)
	private := freePort(s.t)
	opts := []server.Option{
		server.EndPoint("127.0.0.1", private), // the first is where it listens
		server.EndPoint("127.0.0.1", s.port),
		server.EnableSecurity("None", ua.MessageSecurityModeNone),
		server.EnableAuthMode(ua.UserTokenTypeAnonymous),
	}
	for _, a := range s.opt.Advertise {
		host, port, err := net.SplitHostPort(a)
		p, perr := strconv.Atoi(port)
		if err != nil || perr != nil {
			s.t.Fatalf("opcuatest: advertise %q: want host:port", a)
		}
		opts = append(opts, server.EndPoint(host, p))
	}
	if s.opt.Certificate != nil {
		opts = append(opts,
			server.Certificate(s.opt.Certificate), server.PrivateKey(s.opt.Key),
			server.EnableSecurity("Basic256Sha256", ua.MessageSecurityModeSign),
			server.EnableSecurity("Basic256Sha256", ua.MessageSecurityModeSignAndEncrypt),
			server.EnableAuthMode(ua.UserTokenTypeUserName),
		)
	}
	srv := server.New(opts...)
	ns := server.NewNodeNameSpace(srv, Namespace)
	objects := ns.Objects()
	root, _ := srv.Namespace(0)
	root.Objects().AddRef(objects, id.HasComponent, true)
	for _, name := range s.names {
		n := server.NewVariableNode(ua.NewStringNodeID(ns.ID(), name), name, func() *ua.DataValue {
			s.mu.Lock()
			defer s.mu.Unlock()
			return s.vals[name]
		})
		ns.AddNode(n)
		objects.AddRef(n, id.HasComponent, true)
	}
	if err := srv.Start(context.Background()); err != nil {
		s.t.Fatalf("opcuatest: start server on port %d: %v", private, err)
	}
	s.srv = srv
	s.stop = stacktest.Proxy(s.t, fmt.Sprintf("127.0.0.1:%d", s.port), fmt.Sprintf("127.0.0.1:%d", private))
}

// Stop ends the server: the clients' connections are reset, their sessions
// and subscriptions are gone, and the port refuses connections until Start.
func (s *Server) Stop() {
	s.mu.Lock()
	srv, stop := s.srv, s.stop
	s.srv, s.stop = nil, nil
	s.mu.Unlock()
	if srv == nil {
		return
	}
	stop()
	srv.Close()
}

func good(v float64) *ua.DataValue {
	return &ua.DataValue{EncodingMask: ua.DataValueValue | ua.DataValueStatusCode, Value: ua.MustVariant(v), Status: ua.StatusGood}
}

func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}
