package main

import (
	"bytes"
	"fmt"
	"net/http"
	"text/template"
	"time"

	"github.com/gorilla/websocket"
	"github.com/urfave/cli/v2"
)

// defaultPrefix is what wsx echo puts before each echoed message, as the
// tutorials' echo API does.
const defaultPrefix = "Data received: "

// echoCommand is wsx echo: a server that answers every message.
func echoCommand() *cli.Command {
	return &cli.Command{
		Name:  "echo",
		Usage: `echo server: replies "Data received: <msg>" to every message`,
		UsageText: `wsx echo [options]

   wsx echo                                   # ws://localhost:8080/, replies "Data received: <msg>"
   wsx echo --prefix ""                       # pure echo, byte-exact
   wsx echo --addr 127.0.0.1:0                # a free port; the start line says which
   wsx echo --reply 'this is server :{{.Time.Format "2006-01-02 15:04:05"}}'
   wsx echo --tls-self-signed --welcome hi    # wss:// with an ephemeral certificate`,
		Description: `Every text or binary message is answered with --prefix followed by the
message, in the same message type; binary stays binary, byte-exact.
--reply replaces that with a Go text/template over .Data (the message),
.Type ("text" or "binary"), .ID (connection id), .Remote and .Time.`,
		Flags: append(append(wsServerFlags(), globalFlags()...),
			&cli.StringFlag{Name: flagPrefix, Value: defaultPrefix, Usage: "put `TEXT` before each echoed message (\"\" for a pure echo)"},
			&cli.StringFlag{Name: flagReply, Usage: "reply with this Go `TEMPLATE` instead (fields .Data .Type .ID .Remote .Time)"},
			welcomeFlag(),
		),
		Action: func(c *cli.Context) error {
			cfg, err := readEchoConfig(c)
			if err != nil {
				return err
			}
			o, err := readLogOptions(c)
			if err != nil {
				return err
			}
			s := newWSServer(cfg.server, &echoApp{cfg: cfg}, o.logger(), "wsx echo")
			s.pollIdle, s.handleInline = true, true
			return runWSServer(c.Context, cfg.server, s, s, o.stdout)
		},
	}
}

// echoConfig is wsx echo's configuration.
type echoConfig struct {
	server  wsServerConfig
	prefix  []byte             // put before each echoed message
	reply   *template.Template // replaces prefix+message when set
	welcome string             // sent to each client on connect; empty sends nothing
}

// readEchoConfig reads the flags and checks the reply template by running it
// once, so a bad template is a usage error at start rather than a silent
// failure on the first message.
func readEchoConfig(c *cli.Context) (echoConfig, error) {
	server, err := readWSServerConfig(c)
	if err != nil {
		return echoConfig{}, err
	}
	cfg := echoConfig{server: server, prefix: []byte(c.String(flagPrefix)), welcome: c.String(flagWelcome)}
	if err := validText(flagPrefix, string(cfg.prefix)); err != nil {
		return cfg, err
	}
	if err := validText(flagWelcome, cfg.welcome); err != nil {
		return cfg, err
	}
	if c.IsSet(flagReply) {
		t, err := template.New("reply").Parse(c.String(flagReply))
		if err != nil {
			return cfg, usagef("invalid --%s template: %v", flagReply, err)
		}
		if err := t.Execute(new(bytes.Buffer), replyData{Data: "x", Type: "text", ID: 1, Remote: "127.0.0.1:1", Time: time.Now()}); err != nil {
			return cfg, usagef("invalid --%s template: %v", flagReply, err)
		}
		cfg.reply = t
	}
	return cfg, nil
}

// replyData is what a --reply template sees.
type replyData struct {
	Data   string    // the message received
	Type   string    // "text" or "binary"
	ID     uint64    // the connection id, counting from 1
	Remote string    // the client's address
	Time   time.Time // when the message arrived
}

// echoApp admits every connection.
type echoApp struct{ cfg echoConfig }

func (a *echoApp) admit(*http.Request) (session, *httpError) {
	return &echoSession{cfg: &a.cfg}, nil
}

// echoSession answers the messages of one connection.
type echoSession struct {
	cfg *echoConfig
	out bytes.Buffer // the rendered template, reused between messages
}

func (e *echoSession) open(c *wsConn) {
	c.log().Info(fmt.Sprintf("New connection! (%d) from %s", c.id, c.remote), "event", evOpen)
	if e.cfg.welcome != "" {
		c.send(websocket.TextMessage, nil, []byte(e.cfg.welcome))
	}
}

func (e *echoSession) message(c *wsConn, op int, data []byte) {
	if c.verbose() {
		c.log().Debug(fmt.Sprintf("Connection %d sent a %s message of %d bytes: %s", c.id, opName(op), len(data), preview(op, data)),
			"event", evMessage, "type", opName(op), "length", len(data))
	}
	if e.cfg.reply == nil {
		c.send(op, e.cfg.prefix, data)
		return
	}
	e.out.Reset()
	err := e.cfg.reply.Execute(&e.out, replyData{Data: string(data), Type: opName(op), ID: c.id, Remote: c.remote, Time: time.Now()})
	if err != nil {
		c.log().Error(fmt.Sprintf("An error has occurred: --reply template: %v", err), "event", evError)
		c.closeWith(websocket.CloseInternalServerErr, "reply template failed", closeGrace)
		return
	}
	c.send(op, nil, e.out.Bytes())
}

func (e *echoSession) close(*wsConn, int, string) {}
