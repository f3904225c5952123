package main

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"

	"github.com/urfave/cli/v2"
)

// The HTTP API of wsx serve: a backend publishes to rooms, reads them, and
// manages this instance's connections with plain HTTP requests. Every
// answer is JSON, errors included ({"error": "..."}), with the status that
// says what happened.

// apiName is the sender name of API messages without ?from=; no client
// may choose it.
const apiName = "api"

// reservedRooms are the first path segments of serve's HTTP endpoints: no
// room is named so, nor placed under one.
var reservedRooms = []string{"api", "metrics", "healthz", "readyz"}

// reservedRoom reports whether a room name is, or is under, a reserved one,
// or starts with the page's asset prefix.
func reservedRoom(room string) bool {
	first, _, _ := strings.Cut(room, "/")
	return slices.Contains(reservedRooms, first) || strings.HasPrefix(room, assetPrefix)
}

// apiConfig says who may use the API and /metrics.
type apiConfig struct {
	token       string // --api-token: the bearer token the API wants
	open        bool   // --api-open: the API and /metrics need no token
	metricsOpen bool   // --metrics-open: /metrics needs no token
}

// apiFlags are serve's flags for the API and /metrics.
func apiFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: flagAPIToken, EnvVars: []string{"WSX_API_TOKEN"}, Usage: "turn on the HTTP API under /api/, for requests with Authorization: Bearer `TOKEN` (also guards /metrics)"},
		&cli.BoolFlag{Name: flagAPIOpen, Usage: "turn on the HTTP API (and /metrics) without a token: anyone who reaches the port can push and close"},
		&cli.BoolFlag{Name: flagMetricsOpen, Usage: "serve /metrics without a token"},
	}
}

// readAPIConfig reads the API flags.
func readAPIConfig(c *cli.Context) (apiConfig, error) {
	cfg := apiConfig{token: c.String(flagAPIToken), open: c.Bool(flagAPIOpen), metricsOpen: c.Bool(flagMetricsOpen)}
	if cfg.open && cfg.token != "" {
		return cfg, usagef("--%s and --%s (or WSX_API_TOKEN) contradict each other: choose one", flagAPIOpen, flagAPIToken)
	}
	return cfg, nil
}

// api serves /api/ for one hub.
type api struct {
	cfg     apiConfig
	hub     *hub
	log     *slog.Logger
	maxBody int64 // --max-message-size
	idem    *idempotencyCache
	metrics *serveMetrics
}

// newAPI returns the API of h.
func newAPI(cfg apiConfig, h *hub, log *slog.Logger, maxBody int64, m *serveMetrics) *api {
	return &api{cfg: cfg, hub: h, log: log, maxBody: maxBody, idem: newIdempotencyCache(idempotencyTTL, idempotencyMaxKeys), metrics: m}
}

// handler routes /api/ behind the token check.
func (a *api) handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/api/rooms", methods{http.MethodGet: a.listRooms})
	mux.Handle("/api/rooms/{room}", methods{http.MethodGet: a.getRoom})
	mux.Handle("/api/rooms/{room}/messages", methods{http.MethodGet: a.roomHistory, http.MethodPost: a.publishToRoom})
	mux.Handle("/api/connections", methods{http.MethodGet: a.listConnections})
	mux.Handle("/api/connections/{id}", methods{http.MethodGet: a.getConnection, http.MethodDelete: a.closeConnection})
	mux.Handle("/api/connections/{id}/messages", methods{http.MethodPost: a.pushToConnection})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "no such API endpoint: %s (see README: Push from your backend)", r.URL.Path)
	})
	// Backends send no Origin; a browser does, and a page from elsewhere
	// could otherwise post to an --api-open server on the user's machine.
	csrf := http.NewCrossOriginProtection()
	csrf.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusForbidden, "cross-origin requests from browsers are refused: the API is for backends")
	}))
	return guard(a.cfg.token, a.cfg.open, "the HTTP API is off: start wsx serve with --api-token or --api-open", csrf.Handler(mux))
}

// guard lets a request through when open, or when it carries the bearer
// token. Without a token to check and not open, everything is 404, with
// off as the explanation.
func guard(token string, open bool, off string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case open:
		case token == "":
			writeError(w, http.StatusNotFound, "%s", off)
			return
		default:
			if herr := checkBearer(r, token); herr != nil {
				writeHTTPError(w, herr)
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// checkBearer checks the request's Authorization: Bearer token against
// want, in constant time (digests of equal length, so not even the
// length leaks). The query string is never read: it ends up in logs.
func checkBearer(r *http.Request, want string) *httpError {
	scheme, got, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(got) == "" {
		return apiUnauthorized("missing API token: send Authorization: Bearer TOKEN (the --api-token)")
	}
	g, w := sha256.Sum256([]byte(strings.TrimSpace(got))), sha256.Sum256([]byte(want))
	if subtle.ConstantTimeCompare(g[:], w[:]) != 1 {
		return apiUnauthorized("invalid API token")
	}
	return nil
}

// apiUnauthorized is a 401 asking for the API's bearer token.
func apiUnauthorized(msg string) *httpError {
	return &httpError{status: http.StatusUnauthorized, msg: msg, header: http.Header{"Www-Authenticate": {`Bearer realm="wsx api"`}}}
}

// methods routes one path's requests by method (HEAD as GET), answering
// any other method 405 with an Allow header and a JSON error.
type methods map[string]http.HandlerFunc

func (m methods) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h, ok := m[r.Method]
	if !ok && r.Method == http.MethodHead {
		h, ok = m[http.MethodGet]
	}
	if ok {
		h(w, r)
		return
	}
	allow := make([]string, 0, len(m)+1)
	for method := range m {
		allow = append(allow, method)
		if method == http.MethodGet {
			allow = append(allow, http.MethodHead)
		}
	}
	slices.Sort(allow)
	w.Header().Set("Allow", strings.Join(allow, ", "))
	writeError(w, http.StatusMethodNotAllowed, "method %s is not allowed on %s (allowed: %s)", r.Method, r.URL.Path, strings.Join(allow, ", "))
}

// apiError is the body of every error answer.
type apiError struct {
	Error string `json:"error"`
}

// writeError answers status with a JSON error.
func writeError(w http.ResponseWriter, status int, format string, args ...any) {
	writeJSON(w, status, apiError{fmt.Sprintf(format, args...)})
}

// writeHTTPError answers an httpError as a JSON error.
func writeHTTPError(w http.ResponseWriter, herr *httpError) {
	for k, v := range herr.header {
		w.Header()[k] = v
	}
	writeError(w, herr.status, "%s", herr.msg)
}

// writeJSON answers status with v as JSON.
func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"error":"encoding the answer failed"}`)
	}
	writeJSONBytes(w, status, b)
}

// writeJSONBytes answers status with b, a JSON document.
func writeJSONBytes(w http.ResponseWriter, status int, b []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	w.Write(b)
	w.Write([]byte("\n"))
}
