package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// benchBatch is how many lines one benchmark op pipes through: with
// -benchtime 1000x an op count of 1000 is the 1,000,000 lines of issue 3.
const benchBatch = 1000

// BenchmarkDialPipe measures piped throughput: short lines written to a
// client's stdin, echoed by wsx echo --prefix "" and read back from the
// client's stdout. Each op is a batch of benchBatch lines, and one batch is
// always in flight ahead of the one being read. Clients: wsx dial run
// in-process (allocs/op is the client's and the server's), the wsx binary
// built without the race detector, and wscat when it is installed.
//
//	go test -run '^$' -bench BenchmarkDialPipe -benchtime 1000x
func BenchmarkDialPipe(b *testing.B) {
	srv := newTestServer(b, "echo", "-q", "--prefix", "", "--ping-interval", "0")
	batch := benchLines()
	b.Run("in-process", func(b *testing.B) {
		inR, inW := io.Pipe()
		outR, outW := io.Pipe()
		done := make(chan int, 1)
		go func() {
			done <- run(context.Background(), []string{"wsx", "dial", srv.url, "-q", "--wait", "0"}, inR, outW, io.Discard)
			outW.Close()
		}()
		b.Cleanup(func() {
			inW.Close()
			go io.Copy(io.Discard, outR)
			<-done
		})
		benchPipe(b, inW, bufio.NewReaderSize(outR, 64<<10), batch)
	})
	clients := []struct{ name, path string }{{"binary", plainBinary(b)}, {"wscat", "wscat"}}
	for _, c := range clients {
		b.Run(c.name, func(b *testing.B) {
			path, err := exec.LookPath(c.path)
			if err != nil {
				b.Skipf("%s is not installed", c.path)
			}
			args := []string{"dial", srv.url, "-q", "--wait", "-1"}
			if c.name == "wscat" {
				args = []string{"-c", srv.url}
			}
			p := startProcess(b, path, args...)
			benchPipe(b, p.stdin, p.stdout, batch)
		})
	}
}

// benchLines is one batch of short numbered lines.
func benchLines() []byte {
	var b strings.Builder
	for i := range benchBatch {
		fmt.Fprintf(&b, "line %06d\n", i)
	}
	return []byte(b.String())
}

// benchPipe runs the benchmark loop over a client's stdin and stdout.
func benchPipe(b *testing.B, stdin io.Writer, stdout *bufio.Reader, batch []byte) {
	syncClient(b, stdin, stdout)
	b.ReportAllocs()
	if _, err := stdin.Write(batch); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := stdin.Write(batch); err != nil {
			b.Fatal(err)
		}
		for range benchBatch {
			if _, err := stdout.ReadSlice('\n'); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(b.N*benchBatch)/b.Elapsed().Seconds(), "lines/s")
}

// syncClient waits until the client is connected and echoing: it sends a
// probe until one comes back (wscat drops lines read before it connects),
// then a marker, and reads up to the marker.
func syncClient(b *testing.B, stdin io.Writer, stdout *bufio.Reader) {
	got := make(chan error, 1)
	go func() {
		for {
			line, err := stdout.ReadString('\n')
			if err != nil || strings.HasSuffix(line, "probe\n") {
				got <- err
				return
			}
		}
	}()
	deadline := time.After(testTimeout)
	for probing := true; probing; {
		io.WriteString(stdin, "probe\n")
		select {
		case err := <-got:
			if err != nil {
				b.Fatal(err)
			}
			probing = false
		case <-time.After(100 * time.Millisecond):
		case <-deadline:
			b.Fatal("the client echoes nothing")
		}
	}
	io.WriteString(stdin, "marker\n")
	for {
		line, err := stdout.ReadString('\n')
		if err != nil {
			b.Fatal(err)
		}
		if strings.HasSuffix(line, "marker\n") { // wscat writes "> " prompts too
			return
		}
	}
}

var (
	plainOnce sync.Once
	plainPath string
)

// plainBinary builds wsx without the race detector, once, for benchmarks.
func plainBinary(b *testing.B) string {
	plainOnce.Do(func() {
		plainPath = filepath.Join(filepath.Dir(wsxBinary), "wsx-plain")
		build := exec.Command("go", "build", "-o", plainPath, ".")
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			plainPath = ""
		}
	})
	if plainPath == "" {
		b.Fatal("go build failed")
	}
	return plainPath
}
