package main

import (
	_ "embed"
	"net/http"
)

// chatPage is the browser chat page served on plain GETs by wsx serve. It
// derives ws: or wss: and the room from its own location, so no server
// value is placed in the HTML.
//
//go:embed chat.html
var chatPage []byte

// servePage serves the chat page for any room path.
func servePage(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache")
	w.Write(chatPage)
}
