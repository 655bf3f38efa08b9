// Package modbustest runs a real Modbus TCP server (simonvetter/modbus's)
// on a free loopback port for the edge agent's tests: register tables per
// unit id that the test sets, a log of every request served, a hook to
// delay or refuse requests, and Stop/Start to take it away and back.
// Addresses nobody set answer "illegal data address", as a real device's
// unmapped registers do.
package modbustest

import (
	"io"
	"log"
	"math"
	"net"
	"sync"
	"testing"
	"time"

	mb "github.com/simonvetter/modbus"
)

// Request is one read the server answered (or refused).
type Request struct {
	Unit     uint8
	Table    string // holding, input, coil or discrete
	Addr     uint16
	Quantity uint16
}

// Server is a Modbus TCP server under a test.
type Server struct {
	t    testing.TB
	addr string
	srv  *mb.ModbusServer

	mu       sync.Mutex
	regs     map[key]uint16
	bits     map[key]bool
	requests []Request
	hook     func(Request) (time.Duration, error)
}

type key struct {
	unit  uint8
	table string
	addr  uint16
}

// Start listens on a free loopback port; the server stops at cleanup. The
// test is skipped under -short, like every test with a server.
func Start(t testing.TB) *Server {
	t.Helper()
	if testing.Short() {
		t.Skip("modbus server test skipped under -short")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	s := &Server{t: t, addr: addr, regs: map[key]uint16{}, bits: map[key]bool{}}
	s.srv, err = mb.NewServer(&mb.ServerConfiguration{
		URL: "tcp://" + addr, Timeout: 30 * time.Second, MaxClients: 16, Logger: log.New(io.Discard, "", 0),
	}, (*handler)(s))
	if err != nil {
		t.Fatal(err)
	}
	s.Start()
	t.Cleanup(func() { s.srv.Stop() })
	return s
}

// Addr is host:port of the server.
func (s *Server) Addr() string { return s.addr }

// Start listens again after Stop, on the same address.
func (s *Server) Start() {
	s.t.Helper()
	if err := s.srv.Start(); err != nil {
		s.t.Fatalf("modbus server %s: %v", s.addr, err)
	}
}

// Stop closes the listener and every connection.
func (s *Server) Stop() {
	s.t.Helper()
	if err := s.srv.Stop(); err != nil {
		s.t.Fatalf("stop modbus server: %v", err)
	}
}

// SetRegisters sets registers of table "holding" or "input" of unit from
// addr on.
func (s *Server) SetRegisters(unit uint8, table string, addr uint16, values ...uint16) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, v := range values {
		s.regs[key{unit, table, addr + uint16(i)}] = v
	}
}

// SetBits sets bits of table "coil" or "discrete" of unit from addr on.
func (s *Server) SetBits(unit uint8, table string, addr uint16, values ...bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, v := range values {
		s.bits[key{unit, table, addr + uint16(i)}] = v
	}
}

// OnRequest sets a hook called before each read is answered: the server
// waits the duration it returns, then answers with its error (a modbus
// exception such as mb.ErrServerDeviceBusy) if not nil. nil removes it.
func (s *Server) OnRequest(hook func(Request) (time.Duration, error)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.hook = hook
}

// Requests returns the reads served so far, in order.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.requests...)
}

// ResetRequests forgets the reads served so far.
func (s *Server) ResetRequests() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests = nil
}

// Float32 is v as two registers, high word first (big word and byte order).
func Float32(v float32) []uint16 { return Uint32(math.Float32bits(v)) }

// Uint32 is v as two registers, high word first.
func Uint32(v uint32) []uint16 { return []uint16{uint16(v >> 16), uint16(v)} }

// handler answers the server's requests from the Server's tables.
type handler Server

func (h *handler) begin(r Request) error {
	s := (*Server)(h)
	s.mu.Lock()
	s.requests = append(s.requests, r)
	hook := s.hook
	s.mu.Unlock()
	if hook == nil {
		return nil
	}
	d, err := hook(r)
	time.Sleep(d)
	return err
}

func (h *handler) registers(r Request) ([]uint16, error) {
	if err := h.begin(r); err != nil {
		return nil, err
	}
	s := (*Server)(h)
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]uint16, r.Quantity)
	for i := range out {
		v, ok := s.regs[key{r.Unit, r.Table, r.Addr + uint16(i)}]
		if !ok {
			return nil, mb.ErrIllegalDataAddress
		}
		out[i] = v
	}
	return out, nil
}

func (h *handler) bitValues(r Request) ([]bool, error) {
	if err := h.begin(r); err != nil {
		return nil, err
	}
	s := (*Server)(h)
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]bool, r.Quantity)
	for i := range out {
		v, ok := s.bits[key{r.Unit, r.Table, r.Addr + uint16(i)}]
		if !ok {
			return nil, mb.ErrIllegalDataAddress
		}
		out[i] = v
	}
	return out, nil
}

func (h *handler) HandleCoils(req *mb.CoilsRequest) ([]bool, error) {
	if req.IsWrite {
		return nil, mb.ErrIllegalFunction
	}
	return h.bitValues(Request{req.UnitId, "coil", req.Addr, req.Quantity})
}

func (h *handler) HandleDiscreteInputs(req *mb.DiscreteInputsRequest) ([]bool, error) {
	return h.bitValues(Request{req.UnitId, "discrete", req.Addr, req.Quantity})
}

func (h *handler) HandleHoldingRegisters(req *mb.HoldingRegistersRequest) ([]uint16, error) {
	if req.IsWrite {
		return nil, mb.ErrIllegalFunction
	}
	return h.registers(Request{req.UnitId, "holding", req.Addr, req.Quantity})
}

func (h *handler) HandleInputRegisters(req *mb.InputRegistersRequest) ([]uint16, error) {
	return h.registers(Request{req.UnitId, "input", req.Addr, req.Quantity})
}
