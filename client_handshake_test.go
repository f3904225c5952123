package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/base64"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestNormalizeURL(t *testing.T) {
	tests := []struct {
		in, want, userinfo string
		bad                bool
	}{
		{in: "ws://example.com/chat", want: "ws://example.com/chat"},
		{in: "wss://example.com/chat?room=1", want: "wss://example.com/chat?room=1"},
		{in: "http://example.com:8080/x", want: "ws://example.com:8080/x"},
		{in: "https://example.com", want: "wss://example.com/"},
		{in: "HTTPS://example.com/", want: "wss://example.com/"},
		{in: "localhost:8080", want: "ws://localhost:8080/"},
		{in: "example.com/path", want: "ws://example.com/path"},
		{in: ":8080", want: "ws://localhost:8080/"},
		{in: "ws://[::1]:9000/", want: "ws://[::1]:9000/"},
		{in: "ws://user:p%40ss@host/", want: "ws://host/", userinfo: "user:p@ss"},
		{in: "ftp://example.com/", bad: true},
		{in: "ws://exa mple.com/", bad: true},
	}
	for _, tt := range tests {
		got, userinfo, err := normalizeURL(tt.in)
		if tt.bad {
			if err == nil {
				t.Errorf("normalizeURL(%q) = %q, want an error", tt.in, got)
			}
			continue
		}
		if err != nil || got != tt.want || userinfo != tt.userinfo {
			t.Errorf("normalizeURL(%q) = %q, %q, %v; want %q, %q", tt.in, got, userinfo, err, tt.want, tt.userinfo)
		}
	}
}

func TestParseHeaders(t *testing.T) {
	tests := []struct {
		name  string
		lines []string
		want  http.Header
		bad   bool
	}{
		{"one", []string{"X-Key: 1"}, http.Header{"X-Key": {"1"}}, false},
		{"comma stays in the value", []string{"Accept: a, b"}, http.Header{"Accept": {"a, b"}}, false},
		{"repeated", []string{"X-A: 1", "x-a: 2"}, http.Header{"X-A": {"1", "2"}}, false},
		{"spaces around the value", []string{"X-A:   v  "}, http.Header{"X-A": {"v"}}, false},
		{"empty value", []string{"X-A:"}, http.Header{"X-A": {""}}, false},
		{"colon in the value", []string{"X-Time: 12:30"}, http.Header{"X-Time": {"12:30"}}, false},
		{"no colon", []string{"X-A 1"}, nil, true},
		{"space in the name", []string{"X A: 1"}, nil, true},
		{"line break", []string{"X-A: 1\r\nX-B: 2"}, nil, true},
		{"reserved", []string{"Sec-WebSocket-Key: x"}, nil, true},
		{"subprotocol has its flag", []string{"Sec-WebSocket-Protocol: chat"}, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseHeaders(tt.lines)
			if tt.bad {
				if err == nil {
					t.Errorf("parseHeaders(%q) = %v, want an error", tt.lines, got)
				}
				return
			}
			if err != nil || len(got) != len(tt.want) {
				t.Fatalf("parseHeaders(%q) = %v, %v; want %v", tt.lines, got, err, tt.want)
			}
			for k, v := range tt.want {
				if strings.Join(got[k], "|") != strings.Join(v, "|") {
					t.Errorf("parseHeaders(%q)[%s] = %q, want %q", tt.lines, k, got[k], v)
				}
			}
		})
	}
}

func TestParseWait(t *testing.T) {
	tests := []struct {
		in   string
		want float64 // seconds; -1 for no limit
		bad  bool
	}{
		{in: "1s", want: 1}, {in: "250ms", want: 0.25}, {in: "0", want: 0}, {in: "-1", want: -1},
		{in: "-1s", want: -1}, {in: "2", want: 2}, {in: "0.5", want: 0.5},
		{in: "soon", bad: true}, {in: "NaN", bad: true}, {in: "", bad: true},
	}
	for _, tt := range tests {
		got, err := parseWait(tt.in)
		switch {
		case tt.bad && err == nil:
			t.Errorf("parseWait(%q) = %v, want an error", tt.in, got)
		case !tt.bad && (err != nil || (tt.want < 0 && got != -1) || (tt.want >= 0 && got.Seconds() != tt.want)):
			t.Errorf("parseWait(%q) = %v, %v; want %vs", tt.in, got, err, tt.want)
		}
	}
}

func TestDialUsageErrorsExit2(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string // in the message on stderr
	}{
		{"no URL", nil, "missing URL"},
		{"two URLs", []string{"ws://a/", "ws://b/"}, `"ws://b/"`},
		{"bad scheme", []string{"ftp://x/"}, "scheme"},
		{"unknown flag after the URL", []string{"ws://x/", "--nope"}, "--nope"},
		{"bad header", []string{"ws://x/", "-H", "nocolon"}, "--header"},
		{"bad subprotocol", []string{"ws://x/", "-s", "a b"}, "--subprotocol"},
		{"auth without colon", []string{"ws://x/", "--auth", "user"}, "--auth"},
		{"auth and token", []string{"ws://x/", "--auth", "u:p", "--token", "t"}, "--token"},
		{"auth twice", []string{"ws://u:p@x/", "--auth", "u:p"}, "--auth"},
		{"origin twice", []string{"ws://x/", "-o", "http://a", "-H", "Origin: http://b"}, "--origin"},
		{"bad wait", []string{"ws://x/", "--wait", "soon"}, "--wait"},
		{"negative count", []string{"ws://x/", "-n", "-1"}, "--count"},
		{"negative timeout", []string{"ws://x/", "--timeout", "-1s"}, "--timeout"},
		{"negative fragment", []string{"ws://x/", "--fragment", "-1"}, "--fragment"},
		{"zero connect timeout", []string{"ws://x/", "--connect-timeout", "0"}, "--connect-timeout"},
		{"zero reconnect max", []string{"ws://x/", "--reconnect-max", "0"}, "--reconnect-max"},
		{"whole and execute", []string{"ws://x/", "--whole", "-x", "a"}, "--whole"},
		{"raw binary and jsonl", []string{"ws://x/", "--raw-binary", "--jsonl"}, "--jsonl"},
		{"execute not UTF-8", []string{"ws://x/", "-x", "\xff"}, "--execute"},
		{"cert without key", []string{"wss://x/", "--cert", "c.pem"}, "--key"},
		{"missing CA file", []string{"wss://x/", "--ca", "nope.pem"}, "--ca"},
		{"bad duration", []string{"ws://x/", "--ping-interval", "often"}, "ping-interval"},
		{"bad log format", []string{"ws://x/", "--log-format", "xml"}, "log-format"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := dialInProcess(t, strings.NewReader(""), tt.args...)
			r.wantExit(t, exitUsage)
			if !strings.Contains(r.stderr, tt.want) {
				t.Errorf("stderr %q does not name %q", r.stderr, tt.want)
			}
		})
	}
}

// TestDialHandshakeReachesServer checks that headers, subprotocols, origin,
// Basic and Bearer authentication arrive as given.
func TestDialHandshakeReachesServer(t *testing.T) {
	reqs := make(chan *http.Request, 3)
	url := newPeer(t, func(w http.ResponseWriter, r *http.Request) {
		reqs <- r
		c := accept(t, w, r, "chat.v2")
		c.ReadMessage()
	})
	basic := func(s string) string { return "Basic " + base64.StdEncoding.EncodeToString([]byte(s)) }
	tests := []struct {
		name string
		url  string
		args []string
		want map[string]string // request header: value
	}{
		{"headers, subprotocols, origin, auth", url,
			[]string{"-H", "Accept: a, b", "--header", "X-Key: 1", "-H", "X-Key: 2", "-s", "chat.v1", "--subprotocol", "chat.v2", "-o", "https://app.example", "--auth", "user:pa:ss"},
			map[string]string{"Accept": "a, b", "X-Key": "1; 2", "Sec-Websocket-Protocol": "chat.v1, chat.v2", "Origin": "https://app.example", "Authorization": basic("user:pa:ss"), "User-Agent": "wsx/dev"}},
		{"token", url, []string{"--token", "s3cret"}, map[string]string{"Authorization": "Bearer s3cret"}},
		{"user and password in the URL", strings.Replace(url, "ws://", "ws://me:pw@", 1), nil, map[string]string{"Authorization": basic("me:pw")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := dialInProcess(t, strings.NewReader(""), append([]string{tt.url, "--wait", "0"}, tt.args...)...)
			r.wantExit(t, exitOK)
			req := <-reqs
			for k, v := range tt.want {
				if got := strings.Join(req.Header.Values(k), "; "); got != v {
					t.Errorf("server got %s: %q, want %q", k, got, v)
				}
			}
			if strings.Contains(tt.name, "subprotocols") && !strings.Contains(r.stderr, "(subprotocol chat.v2)") {
				t.Errorf("the subprotocol chosen is not reported:\n%s", r.stderr)
			}
		})
	}
}

// TestDialVerbose shows the request and response headers like curl -v.
func TestDialVerbose(t *testing.T) {
	srv := newTestServer(t, "echo")
	r := dialInProcess(t, strings.NewReader(""), srv.url, "-v", "-H", "X-Trace: 7", "--wait", "0")
	r.wantExit(t, exitOK)
	for _, want := range []string{"> GET / HTTP/1.1\n", "> Host: 127.0.0.1:", "> Sec-WebSocket-Key: ", "> Sec-WebSocket-Version: 13\n", "> X-Trace: 7\n", "< HTTP/1.1 101 Switching Protocols\n", "< Sec-Websocket-Accept: "} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("-v output lacks %q:\n%s", want, r.stderr)
		}
	}
}

// TestDialCompress negotiates permessage-deflate with wsx echo and round
// trips messages, whole and cut into frames.
func TestDialCompress(t *testing.T) {
	srv := newTestServer(t, "echo", "--prefix", "", "--compress")
	random := make([]byte, 6000)
	for i := range random {
		random[i] = "abcdefghijklmnopqrstuvwxyz0123456789"[(i*7919+i*i)%36]
	}
	msgs := []string{strings.Repeat("compress me ", 2000), string(random), ""}
	input := strings.Join(msgs, "\n") + "\n"
	for _, args := range [][]string{{"--compress"}, {"--compress", "--fragment", "100"}} {
		r := dialInProcess(t, strings.NewReader(input), append([]string{srv.url, "-n", "3"}, args...)...)
		r.wantExit(t, exitOK)
		if r.stdout != input {
			t.Errorf("%v: round trip differs: got %d bytes, want %d", args, len(r.stdout), len(input))
		}
		if !strings.Contains(r.stderr, "permessage-deflate") {
			t.Errorf("%v: compression not reported:\n%s", args, r.stderr)
		}
	}
}

// TestDialTLS checks certificate verification: refused with a hint by
// default, accepted with --ca or -k.
func TestDialTLS(t *testing.T) {
	cert, err := selfSignedCert()
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile := writeCert(t, cert)
	srv := newTestServer(t, "echo", "--prefix", "", "--tls-cert", certFile, "--tls-key", keyFile)
	if !strings.HasPrefix(srv.url, "wss://") {
		t.Fatalf("server URL %s", srv.url)
	}
	r := dialInProcess(t, strings.NewReader("x\n"), srv.url)
	r.wantExit(t, exitFailure)
	if !strings.Contains(r.stderr, "Could not connect: "+srv.url+": tls: ") || !strings.Contains(r.stderr, "hint: trust the server's CA with --ca FILE, or skip verification with -k") {
		t.Errorf("an untrusted certificate is not explained:\n%s", r.stderr)
	}
	for _, args := range [][]string{{"--ca", certFile}, {"-k"}} {
		r := dialInProcess(t, strings.NewReader("secure\n"), append([]string{srv.url}, args...)...)
		r.wantExit(t, exitOK)
		if r.stdout != "secure\n" {
			t.Errorf("%v: stdout %q", args, r.stdout)
		}
	}
	plain := newTestServer(t, "echo")
	r = dialInProcess(t, strings.NewReader(""), strings.Replace(plain.url, "ws://", "wss://", 1))
	r.wantExit(t, exitFailure)
	if !strings.Contains(r.stderr, "hint: the server does not speak TLS here: try ws://") {
		t.Errorf("wss:// to a plain server is not explained:\n%s", r.stderr)
	}
}

// TestDialClientCert presents --cert/--key to a server that asks for a
// client certificate.
func TestDialClientCert(t *testing.T) {
	cert, err := selfSignedCert()
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile := writeCert(t, cert)
	peerCerts := make(chan [][]byte, 1)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var raw [][]byte
		for _, c := range r.TLS.PeerCertificates {
			raw = append(raw, c.Raw)
		}
		peerCerts <- raw
		c := accept(t, w, r)
		c.ReadMessage()
	}))
	srv.TLS = &tls.Config{ClientAuth: tls.RequireAnyClientCert}
	srv.StartTLS()
	defer srv.Close()
	r := dialInProcess(t, strings.NewReader(""), srv.URL, "-k", "--cert", certFile, "--key", keyFile, "--wait", "0")
	r.wantExit(t, exitOK)
	got := <-peerCerts
	if len(got) != 1 || string(got[0]) != string(cert.Certificate[0]) {
		t.Errorf("server saw %d client certificates, not ours", len(got))
	}
}

// TestDialProxy connects through HTTP_PROXY with CONNECT. It runs the
// binary, because Go reads the proxy variables once per process. (NO_PROXY
// is not tested: a host that is not proxied would be looked up in DNS, and
// tests stay off the network.)
func TestDialProxy(t *testing.T) {
	srv := newTestServer(t, "echo", "--prefix", "")
	target := strings.TrimSuffix(strings.TrimPrefix(srv.url, "ws://"), "/")
	var mu sync.Mutex
	var connects []string
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				req, err := http.ReadRequest(br)
				if err != nil || req.Method != http.MethodConnect {
					return
				}
				mu.Lock()
				connects = append(connects, req.Host)
				mu.Unlock()
				up, err := net.Dial("tcp", target) // every host leads to the echo server
				if err != nil {
					return
				}
				defer up.Close()
				io.WriteString(c, "HTTP/1.1 200 Connection established\r\n\r\n")
				go io.Copy(up, br)
				io.Copy(c, up)
			}()
		}
	}()
	proxy := "http://" + ln.Addr().String()
	env := []string{"HTTP_PROXY=" + proxy, "http_proxy=" + proxy, "NO_PROXY=", "no_proxy="}
	r := dialBinary(t, strings.NewReader("via proxy\n"), env, "ws://wsx-proxied.test/", "-n", "1")
	r.wantExit(t, exitOK)
	if r.stdout != "via proxy\n" {
		t.Errorf("stdout %q", r.stdout)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(connects) != 1 || connects[0] != "wsx-proxied.test:80" {
		t.Errorf("proxy saw CONNECT %q, want wsx-proxied.test:80", connects)
	}
}

// TestDialInterruptWhileConnecting checks that an interrupt ends a
// connection attempt, before the TCP connection is made and while the
// server holds the handshake unanswered, however long --connect-timeout.
func TestDialInterruptWhileConnecting(t *testing.T) {
	for _, after := range []time.Duration{0, 200 * time.Millisecond} {
		ln := silentServer(t)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan int, 1)
		var stderr syncBuffer
		go func() {
			done <- run(ctx, []string{"wsx", "dial", ln.Addr().String(), "--connect-timeout", "1h"}, strings.NewReader(""), io.Discard, &stderr)
		}()
		time.Sleep(after)
		cancel()
		select {
		case code := <-done:
			if code != exitFailure || !strings.Contains(stderr.String(), "Could not connect: ") || !strings.Contains(stderr.String(), "interrupted") {
				t.Errorf("interrupt after %s: exit %d, stderr %q; want 1 and why", after, code, stderr.String())
			}
		case <-time.After(testTimeout):
			t.Fatalf("interrupt after %s did not end the connection attempt", after)
		}
	}
}

// TestDialSilentProxyTimesOut: a proxy that never answers CONNECT is
// bounded by --connect-timeout like the rest of the handshake.
func TestDialSilentProxyTimesOut(t *testing.T) {
	proxy := "http://" + silentServer(t).Addr().String()
	env := []string{"HTTP_PROXY=" + proxy, "http_proxy=" + proxy, "NO_PROXY=", "no_proxy="}
	r := dialBinary(t, strings.NewReader(""), env, "ws://wsx-proxied.test/", "--connect-timeout", "300ms")
	r.wantExit(t, exitFailure)
	if !strings.Contains(r.stderr, "Could not connect") {
		t.Errorf("stderr does not say why:\n%s", r.stderr)
	}
}
