package main

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"net/http"
	"path"
	"time"
)

// The chat page of wsx serve: web/index.html at GET /{room} for every room,
// and its files at /.wsx/NAME. The page is plain HTML, CSS and JavaScript
// with no build step and nothing from elsewhere, so it works offline. It
// takes the room, ws: or wss:, and ?token= and ?name= from its own
// location: no server value is placed in the HTML.

// webFiles are the page's files.
//
//go:embed web
var webFiles embed.FS

// assetPrefix starts the path of the page's files; no room name may start
// with it, so the two never meet.
const assetPrefix = ".wsx"

// pageCSP is the Content-Security-Policy of the page and its files: its
// own scripts and styles only (no inline script, style or event handler),
// nothing from another origin, images and media also from the blob: URLs
// the page makes of received files. connect-src 'self' allows WebSockets to
// the page's own host and port, ws: from http: and wss: from https: (CSP
// Level 3, as browsers implement it).
const pageCSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob:; media-src 'self' blob:; " +
	"connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// webAsset is one of the page's files, ready to serve.
type webAsset struct {
	body  []byte
	ctype string
	etag  string
}

// assetTypes are the Content-Types of the page's files, by extension: fixed
// here, not taken from the system's table, which differs between machines.
var assetTypes = map[string]string{
	".html": "text/html; charset=utf-8",
	".css":  "text/css; charset=utf-8",
	".js":   "text/javascript; charset=utf-8",
	".svg":  "image/svg+xml",
}

// webAssets are the page's files by name, read once.
var webAssets = loadWebAssets()

// loadWebAssets reads the embedded files. A file of a type not in
// assetTypes is a mistake in the repository, caught by the page's tests.
func loadWebAssets() map[string]webAsset {
	entries, _ := webFiles.ReadDir("web") // embedded: cannot fail
	assets := make(map[string]webAsset, len(entries))
	for _, e := range entries {
		body, _ := webFiles.ReadFile("web/" + e.Name())
		sum := sha256.Sum256(body)
		assets[e.Name()] = webAsset{body: body, ctype: assetTypes[path.Ext(e.Name())], etag: `"` + hex.EncodeToString(sum[:8]) + `"`}
	}
	return assets
}

// handleAssets routes the page's files on mux.
func handleAssets(mux *http.ServeMux) {
	mux.HandleFunc("GET /"+assetPrefix+"/{name}", func(w http.ResponseWriter, r *http.Request) {
		a, ok := webAssets[r.PathValue("name")]
		if !ok || r.PathValue("name") == "index.html" {
			http.NotFound(w, r)
			return
		}
		serveAsset(w, r, a)
	})
}

// servePage answers GET /{room} with the page, or 400 for a path that
// names no room. Reserved names are the caller's to refuse.
func servePage(w http.ResponseWriter, r *http.Request) {
	if !validRoom(roomOf(r.URL.Path)) {
		http.Error(w, "invalid room name", http.StatusBadRequest)
		return
	}
	serveAsset(w, r, webAssets["index.html"])
}

// serveAsset answers with one of the page's files. Browsers revalidate it
// on every load (no-cache) and get 304 while it has not changed.
func serveAsset(w http.ResponseWriter, r *http.Request, a webAsset) {
	h := w.Header()
	h.Set("Content-Type", a.ctype)
	h.Set("Content-Security-Policy", pageCSP)
	h.Set("X-Content-Type-Options", "nosniff")
	// The page's URL may hold ?token=: links in messages must not carry
	// it away in a Referer.
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-cache")
	h.Set("ETag", a.etag)
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(a.body))
}
