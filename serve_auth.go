package main

import (
	"bufio"
	"crypto/subtle"
	"fmt"
	"net/http"
	"os"
	"regexp"
	"slices"
	"strings"
)

// validName is what a chosen display name may be.
var validName = regexp.MustCompile(`^[A-Za-z0-9._-]{1,32}$`)

// user is one line of a users file, or the identity given to a client that
// authenticated with the shared token or needs no token at all.
type user struct {
	name      string   // empty: the client picks one with ?name= or is guest-ID
	basicName string   // the Basic auth user name given with the shared token
	token     string   // secret compared in constant time
	role      string   // roleReadWrite or roleReadOnly
	rooms     []string // rooms the user may join; empty means any
}

// authConfig decides who may connect: nobody needs a token unless a shared
// token or a users file is configured.
type authConfig struct {
	token string // shared secret giving read-write access to any room
	users []user // from --users
}

// required reports whether clients must present a token.
func (a authConfig) required() bool { return a.token != "" || len(a.users) > 0 }

// authenticate returns the user a request authenticates as, or the HTTP
// error to refuse it with: 401 for a missing or wrong token, 403 for a room
// the user may not join.
func (a authConfig) authenticate(r *http.Request, room string) (user, *httpError) {
	if !a.required() {
		return user{role: roleReadWrite}, nil
	}
	basicName, token := requestToken(r)
	if token == "" {
		return user{}, unauthorized("missing token: send Authorization: Bearer TOKEN, Basic auth with the token as password, or ?token=")
	}
	var found *user
	// Compare against every user, so the time taken does not say which
	// user's token was close.
	for i := range a.users {
		u := &a.users[i]
		match := subtle.ConstantTimeCompare([]byte(u.token), []byte(token)) == 1
		if match && (basicName == "" || basicName == u.name) && found == nil {
			found = u
		}
	}
	if found == nil && a.token != "" && subtle.ConstantTimeCompare([]byte(a.token), []byte(token)) == 1 {
		found = &user{basicName: basicName, role: roleReadWrite}
	}
	if found == nil {
		return user{}, unauthorized("invalid token")
	}
	if len(found.rooms) > 0 && !slices.Contains(found.rooms, room) {
		return user{}, &httpError{status: http.StatusForbidden, msg: fmt.Sprintf("user %s may not join room %s", found.name, room)}
	}
	return *found, nil
}

// hasUser reports whether the users file names this user.
func (a authConfig) hasUser(name string) bool {
	return slices.ContainsFunc(a.users, func(u user) bool { return u.name == name })
}

// unauthorized is a 401 asking for a bearer token.
func unauthorized(msg string) *httpError {
	return &httpError{status: http.StatusUnauthorized, msg: msg, header: http.Header{"Www-Authenticate": {`Bearer realm="wsx"`}}}
}

// requestToken finds the token in the Authorization header (Bearer, or the
// password of Basic auth, whose user name is returned too) or in ?token=,
// which browsers use because they cannot set headers on a WebSocket.
func requestToken(r *http.Request) (basicName, token string) {
	if auth := r.Header.Get("Authorization"); auth != "" {
		if scheme, t, ok := strings.Cut(auth, " "); ok && strings.EqualFold(scheme, "Bearer") {
			return "", strings.TrimSpace(t)
		}
		if name, pass, ok := r.BasicAuth(); ok {
			return name, pass
		}
	}
	return "", r.URL.Query().Get("token")
}

// loadUsers reads a users file: one user per line as
// name:token:role[:room,room...], with blank lines and # comments ignored.
// Any bad line is a usage error naming the file and line.
func loadUsers(path string) ([]user, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, usagef("--%s: %v", flagUsers, err)
	}
	defer f.Close()
	var users []user
	names := make(map[string]int)
	tokens := make(map[string]int)
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		u, err := parseUserLine(line)
		if err != nil {
			return nil, usagef("--%s %s line %d: %v", flagUsers, path, n, err)
		}
		if prev, dup := names[u.name]; dup {
			return nil, usagef("--%s %s line %d: duplicate name %q (first on line %d)", flagUsers, path, n, u.name, prev)
		}
		if prev, dup := tokens[u.token]; dup {
			return nil, usagef("--%s %s line %d: the same token as line %d: tokens identify users and must differ", flagUsers, path, n, prev)
		}
		names[u.name], tokens[u.token] = n, n
		users = append(users, u)
	}
	if err := sc.Err(); err != nil {
		return nil, usagef("--%s %s: %v", flagUsers, path, err)
	}
	if len(users) == 0 {
		return nil, usagef("--%s %s: no users in the file", flagUsers, path)
	}
	return users, nil
}

// parseUserLine parses name:token:role[:room,room...].
func parseUserLine(line string) (user, error) {
	f := strings.Split(line, ":")
	if len(f) < 3 || len(f) > 4 {
		return user{}, fmt.Errorf("want name:token:role[:room,room...], got %d fields", len(f))
	}
	u := user{name: f[0], token: f[1], role: f[2]}
	switch {
	case !validName.MatchString(u.name):
		return user{}, fmt.Errorf("invalid name %q: 1-32 letters, digits, '-', '_' or '.'", u.name)
	case u.token == "":
		return user{}, fmt.Errorf("empty token for %s", u.name)
	case u.role != roleReadWrite && u.role != roleReadOnly:
		return user{}, fmt.Errorf("unknown role %q for %s: want rw or ro", u.role, u.name)
	}
	if len(f) == 4 {
		for _, room := range strings.Split(f[3], ",") {
			if room = strings.TrimSpace(room); room != "" {
				u.rooms = append(u.rooms, room)
			}
		}
	}
	return u, nil
}
