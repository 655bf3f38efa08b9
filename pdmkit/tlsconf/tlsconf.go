// Package tlsconf is the one `tls` block of every service's configuration:
// the same keys for the MQTT and Kafka clients and the HTTP server.
//
// A section embeds it with an environment prefix, and its variables follow:
//
//	TLS tlsconf.Config `yaml:"tls" env:"PDM_MQTT_TLS"`
//
// reads PDM_MQTT_TLS_CA_FILE, PDM_MQTT_TLS_CERT_FILE, PDM_MQTT_TLS_KEY_FILE
// and PDM_MQTT_TLS_SERVER_NAME. An empty block means plain TCP.
package tlsconf

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
)

// Config names PEM files. A client trusts CAFile (the system roots when it is
// empty) and presents CertFile/KeyFile when both are set; a server presents
// CertFile/KeyFile and, with CAFile, asks clients for certificates signed by it.
type Config struct {
	CAFile     string `yaml:"ca_file" env:"_CA_FILE" help:"PEM file of the CA to trust; empty with no certificate: plain TCP"`
	CertFile   string `yaml:"cert_file" env:"_CERT_FILE" help:"PEM certificate to present"`
	KeyFile    string `yaml:"key_file" env:"_KEY_FILE" help:"PEM private key of cert_file"`
	ServerName string `yaml:"server_name" env:"_SERVER_NAME" help:"name the server's certificate must hold (default: the host dialled)"`
}

// Enabled reports whether the block asks for TLS at all.
func (c Config) Enabled() bool { return c.CAFile != "" || c.CertFile != "" || c.KeyFile != "" }

// Client is the configuration a client dials with: nil (plain TCP) when the
// block is empty.
func (c Config) Client() (*tls.Config, error) {
	if !c.Enabled() {
		return nil, nil
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: c.ServerName}
	if c.CAFile != "" {
		pool, err := loadPool(c.CAFile)
		if err != nil {
			return nil, err
		}
		tc.RootCAs = pool
	}
	if err := c.loadPair(tc, false); err != nil {
		return nil, err
	}
	return tc, nil
}

// Server is the configuration a listener serves with: nil (plain) when the
// block is empty; a certificate and key are then required.
func (c Config) Server() (*tls.Config, error) {
	if !c.Enabled() {
		return nil, nil
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if err := c.loadPair(tc, true); err != nil {
		return nil, err
	}
	if c.CAFile != "" {
		pool, err := loadPool(c.CAFile)
		if err != nil {
			return nil, err
		}
		tc.ClientCAs = pool
		tc.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return tc, nil
}

func (c Config) loadPair(tc *tls.Config, required bool) error {
	if c.CertFile == "" && c.KeyFile == "" && !required {
		return nil
	}
	if c.CertFile == "" || c.KeyFile == "" {
		return errors.New("tls: cert_file and key_file go together")
	}
	pair, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
	if err != nil {
		return fmt.Errorf("tls: %w", err)
	}
	tc.Certificates = []tls.Certificate{pair}
	return nil
}

func loadPool(path string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("tls: ca_file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("tls: ca_file %s holds no PEM certificate", path)
	}
	return pool, nil
}
