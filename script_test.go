package main

import (
	"bufio"
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
		},
	})
}

// cmdServer is the script command "wsxserver ARGS...": it starts
// "wsx ARGS... --addr 127.0.0.1:0", waits for its start line and exports
// the URL it printed as $URL. The server gets SIGTERM when the script ends.
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
	case <-time.After(testTimeout):
		ts.Fatalf("wsx %s: no start line within %s", strings.Join(args, " "), testTimeout)
	}
}
