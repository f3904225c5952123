package main

import (
	"io"
	"net/http"
	"path"
	"regexp"
	"strings"
	"testing"
)

// TestPageServed: every room path serves the page, its files are at
// /.wsx/, each with its type, the Content-Security-Policy and nosniff;
// an unchanged file is answered 304.
func TestPageServed(t *testing.T) {
	srv := newTestServer(t, "serve")
	base := httpURL(srv.url)
	tests := []struct {
		path   string
		status int
		ctype  string
		body   string // part of the body
	}{
		{"", 200, "text/html; charset=utf-8", `<script type="module" src="/.wsx/chat.js">`},
		{"team-a", 200, "text/html; charset=utf-8", "<html"},
		{"a/b/c?name=x&token=y", 200, "text/html; charset=utf-8", "<html"},
		{".wsx/chat.js", 200, "text/javascript; charset=utf-8", "wsx.chat.v1"},
		{".wsx/view.js", 200, "text/javascript; charset=utf-8", "textContent"},
		{".wsx/compose.js", 200, "text/javascript; charset=utf-8", "export class Composer"},
		{".wsx/chat.css", 200, "text/css; charset=utf-8", "prefers-color-scheme: dark"},
		{".wsx/icon.svg", 200, "image/svg+xml", "<svg"},
		{".wsx/index.html", 404, "", ""},
		{".wsx/nope.js", 404, "", ""},
		{".wsx/", 400, "", "reserved for the chat page's files"},
		{".wsxroom", 400, "", "reserved for the chat page's files"},
		{"%01", 400, "", "invalid room"},
	}
	for _, tt := range tests {
		resp, err := http.Get(base + tt.path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tt.status || !strings.Contains(string(body), tt.body) {
			t.Errorf("GET /%s: %s %q, want %d with %q", tt.path, resp.Status, cut(string(body), 80), tt.status, tt.body)
			continue
		}
		if tt.status != 200 {
			continue
		}
		h := resp.Header
		if h.Get("Content-Type") != tt.ctype || h.Get("Content-Security-Policy") != pageCSP || h.Get("X-Content-Type-Options") != "nosniff" || h.Get("Referrer-Policy") != "no-referrer" {
			t.Errorf("GET /%s: headers %v", tt.path, h)
		}
		req, _ := http.NewRequest("GET", base+tt.path, nil)
		req.Header.Set("If-None-Match", h.Get("ETag"))
		again, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		again.Body.Close()
		if again.StatusCode != http.StatusNotModified {
			t.Errorf("GET /%s with its ETag: %s, want 304", tt.path, again.Status)
		}
	}
}

// TestPageCSP: the policy forbids inline script and style and every other
// origin.
func TestPageCSP(t *testing.T) {
	policy := map[string]string{}
	for _, d := range strings.Split(pageCSP, ";") {
		name, value, _ := strings.Cut(strings.TrimSpace(d), " ")
		policy[name] = value
	}
	for name, want := range map[string]string{
		"default-src": "'none'", "script-src": "'self'", "style-src": "'self'", "connect-src": "'self'",
		"img-src": "'self' blob:", "media-src": "'self' blob:", "base-uri": "'none'", "form-action": "'none'", "frame-ancestors": "'none'",
	} {
		if policy[name] != want {
			t.Errorf("%s %q, want %q", name, policy[name], want)
		}
	}
}

// TestPageFilesAreSafe reads the page's files as a reviewer would: no
// inline script, style or event handler in the HTML (the CSP would refuse
// them), nothing from another origin, every file of a type the server
// knows, and in the scripts no way to put text into the page as HTML.
func TestPageFilesAreSafe(t *testing.T) {
	html := string(webAssets["index.html"].body)
	for _, bad := range []*regexp.Regexp{
		regexp.MustCompile(`<script(?:\s+type="module")?>`),  // inline script
		regexp.MustCompile(`<style`),                         // inline style element
		regexp.MustCompile(`\sstyle=`),                       // style attribute
		regexp.MustCompile(`\son[a-z]+=`),                    // inline event handler
		regexp.MustCompile(`(?:src|href)="(?:https?:)?//`),   // another origin
		regexp.MustCompile(`(?:src|href)="(?:[^/"#]|/[^.])`), // a relative path, wrong below /a/b
	} {
		if m := bad.FindString(html); m != "" {
			t.Errorf("index.html has %q", m)
		}
	}
	if len(webAssets) < 5 {
		t.Fatalf("web assets: %d files", len(webAssets))
	}
	for name, a := range webAssets {
		if a.ctype == "" {
			t.Errorf("web/%s: no Content-Type for %s", name, path.Ext(name))
		}
		if path.Ext(name) != ".js" {
			continue
		}
		for _, bad := range []string{"innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function", "import("} {
			if strings.Contains(string(a.body), bad) {
				t.Errorf("web/%s uses %s", name, bad)
			}
		}
		for _, m := range regexp.MustCompile(`(?m)^import .* from "([^"]*)";$`).FindAllStringSubmatch(string(a.body), -1) {
			if !strings.HasPrefix(m[1], "./") {
				t.Errorf("web/%s imports %q: not one of the page's files", name, m[1])
			}
		}
	}
}

// cut shortens s for a message.
func cut(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}
