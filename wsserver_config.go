package main

import (
	"net/http"
	"regexp"
	"strings"
	"time"

	"github.com/urfave/cli/v2"
)

// Defaults of the server flags shared by echo and serve.
const (
	defaultAddr            = ":8080"
	defaultShutdownTimeout = 5 * time.Second
	defaultPingInterval    = 30 * time.Second
	defaultMaxMessageSize  = "1MiB"
	defaultMaxConns        = 10000
	defaultSendQueue       = "1MiB"
)

// wsServerConfig is the server plumbing's configuration, read from the flags
// of echo or serve.
type wsServerConfig struct {
	addr            string        // listen address; port 0 picks a free port
	tls             tlsFiles      // certificate source; none means plain ws://
	shutdownTimeout time.Duration // how long shutdown waits for close handshakes
	pingInterval    time.Duration // keepalive ping period; 0 disables keepalive
	maxMessageSize  int64         // larger incoming messages get close 1009
	maxConns        int           // upgrades beyond this get HTTP 503
	origins         originList    // allowed Origin patterns; empty allows any
	subprotocols    []string      // offered in the handshake, in preference order
	compress        bool          // negotiate permessage-deflate
	sendQueue       int           // per-connection bound on queued outgoing bytes
}

// wsServerFlags are the flags of the shared server plumbing.
func wsServerFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: flagAddr, Value: defaultAddr, EnvVars: []string{"WSX_ADDR"}, Usage: "listen on `ADDRESS` (port 0 picks a free port)"},
		&cli.StringFlag{Name: flagTLSCert, Usage: "serve wss:// with this certificate `FILE` (PEM; with --tls-key)"},
		&cli.StringFlag{Name: flagTLSKey, Usage: "private key `FILE` (PEM) for --tls-cert"},
		&cli.BoolFlag{Name: flagTLSSelfSigned, Usage: "serve wss:// with an ephemeral self-signed certificate for localhost"},
		&cli.DurationFlag{Name: flagShutdownTimeout, Value: defaultShutdownTimeout, Usage: "on SIGINT/SIGTERM, wait up to `DURATION` for clients to answer close 1001"},
		&cli.DurationFlag{Name: flagPingInterval, Value: defaultPingInterval, Usage: "ping clients every `DURATION` and drop those silent for two intervals (0 = off)"},
		&cli.StringFlag{Name: flagMaxMessageSize, Value: defaultMaxMessageSize, Usage: "largest message accepted (`SIZE` such as 64KiB, 16MiB); larger ones get close 1009"},
		&cli.IntFlag{Name: flagMaxConns, Value: defaultMaxConns, Usage: "at most `N` concurrent connections; more are answered HTTP 503"},
		&cli.StringSliceFlag{Name: flagOrigin, Usage: "allow only this Origin `PATTERN` (repeatable, * matches anything: https://*.example.com); others get HTTP 403"},
		&cli.StringSliceFlag{Name: flagSubprotocol, Usage: "subprotocol `NAME` to negotiate (repeatable)"},
		&cli.BoolFlag{Name: flagCompress, Usage: "negotiate permessage-deflate compression"},
	}
}

// welcomeFlag is --welcome, which echo and serve both have.
func welcomeFlag() cli.Flag {
	return &cli.StringFlag{Name: flagWelcome, Usage: "send `TEXT` to each client when it connects"}
}

// readWSServerConfig reads and validates the server flags.
func readWSServerConfig(c *cli.Context) (wsServerConfig, error) {
	cfg := wsServerConfig{
		addr:            c.String(flagAddr),
		tls:             tlsFiles{cert: c.String(flagTLSCert), key: c.String(flagTLSKey), selfSigned: c.Bool(flagTLSSelfSigned)},
		shutdownTimeout: c.Duration(flagShutdownTimeout),
		pingInterval:    c.Duration(flagPingInterval),
		maxConns:        c.Int(flagMaxConns),
		subprotocols:    c.StringSlice(flagSubprotocol),
		compress:        c.Bool(flagCompress),
	}
	if err := cfg.tls.validate(); err != nil {
		return cfg, err
	}
	size, err := parseSize(c.String(flagMaxMessageSize))
	if err != nil {
		return cfg, usagef("invalid value for flag --%s: %v", flagMaxMessageSize, err)
	}
	cfg.maxMessageSize = size
	sendQueue, err := parseSize(defaultSendQueue)
	if err != nil {
		return cfg, err
	}
	cfg.sendQueue = int(sendQueue)
	switch {
	case cfg.shutdownTimeout < 0:
		return cfg, usagef("invalid value for flag --%s: must not be negative", flagShutdownTimeout)
	case cfg.pingInterval < 0:
		return cfg, usagef("invalid value for flag --%s: must not be negative (0 turns keepalive off)", flagPingInterval)
	case cfg.maxConns < 1:
		return cfg, usagef("invalid value for flag --%s: must be at least 1", flagMaxConns)
	}
	for _, p := range c.StringSlice(flagSubprotocol) {
		if !isToken(p) {
			return cfg, usagef("invalid value %q for flag --%s: a subprotocol is an HTTP token (no spaces, commas or quotes)", p, flagSubprotocol)
		}
	}
	cfg.origins = compileOrigins(c.StringSlice(flagOrigin))
	return cfg, nil
}

// originList is the set of allowed Origin patterns.
type originList []*regexp.Regexp

// compileOrigins turns glob patterns into anchored, case-insensitive
// regular expressions in which * matches any run of characters.
func compileOrigins(patterns []string) originList {
	var list originList
	for _, p := range patterns {
		parts := strings.Split(p, "*")
		for i := range parts {
			parts[i] = regexp.QuoteMeta(parts[i])
		}
		list = append(list, regexp.MustCompile("(?i)^"+strings.Join(parts, ".*")+"$"))
	}
	return list
}

// allowed is gorilla's CheckOrigin: with no patterns any origin is allowed;
// otherwise a browser's Origin must match one. Requests without an Origin
// header come from non-browser clients, which cannot be used for cross-site
// requests, and are allowed.
func (l originList) allowed(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if len(l) == 0 || origin == "" {
		return true
	}
	for _, re := range l {
		if re.MatchString(origin) {
			return true
		}
	}
	return false
}
