package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"sort"
	"strings"

	"github.com/gorilla/websocket"
)

// What a client reports about its opening handshake: why it failed, and
// with -v the request and response.

// bodyPreviewLen is how much of a refused handshake's response body
// "Could not connect" shows.
const bodyPreviewLen = 512

// relevantHeaders are the response headers that explain a refused handshake.
var relevantHeaders = []string{"Location", "Www-Authenticate", "Proxy-Authenticate", "Retry-After", "Sec-Websocket-Version", "Content-Type"}

// explainConnectError says why a connection attempt failed: the network,
// DNS or TLS error, or the server's HTTP answer with the headers that
// explain it and the first bytes of its body. Hints follow on lines of their
// own.
func explainConnectError(u string, resp *http.Response, err error, o handshakeOptions) string {
	var b strings.Builder
	if errors.Is(err, websocket.ErrBadHandshake) && resp != nil {
		if resp.StatusCode == http.StatusSwitchingProtocols {
			fmt.Fprintf(&b, "%s: the server answered %s %s but not as a WebSocket server (check its Upgrade, Connection and Sec-WebSocket-Accept headers)", u, resp.Proto, resp.Status)
		} else {
			fmt.Fprintf(&b, "%s: the server answered %s %s", u, resp.Proto, resp.Status)
		}
		for _, name := range relevantHeaders {
			for _, v := range resp.Header.Values(name) {
				fmt.Fprintf(&b, "\n  %s: %s", name, v)
			}
		}
		if body := readBodyPreview(resp); body != "" {
			fmt.Fprintf(&b, "\n  body: %s", body)
		}
		b.WriteString(statusHint(resp, o))
		return b.String()
	}
	fmt.Fprintf(&b, "%s: %v", u, err)
	var ua x509.UnknownAuthorityError
	var hn x509.HostnameError
	var ci x509.CertificateInvalidError
	var rh tls.RecordHeaderError
	var ne net.Error
	switch {
	case errors.As(err, &ne) && ne.Timeout():
		fmt.Fprintf(&b, "\nhint: no answer within --%s %s", flagConnectTimeout, o.connectTimeout)
	case errors.As(err, &ua) || errors.As(err, &hn) || errors.As(err, &ci):
		b.WriteString("\nhint: trust the server's CA with --ca FILE, or skip verification with -k")
	case errors.As(err, &rh):
		b.WriteString("\nhint: the server does not speak TLS here: try ws:// instead of wss://")
	case strings.Contains(err.Error(), "malformed HTTP"):
		b.WriteString("\nhint: the server does not speak HTTP here: if it expects TLS, try wss://")
	}
	return b.String()
}

// statusHint suggests what to do about a refused handshake.
func statusHint(resp *http.Response, o handshakeOptions) string {
	switch resp.StatusCode {
	case http.StatusUnauthorized:
		if o.header.Get("Authorization") == "" {
			return "\nhint: the server wants credentials: try --auth USER:PASSWORD or --token TOKEN"
		}
		return "\nhint: the server refused the credentials given"
	case http.StatusForbidden:
		if o.header.Get("Origin") != "" {
			return "\nhint: servers often refuse an Origin they do not allow with 403: check -o/--origin"
		}
	case http.StatusMovedPermanently, http.StatusFound, http.StatusTemporaryRedirect, http.StatusPermanentRedirect:
		if loc := resp.Header.Get("Location"); loc != "" {
			return "\nhint: wsx does not follow redirects: try " + loc
		}
	}
	return ""
}

// readBodyPreview returns the first bodyPreviewLen bytes of a refused
// handshake's body (gorilla keeps up to 1 KiB), quoted.
func readBodyPreview(resp *http.Response) string {
	if resp.Body == nil {
		return ""
	}
	buf := make([]byte, bodyPreviewLen+1)
	n, _ := io.ReadFull(resp.Body, buf)
	if n == 0 {
		return ""
	}
	if n > bodyPreviewLen {
		return fmt.Sprintf("%q...", buf[:bodyPreviewLen])
	}
	return fmt.Sprintf("%q", buf[:n])
}

// formatRequest renders an upgrade request the way curl -v does: "> " lines.
func formatRequest(r *http.Request, proxy *url.URL) string {
	var b strings.Builder
	if proxy != nil {
		fmt.Fprintf(&b, "* Using proxy %s\n", proxy.Redacted())
	}
	fmt.Fprintf(&b, "> GET %s HTTP/1.1\n> Host: %s", r.URL.RequestURI(), r.Host)
	writeHeaders(&b, "> ", r.Header)
	return b.String()
}

// formatResponse renders a handshake response as "< " lines.
func formatResponse(resp *http.Response) string {
	var b strings.Builder
	fmt.Fprintf(&b, "< %s %s", resp.Proto, resp.Status)
	writeHeaders(&b, "< ", resp.Header)
	return b.String()
}

// writeHeaders writes h sorted by name, one "prefix Name: value" line each.
func writeHeaders(b *strings.Builder, prefix string, h http.Header) {
	names := make([]string, 0, len(h))
	for name := range h {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		for _, v := range h[name] {
			fmt.Fprintf(b, "\n%s%s: %s", prefix, name, v)
		}
	}
}
