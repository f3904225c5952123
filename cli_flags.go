package main

import "github.com/urfave/cli/v2"

// The names of every command's flags, in one place: commands share many of
// them and error messages name them; and the flags every command has.

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// Names of the global flags, read by every command through globalOptions.
const (
	flagNoColor   = "no-color"
	flagQuiet     = "quiet"
	flagVerbose   = "verbose"
	flagLogFormat = "log-format"
)

// globalFlags are accepted before the command name and, because users type
// "wsx echo -v", after it too: every command adds them to its own flags.
func globalFlags() []cli.Flag {
	return []cli.Flag{
		&cli.BoolFlag{Name: flagNoColor, Usage: "never colour the output (a non-empty NO_COLOR variable does the same)"},
		&cli.BoolFlag{Name: flagQuiet, Aliases: []string{"q"}, Usage: "log only errors"},
		&cli.BoolFlag{Name: flagVerbose, Aliases: []string{"v"}, Usage: "log every message (servers) or the handshake (dial)"},
		&cli.StringFlag{Name: flagLogFormat, Value: "text", Usage: "log `FORMAT`: text or json"},
	}
}

// Names of the server flags, shared by echo and serve; dial has
// --ping-interval, --subprotocol, --origin and --compress too.
const (
	flagAddr            = "addr"
	flagTLSCert         = "tls-cert"
	flagTLSKey          = "tls-key"
	flagTLSSelfSigned   = "tls-self-signed"
	flagShutdownTimeout = "shutdown-timeout"
	flagPingInterval    = "ping-interval"
	flagMaxMessageSize  = "max-message-size"
	flagMaxConns        = "max-conns"
	flagOrigin          = "origin"
	flagSubprotocol     = "subprotocol"
	flagCompress        = "compress"
	flagWelcome         = "welcome"
)

// Names of the serve flags. --token is dial's too.
const (
	flagIncludeSelf = "include-self"
	flagNotices     = "notices"
	flagStdin       = "stdin"
	flagStdinRoom   = "stdin-room"
	flagToken       = "token"
	flagUsers       = "users"
	flagHistory     = "history"
	flagStore       = "store"
	flagRedis       = "redis"
	flagSendQueue   = "send-queue"
	flagRate        = "rate"
	flagFlush       = "flush-interval"
	flagAPIToken    = "api-token"
	flagAPIOpen     = "api-open"
	flagMetricsOpen = "metrics-open"
)

// Names of the dial flags. --ping-interval is flagPingInterval, as for the
// servers.
const (
	flagBinary       = "binary"
	flagWhole        = "whole"
	flagRawBinary    = "raw-binary"
	flagWait         = "wait"
	flagExecute      = "execute"
	flagCount        = "count"
	flagTimeout      = "timeout"
	flagShowPing     = "show-ping"
	flagJSONL        = "jsonl"
	flagReconnect    = "reconnect"
	flagReconnectMax = "reconnect-max"
	flagFragment     = "fragment"
	flagTimestamps   = "timestamps"
)

// Names of the echo flags.
const (
	flagPrefix = "prefix"
	flagReply  = "reply"
)

// Names of the handshake flags that only clients have. --token is flagToken,
// which wsx serve also has.
const (
	flagHeader         = "header"
	flagAuth           = "auth"
	flagConnectTimeout = "connect-timeout"
	flagInsecure       = "insecure"
	flagCA             = "ca"
	flagCert           = "cert"
	flagKey            = "key"
)

// Names of the bench flags. --rate is flagRate, --binary flagBinary and
// the handshake flags are dial's (handshakeFlags).
const (
	flagMode            = "mode"
	flagConns           = "conns"
	flagDuration        = "duration"
	flagMessages        = "messages"
	flagSize            = "size"
	flagRamp            = "ramp"
	flagDialConcurrency = "dial-concurrency"
	flagPublishers      = "publishers"
	flagJSON            = "json"
	flagHdr             = "hdr"
	flagMaxErrors       = "max-errors"
	flagPID             = "pid"
)
