package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"math/big"
	"net"
	"strings"
	"time"
)

// selfSignedValidity is how long an ephemeral certificate is valid.
const selfSignedValidity = 30 * 24 * time.Hour

// tlsFiles says where a server's certificate comes from.
type tlsFiles struct {
	cert, key  string // PEM files given with --tls-cert and --tls-key
	selfSigned bool   // --tls-self-signed: make one at start
}

// validate checks the flag combination and that the files load, so a bad
// file is a usage error before anything listens.
func (f tlsFiles) validate() error {
	switch {
	case f.selfSigned && (f.cert != "" || f.key != ""):
		return usagef("--%s cannot be combined with --%s/--%s", flagTLSSelfSigned, flagTLSCert, flagTLSKey)
	case f.cert != "" && f.key == "":
		return usagef("--%s needs --%s", flagTLSCert, flagTLSKey)
	case f.key != "" && f.cert == "":
		return usagef("--%s needs --%s", flagTLSKey, flagTLSCert)
	case f.cert != "":
		if _, err := tls.LoadX509KeyPair(f.cert, f.key); err != nil {
			return usagef("--%s %s / --%s %s: %v", flagTLSCert, f.cert, flagTLSKey, f.key, err)
		}
	}
	return nil
}

// load returns the TLS configuration, or nil for plain ws://, and for a
// self-signed certificate its SHA-256 fingerprint.
func (f tlsFiles) load() (*tls.Config, string, error) {
	switch {
	case f.selfSigned:
		cert, err := selfSignedCert()
		if err != nil {
			return nil, "", fmt.Errorf("make self-signed certificate: %w", err)
		}
		return serverTLSConfig(cert), fingerprint(cert.Certificate[0]), nil
	case f.cert != "":
		cert, err := tls.LoadX509KeyPair(f.cert, f.key)
		if err != nil {
			return nil, "", usagef("--%s %s / --%s %s: %v", flagTLSCert, f.cert, flagTLSKey, f.key, err)
		}
		return serverTLSConfig(cert), "", nil
	}
	return nil, "", nil
}

// serverTLSConfig serves cert over HTTP/1.1 only: WebSocket upgrades need it.
func serverTLSConfig(cert tls.Certificate) *tls.Config {
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12, NextProtos: []string{"http/1.1"}}
}

// selfSignedCert makes an ECDSA P-256 certificate for localhost, 127.0.0.1
// and ::1.
func selfSignedCert() (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return tls.Certificate{}, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{Organization: []string{"wsx self-signed"}, CommonName: "localhost"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(selfSignedValidity),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		DNSNames:              []string{"localhost"},
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1"), net.IPv6loopback},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}

// fingerprint is the SHA-256 of a DER certificate as colon-separated hex,
// the form browsers and openssl show.
func fingerprint(der []byte) string {
	sum := sha256.Sum256(der)
	hex := make([]string, len(sum))
	for i, b := range sum {
		hex[i] = fmt.Sprintf("%02X", b)
	}
	return strings.Join(hex, ":")
}
