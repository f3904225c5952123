package main

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/gorilla/websocket"
	"github.com/urfave/cli/v2"
)

// The handshake options of the commands that connect to a server: wsx dial,
// and later wsx bench. Each flag is defined once, in handshakeFlags; the
// names dial shares with the server (subprotocol, origin, compress) are the
// constants in server_config.go.

// defaultConnectTimeout bounds a connection attempt: DNS, TCP, TLS and the
// HTTP upgrade together.
const defaultConnectTimeout = 10 * time.Second

// handshakeFlags are the flags that shape a client's opening handshake.
func handshakeFlags() []cli.Flag {
	return []cli.Flag{
		&cli.GenericFlag{Name: flagHeader, Aliases: []string{"H"}, Value: new(stringList), Usage: "send the HTTP header `\"NAME: VALUE\"` (repeatable)"},
		&cli.StringSliceFlag{Name: flagSubprotocol, Aliases: []string{"s"}, Usage: "offer subprotocol `NAME` (repeatable, in order of preference)"},
		&cli.StringFlag{Name: flagOrigin, Aliases: []string{"o"}, Usage: "send the Origin header `URL`, as a browser would"},
		&cli.StringFlag{Name: flagAuth, Usage: "HTTP Basic authentication with `USER:PASSWORD`"},
		&cli.StringFlag{Name: flagToken, Usage: "send Authorization: Bearer `TOKEN`"},
		&cli.BoolFlag{Name: flagCompress, Usage: "offer permessage-deflate compression"},
		&cli.DurationFlag{Name: flagConnectTimeout, Value: defaultConnectTimeout, Usage: "give up connecting after `DURATION` (DNS, TCP, TLS and the upgrade)"},
		&cli.BoolFlag{Name: flagInsecure, Aliases: []string{"k"}, Usage: "wss://: do not verify the server's certificate"},
		&cli.StringFlag{Name: flagCA, Usage: "wss://: trust the CA certificates in `FILE` (PEM) instead of the system's"},
		&cli.StringFlag{Name: flagCert, Usage: "wss://: present the client certificate in `FILE` (PEM; with --key)"},
		&cli.StringFlag{Name: flagKey, Usage: "private key `FILE` (PEM) for --cert"},
	}
}

// handshakeOptions is how a client opens a connection. A command reads them
// with readHandshakeOptions and connects with
// o.dialer(nil).DialContext(ctx, url, o.header).
type handshakeOptions struct {
	header         http.Header   // extra request headers, including Authorization and Origin
	subprotocols   []string      // offered, in order of preference
	compress       bool          // offer permessage-deflate
	connectTimeout time.Duration // bounds one connection attempt
	tls            *tls.Config   // for wss://
}

// stringList is a repeatable string flag that, unlike cli.StringSliceFlag,
// never splits a value at commas: -H "Accept: a, b" is one header.
type stringList []string

// serializedListPrefix starts a stringList's Serialize form, which cannot
// come from a command line: arguments cannot contain NUL.
const serializedListPrefix = "\x00stringList:"

// Set appends a value, or restores a serialized list: urfave copies a flag's
// value to its aliases through Serialize and Set.
func (l *stringList) Set(s string) error {
	if rest, ok := strings.CutPrefix(s, serializedListPrefix); ok {
		*l = nil
		for _, v := range strings.Split(rest, ",") {
			if v == "" { // an empty list
				continue
			}
			b, err := base64.RawStdEncoding.DecodeString(strings.TrimPrefix(v, "="))
			if err != nil {
				return err
			}
			*l = append(*l, string(b))
		}
		return nil
	}
	*l = append(*l, s)
	return nil
}

func (l *stringList) String() string { return strings.Join(*l, " ") }

// Serialize is for urfave's copy of the value to the flag's aliases: each
// value in base64 after a "=", so that any bytes, and empty values, survive.
func (l *stringList) Serialize() string {
	enc := make([]string, len(*l))
	for i, v := range *l {
		enc[i] = "=" + base64.RawStdEncoding.EncodeToString([]byte(v))
	}
	return serializedListPrefix + strings.Join(enc, ",")
}

// readHandshakeOptions reads and checks the handshake flags. userinfo is the
// user:password part of the URL, if any, which counts as --auth.
func readHandshakeOptions(c *cli.Context, userinfo string) (handshakeOptions, error) {
	o := handshakeOptions{
		subprotocols:   c.StringSlice(flagSubprotocol),
		compress:       c.Bool(flagCompress),
		connectTimeout: c.Duration(flagConnectTimeout),
	}
	h, err := parseHeaders(*c.Generic(flagHeader).(*stringList))
	if err != nil {
		return o, err
	}
	for _, p := range o.subprotocols {
		if !isToken(p) {
			return o, usagef("invalid value %q for flag --%s: a subprotocol is an HTTP token (no spaces, commas or quotes)", p, flagSubprotocol)
		}
	}
	if o.connectTimeout <= 0 {
		return o, usagef("invalid value for flag --%s: must be positive", flagConnectTimeout)
	}
	auth, token, origin := c.String(flagAuth), c.String(flagToken), c.String(flagOrigin)
	if auth != "" && userinfo != "" {
		return o, usagef("--%s and a user:password in the URL both set the credentials: give one", flagAuth)
	}
	if auth == "" {
		auth = userinfo
	}
	if err := setAuthorization(h, auth, token); err != nil {
		return o, err
	}
	if origin != "" {
		if h.Get("Origin") != "" {
			return o, usagef("--%s and -H \"Origin: ...\" both set the Origin header: give one", flagOrigin)
		}
		h.Set("Origin", origin)
	}
	if h.Get("User-Agent") == "" {
		h.Set("User-Agent", "wsx/"+version)
	}
	o.header = h
	o.tls, err = clientTLSConfig(c.Bool(flagInsecure), c.String(flagCA), c.String(flagCert), c.String(flagKey))
	return o, err
}

// reservedHeaders are set by the handshake itself, or by a flag of their own.
var reservedHeaders = map[string]string{
	"Upgrade":                  "the handshake sets it",
	"Connection":               "the handshake sets it",
	"Sec-Websocket-Key":        "the handshake sets it",
	"Sec-Websocket-Version":    "the handshake sets it",
	"Sec-Websocket-Extensions": "use --" + flagCompress,
	"Sec-Websocket-Protocol":   "use -s/--" + flagSubprotocol,
}

// parseHeaders parses -H values of the form "Name: value". Surrounding
// spaces of the value are dropped, as HTTP does.
func parseHeaders(lines []string) (http.Header, error) {
	h := make(http.Header)
	for _, line := range lines {
		name, value, ok := strings.Cut(line, ":")
		if !ok || !isToken(name) {
			return nil, usagef("invalid value %q for flag -H/--%s: want \"Name: value\"", line, flagHeader)
		}
		if strings.ContainsAny(value, "\r\n\x00") {
			return nil, usagef("invalid value %q for flag -H/--%s: a header value cannot contain line breaks", line, flagHeader)
		}
		if why, ok := reservedHeaders[http.CanonicalHeaderKey(name)]; ok {
			return nil, usagef("invalid value %q for flag -H/--%s: %s cannot be set with -H: %s", line, flagHeader, name, why)
		}
		h.Add(name, strings.TrimSpace(value))
	}
	return h, nil
}

// setAuthorization sets the Authorization header from --auth USER:PASSWORD
// or --token TOKEN; only one of them, or -H "Authorization: ...", may be given.
func setAuthorization(h http.Header, auth, token string) error {
	given := 0
	for _, s := range []string{auth, token, h.Get("Authorization")} {
		if s != "" {
			given++
		}
	}
	if given > 1 {
		return usagef("--%s, --%s and -H \"Authorization: ...\" all set the Authorization header: give one", flagAuth, flagToken)
	}
	switch {
	case auth != "":
		if !strings.Contains(auth, ":") {
			return usagef("invalid value for flag --%s: want USER:PASSWORD", flagAuth)
		}
		h.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(auth)))
	case token != "":
		h.Set("Authorization", "Bearer "+token)
	}
	return nil
}

// clientTLSConfig builds the TLS configuration for wss:// from the flags.
func clientTLSConfig(insecure bool, caFile, certFile, keyFile string) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: insecure}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, usagef("--%s: %v", flagCA, err)
		}
		cfg.RootCAs = x509.NewCertPool()
		if !cfg.RootCAs.AppendCertsFromPEM(pem) {
			return nil, usagef("--%s %s: no PEM certificate in the file", flagCA, caFile)
		}
	}
	switch {
	case certFile != "" && keyFile == "":
		return nil, usagef("--%s needs --%s", flagCert, flagKey)
	case keyFile != "" && certFile == "":
		return nil, usagef("--%s needs --%s", flagKey, flagCert)
	case certFile != "":
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, usagef("--%s %s / --%s %s: %v", flagCert, certFile, flagKey, keyFile, err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

// dialer returns the gorilla dialer for o, which honours HTTP_PROXY,
// HTTPS_PROXY and NO_PROXY and reads through a tapConn (client_conn.go).
// If onRequest is not nil it is called with the upgrade request, complete
// with every header, just before it is sent, and the proxy chosen for it
// (nil for none): gorilla builds the request internally and hands it to
// nothing else, so its Proxy hook is the one place where -v can show the
// real thing. The hook answers nil: the dial functions tunnel themselves.
func (o handshakeOptions) dialer(onRequest func(*http.Request, *url.URL)) *websocket.Dialer {
	d := &websocket.Dialer{
		Proxy: func(r *http.Request) (*url.URL, error) {
			proxy, err := http.ProxyFromEnvironment(r)
			if onRequest != nil && err == nil {
				onRequest(r, proxy)
			}
			return nil, err
		},
		HandshakeTimeout:  o.connectTimeout,
		TLSClientConfig:   o.tls,
		Subprotocols:      o.subprotocols,
		EnableCompression: o.compress,
		// gorilla only buffers the handshake and what it writes on a
		// protocol error: wsx writes its own frames (frameWriter).
		WriteBufferSize: maxHeaderLen + maxControlPayload,
	}
	o.netDialers(d)
	return d
}

// normalizeURL turns the URL argument into a ws:// or wss:// URL:
// http(s):// maps to ws(s)://, no scheme means ws://, an empty host is
// localhost and an empty path is /. A user:password in the URL is removed
// and returned, since gorilla refuses it; it becomes Basic authentication.
func normalizeURL(s string) (u string, userinfo string, err error) {
	if !strings.Contains(s, "://") {
		s = "ws://" + s
	}
	p, err := url.Parse(s)
	if err != nil {
		return "", "", usagef("invalid URL %q: %v", s, err)
	}
	switch strings.ToLower(p.Scheme) {
	case "ws", "http":
		p.Scheme = "ws"
	case "wss", "https":
		p.Scheme = "wss"
	default:
		return "", "", usagef("invalid URL %q: the scheme must be ws, wss, http or https", s)
	}
	if p.User != nil {
		// A user without a password sends an empty one, as curl does.
		pw, _ := p.User.Password()
		userinfo = p.User.Username() + ":" + pw
		p.User = nil
	}
	if p.Hostname() == "" {
		p.Host = "localhost" + p.Host
	}
	if p.Path == "" {
		p.Path = "/"
	}
	return p.String(), userinfo, nil
}

// offersDeflate reports whether a handshake header lists permessage-deflate.
func offersDeflate(h http.Header) bool {
	for _, v := range h.Values("Sec-WebSocket-Extensions") {
		for _, ext := range strings.Split(v, ",") {
			name, _, _ := strings.Cut(ext, ";")
			if strings.TrimSpace(name) == "permessage-deflate" {
				return true
			}
		}
	}
	return false
}

// unofferedExtension returns an error naming the first extension of the
// server's answer that the client did not offer, which RFC 6455 §4.1 makes
// the client refuse: without --compress, a permessage-deflate answer would
// otherwise have wsx compress what the server may not expect.
func unofferedExtension(h http.Header, offeredDeflate bool) error {
	list, err := parseExtensions(h.Values("Sec-WebSocket-Extensions"))
	if err != nil {
		return fmt.Errorf("the server's Sec-WebSocket-Extensions does not parse: %w", err)
	}
	for _, e := range list {
		if e.name != deflateExtension || !offeredDeflate {
			return fmt.Errorf("the server answered with the extension %s, which wsx did not offer (RFC 6455 §4.1)", e.name)
		}
	}
	return nil
}
