package main

import (
	"bytes"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/gorilla/websocket"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// scrape reads srv's /metrics with the Prometheus text parser.
func scrape(t *testing.T, srv *testServer) metricSet {
	t.Helper()
	r := apiDo(t, srv, "GET", "/metrics", nil)
	if r.status != http.StatusOK {
		t.Fatalf("/metrics: status %d: %s", r.status, r.body)
	}
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Fatalf("/metrics: Content-Type %q, want the text format", ct)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	families, err := p.TextToMetricFamilies(bytes.NewReader(r.body))
	if err != nil {
		t.Fatalf("/metrics does not parse: %v\n%s", err, r.body)
	}
	return families
}

// metricSet is a scrape's metric families by name.
type metricSet map[string]*dto.MetricFamily

// value is the value of the series name{labels} ("k=v" pairs), or -1 if
// there is no such series.
func (s metricSet) value(name string, labels ...string) float64 {
	f := s[name]
	if f == nil {
		return -1
	}
	for _, m := range f.GetMetric() {
		if matchLabels(m, labels) {
			switch {
			case m.Counter != nil:
				return m.Counter.GetValue()
			case m.Gauge != nil:
				return m.Gauge.GetValue()
			}
		}
	}
	return -1
}

// matchLabels reports whether m has exactly the labels given as "k=v".
func matchLabels(m *dto.Metric, labels []string) bool {
	if len(m.GetLabel()) != len(labels) {
		return false
	}
	for _, l := range m.GetLabel() {
		want := false
		for _, kv := range labels {
			if kv == l.GetName()+"="+l.GetValue() {
				want = true
			}
		}
		if !want {
			return false
		}
	}
	return true
}

// TestMetricsCountWhatWasSent drives a server with known traffic and checks
// that each counter moved by exactly that.
func TestMetricsCountWhatWasSent(t *testing.T) {
	srv := newTestServer(t, "serve", "--api-token", apiToken, "--history", "10")
	before := scrape(t, srv)
	for _, name := range []string{"go_goroutines", "wsx_connections", "wsx_messages_delivered_total", "wsx_clients_cut_total"} {
		if before[name] == nil {
			t.Errorf("no %s series", name)
		}
	}

	// Two raw clients and one JSON client in room m.
	raws := rawClients(t, srv.url+"m", 2)
	js, _ := jsonClient(t, srv.url+"m", nil)
	// A refused handshake (a reserved room) and a refused API call.
	if _, resp, _ := websocket.DefaultDialer.Dial(srv.url+"metrics", nil); resp == nil || resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("upgrade to /metrics: %v, want 400", resp)
	}
	raws[0].WriteMessage(websocket.TextMessage, []byte("hello"))               // to raws[1] and js
	raws[0].WriteMessage(websocket.BinaryMessage, []byte{1, 2, 3})             // to raws[1] and js
	publish(t, srv, "m", "text/plain", []byte("from api")).expect(t, 202, nil) // to all three
	publish(t, srv, "m", "text/plain", []byte("from api"), "Idempotency-Key: k").expect(t, 202, nil)
	publish(t, srv, "m", "text/plain", []byte("from api"), "Idempotency-Key: k").expect(t, 202, nil) // a replay
	for range 4 {
		readMsg(t, raws[1])
	}
	for range 2 {
		readMsg(t, raws[0])
	}
	for range 4 {
		readMsg(t, js)
	}

	after := scrape(t, srv)
	delta := func(name string, labels ...string) float64 {
		return after.value(name, labels...) - max(before.value(name, labels...), 0)
	}
	for _, tt := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"wsx_connections", []string{"protocol=raw"}, 2},
		{"wsx_connections", []string{"protocol=json"}, 1},
		{"wsx_connections_total", []string{"protocol=raw"}, 2},
		{"wsx_connections_total", []string{"protocol=json"}, 1},
		{"wsx_handshakes_refused_total", []string{"status=400"}, 1},
		{"wsx_messages_received_total", []string{"type=text"}, 1},
		{"wsx_messages_received_total", []string{"type=binary"}, 1},
		{"wsx_received_bytes_total", nil, 8},
		{"wsx_messages_delivered_total", []string{"type=text"}, 2 + 3 + 3},
		{"wsx_messages_delivered_total", []string{"type=binary"}, 2},
		{"wsx_api_publishes_total", []string{"target=room"}, 2},
		{"wsx_api_idempotent_replays_total", nil, 1},
		{"wsx_rooms", nil, 1},
		{"wsx_history_messages", nil, 4},
		{"wsx_history_bytes", nil, 5 + 3 + 8 + 8},
		{"wsx_room_clients", []string{"room=m"}, 3},
		{"wsx_room_seq", []string{"room=m"}, 4},
	} {
		if got := delta(tt.name, tt.labels...); got != tt.want {
			t.Errorf("%s%v moved by %g, want %g", tt.name, tt.labels, got, tt.want)
		}
	}
	if got := delta("wsx_sent_bytes_total"); got < 10*2 {
		t.Errorf("wsx_sent_bytes_total moved by %g, want at least the 10 deliveries' frames", got)
	}

	// Cuts, by reason.
	raws[1].WriteMessage(websocket.TextMessage, []byte{0xff})
	expectClose(t, raws[1], websocket.CloseInvalidFramePayloadData)
	for _, c := range connections(t, srv, "?room=m") {
		if c.Protocol == "json" {
			apiDo(t, srv, "DELETE", fmt.Sprint("/api/connections/", c.ID, "?code=4000"), nil).expect(t, 202, nil)
			expectClose(t, js, 4000)
		}
	}
	waitFor(t, func() bool {
		s := scrape(t, srv)
		return s.value("wsx_clients_cut_total", "reason=utf8") == 1 && s.value("wsx_clients_cut_total", "reason=api") == 1 &&
			s.value("wsx_connections", "protocol=raw") == 1 && s.value("wsx_connections", "protocol=json") == 0
	})
}

// TestMetricsBusiestRoomsOnly: per-room series exist for the busiest rooms
// only, so clients naming rooms at will cannot grow the series.
func TestMetricsBusiestRoomsOnly(t *testing.T) {
	srv := newTestServer(t, "serve", "--metrics-open")
	rawClients(t, srv.url+"big", 3)
	for i := range metricsTopRooms + 2 {
		dialTest(t, fmt.Sprintf("%sroom-%02d", srv.url, i), nil)
	}
	waitFor(t, func() bool { return scrape(t, srv).value("wsx_rooms") == metricsTopRooms+3 })
	s := scrape(t, srv)
	if n := len(s["wsx_room_clients"].GetMetric()); n != metricsTopRooms {
		t.Errorf("%d rooms have series, want %d", n, metricsTopRooms)
	}
	if got := s.value("wsx_room_clients", "room=big"); got != 3 {
		t.Errorf("wsx_room_clients{room=big} = %g, want 3", got)
	}
	// A second server in the same process has its own registry.
	other := newTestServer(t, "serve", "--metrics-open")
	if got := scrape(t, other).value("wsx_rooms"); got != 0 {
		t.Errorf("another server's wsx_rooms = %g, want 0", got)
	}
}

func TestBusiest(t *testing.T) {
	rooms := []roomStat{{name: "b", clients: 2}, {name: "a", clients: 2}, {name: "quiet", seq: 9}, {name: "c", clients: 5}, {name: "d", clients: 2, seq: 1}}
	got := []string{}
	for _, r := range busiest(rooms, 3) {
		got = append(got, r.name)
	}
	if want := "[c d a]"; fmt.Sprint(got) != want {
		t.Errorf("busiest = %v, want %s", got, want)
	}
	if n := len(busiest([]roomStat{{name: "empty"}}, 3)); n != 0 {
		t.Errorf("busiest of rooms without clients: %d, want none", n)
	}
}
