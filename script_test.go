package main

import (
	"bufio"
	"cmp"
	"context"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"
)

// TestScript runs the testscript files in testdata/script: one per README
// example, so the documentation cannot drift from what wsx does. Scripts run
// the wsx binary built by TestMain.
func TestScript(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Dir:                 "testdata/script",
		RequireExplicitExec: true,
		Setup: func(env *testscript.Env) error {
			env.Setenv("PATH", filepath.Dir(wsxBinary)+string(filepath.ListSeparator)+env.Getenv("PATH"))
			return nil
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"wsxserver": cmdServer,
			"http":      cmdHTTP,
		},
	})
}

// cmdServer is the script command "wsxserver ARGS...": it starts
// "wsx ARGS... --addr 127.0.0.1:0", waits for its start line and exports
// the URL it printed as $URL, and its http:// form as $HTTP. The server gets SIGTERM when the script ends.
// The server itself proves it is ready; nothing sleeps.
func cmdServer(ts *testscript.TestScript, neg bool, args []string) {
	if neg {
		ts.Fatalf("unsupported: ! wsxserver")
	}
	cmd := exec.Command(wsxBinary, append(args, "--addr", "127.0.0.1:0")...)
	cmd.Dir = ts.Getenv("WORK")
	stdout, err := cmd.StdoutPipe()
	ts.Check(err)
	stderr := new(syncBuffer)
	cmd.Stderr = stderr
	ts.Check(cmd.Start())
	ts.Defer(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
	})
	line := make(chan string, 1)
	go func() {
		l, _ := bufio.NewReader(stdout).ReadString('\n')
		line <- strings.TrimSpace(l)
	}()
	select {
	case l := <-line:
		m := startLine.FindStringSubmatch(l)
		if m == nil {
			ts.Fatalf("wsx %s: no start line (got %q); stderr:\n%s", strings.Join(args, " "), l, stderr.String())
		}
		ts.Setenv("URL", m[1])
		ts.Setenv("HTTP", httpURL(m[1]))
	case <-time.After(testTimeout):
		ts.Fatalf("wsx %s: no start line within %s", strings.Join(args, " "), testTimeout)
	}
}

// cmdHTTP is the script command "http [-X METHOD] [-H 'NAME: VALUE']...
// [--data-binary DATA] URL": the few curl options the README's examples
// use, since scripts cannot count on curl being installed. It writes the
// response body to stdout and "HTTP STATUS" to stderr, and fails on a
// status that is not 2xx (so "! http" expects an error answer).
func cmdHTTP(ts *testscript.TestScript, neg bool, args []string) {
	method, body := "", ""
	header := http.Header{}
	for len(args) > 1 {
		switch args[0] {
		case "-X":
			method = args[1]
		case "-H":
			name, value, _ := strings.Cut(args[1], ":")
			header.Add(name, strings.TrimSpace(value))
		case "--data-binary":
			body = args[1]
			method = cmp.Or(method, http.MethodPost)
		default:
			ts.Fatalf("usage: http [-X METHOD] [-H 'NAME: VALUE']... [--data-binary DATA] URL")
		}
		args = args[2:]
	}
	if len(args) != 1 {
		ts.Fatalf("usage: http [-X METHOD] [-H 'NAME: VALUE']... [--data-binary DATA] URL")
	}
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, cmp.Or(method, http.MethodGet), args[0], strings.NewReader(body))
	ts.Check(err)
	req.Header = header
	resp, err := http.DefaultClient.Do(req)
	ts.Check(err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	ts.Check(err)
	ts.Stdout().Write(b)
	fmt.Fprintf(ts.Stderr(), "HTTP %d\n", resp.StatusCode)
	if ok := resp.StatusCode/100 == 2; ok == neg {
		ts.Fatalf("HTTP %d", resp.StatusCode)
	}
}
