package main

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"
)

func TestFlagsFirst(t *testing.T) {
	flags := []cli.Flag{
		&cli.StringFlag{Name: "header", Aliases: []string{"H"}},
		&cli.StringFlag{Name: "wait"},
		&cli.BoolFlag{Name: "verbose", Aliases: []string{"v"}},
	}
	tests := []struct {
		name string
		args []string
		want []string
		help bool
	}{
		{"flags before", []string{"--verbose", "--header", "A: b", "URL"}, []string{"--verbose", "--header", "A: b", "--", "URL"}, false},
		{"flags after", []string{"URL", "--header", "A: b", "--verbose"}, []string{"--header", "A: b", "--verbose", "--", "URL"}, false},
		{"both sides", []string{"--verbose", "URL", "--header", "A: b"}, []string{"--verbose", "--header", "A: b", "--", "URL"}, false},
		{"aliases become names", []string{"-v", "URL", "-H", "A: b", "--H=C: d", "-header", "E: f"}, []string{"--verbose", "--header", "A: b", "--header=C: d", "-header", "E: f", "--", "URL"}, false},
		{"value with =", []string{"URL", "--wait=2s"}, []string{"--wait=2s", "--", "URL"}, false},
		{"value that looks like a flag", []string{"URL", "--wait", "-1"}, []string{"--wait", "-1", "--", "URL"}, false},
		{"bool takes no value", []string{"--verbose", "URL", "extra"}, []string{"--verbose", "--", "URL", "extra"}, false},
		{"double dash ends flags", []string{"URL", "--", "-v"}, []string{"--", "URL", "-v"}, false},
		{"lone dash is an argument", []string{"-", "--verbose"}, []string{"--verbose", "--", "-"}, false},
		{"unknown flag kept for urfave to refuse", []string{"URL", "--nope"}, []string{"--nope", "--", "URL"}, false},
		{"value missing at the end", []string{"URL", "--header"}, []string{"--header"}, false},
		{"help after the URL", []string{"URL", "--help"}, []string{"--help", "--", "URL"}, true},
		{"-h", []string{"-h"}, []string{"-h", "--"}, true},
		{"help as a value is not help", []string{"-H", "--help", "URL"}, []string{"--header", "--help", "--", "URL"}, false},
		{"nothing", nil, []string{"--"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, help := flagsFirst(flags, tt.args)
			if !slices.Equal(got, tt.want) || help != tt.help {
				t.Errorf("flagsFirst(%q) = %q, help %v; want %q, help %v", tt.args, got, help, tt.want, tt.help)
			}
		})
	}
}

// TestDialFlagsAfterURL checks that flags after the URL take effect, global
// ones included, and that help works wherever it is asked for.
func TestDialFlagsAfterURL(t *testing.T) {
	headers := make(chan http.Header, 1)
	url := newPeer(t, func(w http.ResponseWriter, r *http.Request) {
		headers <- r.Header
		c := accept(t, w, r)
		c.ReadMessage()
	})
	r := dialInProcess(t, strings.NewReader(""), url, "-H", "X-A: 1", "--wait", "0", "-v", "-H", "X-B: 2")
	r.wantExit(t, exitOK)
	h := <-headers
	if h.Get("X-A") != "1" || h.Get("X-B") != "2" {
		t.Errorf("headers after the URL did not reach the server: %v", h)
	}
	if !strings.Contains(r.stderr, "> GET / HTTP/1.1") {
		t.Errorf("-v after the URL did not show the handshake:\n%s", r.stderr)
	}
	for _, args := range [][]string{{"dial", "--help"}, {"dial", "ws://x/", "--help"}, {"help", "dial"}} {
		var stdout, stderr syncBuffer
		code := run(context.Background(), append([]string{"wsx"}, args...), strings.NewReader(""), &stdout, &stderr)
		if code != exitOK || !strings.Contains(stdout.String(), "--reconnect") || !strings.Contains(stdout.String(), "EXIT CODES") {
			t.Errorf("wsx %s: exit %d, help:\n%s\nstderr: %s", strings.Join(args, " "), code, stdout.String(), stderr.String())
		}
	}
}
