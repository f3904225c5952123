package main

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"sync"
	"testing"

	"github.com/gorilla/websocket"
)

// BenchmarkServeBroadcast measures the relay of 64-byte binary messages
// from one publisher to many subscribers, all raw sockets that allocate
// nothing, so allocs/op is the server's cost per message (each op is one
// message, delivered to every subscriber). The publisher runs ahead of the
// subscribers by at most a window of messages, so queues stay far below
// --send-queue.
func BenchmarkServeBroadcast(b *testing.B) {
	for _, subs := range []int{10, 100, 500} {
		b.Run(fmt.Sprintf("subscribers=%d", subs), func(b *testing.B) {
			srv := newTestServer(b, "serve", "-q", "--history", "0", "--ping-interval", "0")
			pub := newRawClient(b, srv.url)
			clients := make([]*rawClient, subs)
			for i := range clients {
				clients[i] = newRawClient(b, srv.url)
			}
			payload := bytes.Repeat([]byte("m"), 64)
			frame := maskedFrame(websocket.BinaryMessage, payload)
			const window = 2048
			progress := make([]chan int, subs)
			b.ReportAllocs()
			b.ResetTimer()
			var wg sync.WaitGroup
			for i, c := range clients {
				progress[i] = make(chan int, b.N/window+2)
				wg.Add(1)
				go func() {
					defer wg.Done()
					msg := make([]byte, 2+len(payload))
					for n := 1; n <= b.N; n++ {
						if _, err := io.ReadFull(c.r, msg); err != nil {
							b.Error(err)
							return
						}
						if n%window == 0 {
							progress[i] <- n
						}
					}
				}()
			}
			for n := 1; n <= b.N; n++ {
				binary.BigEndian.PutUint32(frame[6:], uint32(n)) // masked bytes: any value will do
				if _, err := pub.conn.Write(frame); err != nil {
					b.Fatal(err)
				}
				if n%window == 0 && n >= 2*window {
					for _, p := range progress {
						<-p // let the slowest subscriber come within two windows
					}
				}
			}
			wg.Wait()
			b.ReportMetric(float64(b.N)*float64(subs)/b.Elapsed().Seconds(), "deliveries/s")
		})
	}
}
