package main

import (
	"bytes"
	"fmt"
	"io"
	"sync"
	"testing"

	"github.com/gorilla/websocket"
)

// BenchmarkEchoRoundTrip measures round trips of 64-byte text messages
// through wsx echo with 1 and 50 concurrent clients. The clients are raw
// sockets writing a pre-masked frame and reading the reply into a fixed
// buffer, so they allocate nothing and allocs/op is the server's cost per
// message.
func BenchmarkEchoRoundTrip(b *testing.B) {
	for _, clients := range []int{1, 50} {
		b.Run(fmt.Sprintf("clients=%d", clients), func(b *testing.B) {
			srv := newTestServer(b, "echo", "-q", "--ping-interval", "0")
			conns := make([]*rawClient, clients)
			for i := range conns {
				conns[i] = newRawClient(b, srv.url)
			}
			payload := bytes.Repeat([]byte("x"), 64)
			frame := maskedFrame(websocket.TextMessage, payload)
			replyLen := 2 + len(defaultPrefix) + len(payload)
			b.ReportAllocs()
			b.ResetTimer()
			var wg sync.WaitGroup
			per := b.N / clients
			for i, c := range conns {
				n := per
				if i == 0 {
					n += b.N % clients // the remainder is not dropped
				}
				wg.Add(1)
				go func() {
					defer wg.Done()
					reply := make([]byte, replyLen)
					for range n {
						if _, err := c.conn.Write(frame); err != nil {
							b.Error(err)
							return
						}
						if _, err := io.ReadFull(c.r, reply); err != nil {
							b.Error(err)
							return
						}
					}
				}()
			}
			wg.Wait()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "roundtrips/s")
		})
	}
}
