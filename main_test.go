package main

import (
	"bytes"
	"context"
	"io"
	"strings"
	"testing"
)

func TestUsageErrorsExit2(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string // in the message on stderr
	}{
		{"unknown flag", []string{"echo", "--nope"}, "--nope"},
		{"bad duration", []string{"echo", "--ping-interval", "soon"}, "ping-interval"},
		{"bad size", []string{"echo", "--max-message-size", "lots"}, "max-message-size"},
		{"bad log format", []string{"--log-format", "xml", "echo"}, "log-format"},
		{"bad template", []string{"echo", "--reply", "{{.Data"}, "--reply"},
		{"unknown template field", []string{"echo", "--reply", "{{.Nope}}"}, "Nope"},
		{"cert without key", []string{"echo", "--tls-cert", "x.pem"}, "--tls-key"},
		{"missing cert file", []string{"echo", "--tls-cert", "nope.pem", "--tls-key", "nope.key"}, "nope.pem"},
		{"self-signed and cert", []string{"echo", "--tls-self-signed", "--tls-cert", "a", "--tls-key", "b"}, "--tls-self-signed"},
		{"zero max-conns", []string{"echo", "--max-conns", "0"}, "max-conns"},
		{"bad subprotocol", []string{"echo", "--subprotocol", "a b"}, "subprotocol"},
		{"unknown command", []string{"nope"}, "nope"},
		{"value missing after the URL", []string{"dial", "ws://127.0.0.1:1/", "-x"}, "flag --execute needs a value"},
		{"prefix not UTF-8", []string{"echo", "--prefix", "\xff"}, "--prefix"},
		{"welcome not UTF-8", []string{"serve", "--welcome", "\xff"}, "--welcome"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), append([]string{"wsx"}, tt.args...), strings.NewReader(""), &stdout, &stderr)
			if code != exitUsage {
				t.Errorf("wsx %s: exit %d, want %d; stderr: %s", strings.Join(tt.args, " "), code, exitUsage, stderr.String())
			}
			if !strings.Contains(stderr.String(), tt.want) {
				t.Errorf("wsx %s: stderr %q does not name %q", strings.Join(tt.args, " "), stderr.String(), tt.want)
			}
		})
	}
}

func TestHelpAndVersion(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {"echo", "--help"}} {
		var stdout, stderr bytes.Buffer
		if code := run(context.Background(), append([]string{"wsx"}, args...), strings.NewReader(""), &stdout, &stderr); code != exitOK {
			t.Errorf("wsx %v: exit %d, want 0", args, code)
		}
		if !strings.Contains(stdout.String(), "EXIT CODES") {
			t.Errorf("wsx %v: help does not list the exit codes:\n%s", args, stdout.String())
		}
	}
	var stdout bytes.Buffer
	if code := run(context.Background(), []string{"wsx", "--version"}, strings.NewReader(""), &stdout, io.Discard); code != exitOK || !strings.Contains(stdout.String(), "wsx version") {
		t.Errorf("wsx --version: exit %d, output %q", code, stdout.String())
	}
}
