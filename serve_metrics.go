package main

import (
	"cmp"
	"net/http"
	"slices"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// GET /metrics of wsx serve, in the Prometheus text format. Each server
// has a registry of its own, never the process-wide default one, so tests
// can run many servers in one process. The hub's counters are read when
// scraped (hubCollector): counting costs the fan-out nothing per delivery.

// metricsTopRooms is how many rooms, the busiest by clients, get series of
// their own; a bound, so that clients naming rooms at will cannot grow
// the number of series.
const metricsTopRooms = 10

// serveMetrics is the registry of one server and the counters kept
// outside the hub.
type serveMetrics struct {
	reg          *prometheus.Registry
	refused      *prometheus.CounterVec // handshakes refused, by status
	apiPublishes *prometheus.CounterVec // by target: room or connection
	apiReplays   prometheus.Counter     // publishes answered from an Idempotency-Key
}

// newServeMetrics returns the metrics of a server with hub h.
func newServeMetrics(h *hub) *serveMetrics {
	m := &serveMetrics{
		reg: prometheus.NewRegistry(),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "wsx_handshakes_refused_total",
			Help: "WebSocket upgrade requests answered with an HTTP error instead of 101, by status."}, []string{"status"}),
		apiPublishes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "wsx_api_publishes_total",
			Help: "Messages published through the HTTP API, by target: room or connection."}, []string{"target"}),
		apiReplays: prometheus.NewCounter(prometheus.CounterOpts{Name: "wsx_api_idempotent_replays_total",
			Help: "API publishes answered with the first answer to their Idempotency-Key, not published again."}),
	}
	m.apiPublishes.WithLabelValues("room")
	m.apiPublishes.WithLabelValues("connection")
	m.reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		hubCollector{h},
		m.refused, m.apiPublishes, m.apiReplays,
	)
	return m
}

// handler serves /metrics: with the API's token, or without one when
// --metrics-open or --api-open; otherwise 404.
func (m *serveMetrics) handler(cfg apiConfig) http.Handler {
	h := promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
	return guard(cfg.token, cfg.open || cfg.metricsOpen, "/metrics is off: start wsx serve with --metrics-open, --api-token or --api-open",
		methods{http.MethodGet: h.ServeHTTP})
}

// countRefusals wraps the upgrade handler so that every refused handshake
// is counted by its status. An accepted one is hijacked and writes no
// status through the wrapper.
func (m *serveMetrics) countRefusals(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		next.ServeHTTP(&refusalRecorder{ResponseWriter: w, refused: m.refused}, r)
	})
}

// refusalRecorder counts the status written through it. Unwrap lets
// http.ResponseController reach the hijacker underneath.
type refusalRecorder struct {
	http.ResponseWriter
	refused *prometheus.CounterVec
}

func (rr *refusalRecorder) WriteHeader(status int) {
	rr.refused.WithLabelValues(strconv.Itoa(status)).Inc()
	rr.ResponseWriter.WriteHeader(status)
}

func (rr *refusalRecorder) Unwrap() http.ResponseWriter { return rr.ResponseWriter }

// The hub's series.
var (
	descConnections = prometheus.NewDesc("wsx_connections",
		"Connections in a room now, by protocol: raw, or json (wsx.chat.v1).", []string{"protocol"}, nil)
	descConnectionsTotal = prometheus.NewDesc("wsx_connections_total",
		"Connections that joined a room, by protocol.", []string{"protocol"}, nil)
	descReceived = prometheus.NewDesc("wsx_messages_received_total",
		"Data messages received from clients, by type (text, binary), refused ones included.", []string{"type"}, nil)
	descReceivedBytes = prometheus.NewDesc("wsx_received_bytes_total",
		"Payload bytes of the data messages received from clients.", nil, nil)
	descDelivered = prometheus.NewDesc("wsx_messages_delivered_total",
		"Messages queued for or written to a client, one per receiving client, by type; history replayed to joiners excluded.", []string{"type"}, nil)
	descSentBytes = prometheus.NewDesc("wsx_sent_bytes_total",
		"Bytes of the data frames queued for or written to clients: messages, events, welcomes and history.", nil, nil)
	descCut = prometheus.NewDesc("wsx_clients_cut_total",
		"Clients the server closed, by reason: slow_consumer, rate, size, utf8, read_only, api.", []string{"reason"}, nil)
	descRooms = prometheus.NewDesc("wsx_rooms",
		"Rooms with at least one client.", nil, nil)
	descHistory = prometheus.NewDesc("wsx_history_messages",
		"Messages kept in the rooms' histories for late joiners.", nil, nil)
	descHistoryBytes = prometheus.NewDesc("wsx_history_bytes",
		"Data bytes of the messages kept in the rooms' histories.", nil, nil)
	descRoomClients = prometheus.NewDesc("wsx_room_clients",
		"Clients of a room, for the 10 rooms with the most clients only.", []string{"room"}, nil)
	descRoomSeq = prometheus.NewDesc("wsx_room_seq",
		"Number of a room's last message, for the 10 rooms with the most clients only.", []string{"room"}, nil)
)

// hubCollector reads the hub's counters at scrape time.
type hubCollector struct{ h *hub }

func (hc hubCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descConnections, descConnectionsTotal, descReceived, descReceivedBytes, descDelivered,
		descSentBytes, descCut, descRooms, descHistory, descHistoryBytes, descRoomClients, descRoomSeq} {
		ch <- d
	}
}

func (hc hubCollector) Collect(ch chan<- prometheus.Metric) {
	st := &hc.h.stats
	for i, p := range protoNames {
		ch <- prometheus.MustNewConstMetric(descConnections, prometheus.GaugeValue, float64(st.open[i].Load()), p)
		ch <- prometheus.MustNewConstMetric(descConnectionsTotal, prometheus.CounterValue, float64(st.opened[i].Load()), p)
	}
	delivered, sentBytes := hc.h.deliveries()
	for i, t := range typeNames {
		ch <- prometheus.MustNewConstMetric(descReceived, prometheus.CounterValue, float64(st.received[i].Load()), t)
		ch <- prometheus.MustNewConstMetric(descDelivered, prometheus.CounterValue, float64(delivered[i]), t)
	}
	ch <- prometheus.MustNewConstMetric(descReceivedBytes, prometheus.CounterValue, float64(st.receivedBytes.Load()))
	ch <- prometheus.MustNewConstMetric(descSentBytes, prometheus.CounterValue, float64(sentBytes))
	for i, reason := range cutNames {
		ch <- prometheus.MustNewConstMetric(descCut, prometheus.CounterValue, float64(st.cut[i].Load()), reason)
	}
	hc.collectRooms(ch)
}

// collectRooms sends the room totals and the busiest rooms' series.
func (hc hubCollector) collectRooms(ch chan<- prometheus.Metric) {
	rooms := hc.h.roomStats()
	active, history, historyBytes := 0, 0, 0
	for _, r := range rooms {
		if r.clients > 0 {
			active++
		}
		history += r.history
		historyBytes += r.historyBytes
	}
	ch <- prometheus.MustNewConstMetric(descRooms, prometheus.GaugeValue, float64(active))
	ch <- prometheus.MustNewConstMetric(descHistory, prometheus.GaugeValue, float64(history))
	ch <- prometheus.MustNewConstMetric(descHistoryBytes, prometheus.GaugeValue, float64(historyBytes))
	for _, r := range busiest(rooms, metricsTopRooms) {
		ch <- prometheus.MustNewConstMetric(descRoomClients, prometheus.GaugeValue, float64(r.clients), r.name)
		ch <- prometheus.MustNewConstMetric(descRoomSeq, prometheus.GaugeValue, float64(r.seq), r.name)
	}
}

// busiest returns at most n rooms with clients, those with the most
// clients first (then the most messages, then by name, so the choice is
// stable). It reorders rooms.
func busiest(rooms []roomStat, n int) []roomStat {
	slices.SortFunc(rooms, func(x, y roomStat) int {
		if c := cmp.Compare(y.clients, x.clients); c != 0 {
			return c
		}
		if c := cmp.Compare(y.seq, x.seq); c != 0 {
			return c
		}
		return cmp.Compare(x.name, y.name)
	})
	k := 0
	for k < len(rooms) && k < n && rooms[k].clients > 0 {
		k++
	}
	return rooms[:k]
}
