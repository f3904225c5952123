package main

import (
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
)

// validEpoch is what an ?epoch= may be: epochs are made by newEpoch and
// legacyEpoch, and this is a little wider.
var validEpoch = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

// parseResume reads ?since=SEQ&epoch=E, with which a reconnecting client
// asks for the messages it missed (README: "Catch-up"). It returns nil
// when neither is given, and a 400 naming the problem when they are not a
// whole number and an epoch, given once each, together.
func parseResume(q url.Values) (*resumePoint, *httpError) {
	since, hasSince := q["since"]
	epoch, hasEpoch := q["epoch"]
	bad := func(format string, args ...any) *httpError {
		return &httpError{status: http.StatusBadRequest, msg: fmt.Sprintf(format, args...)}
	}
	switch {
	case !hasSince && !hasEpoch:
		return nil, nil
	case len(since) > 1 || len(epoch) > 1:
		return nil, bad("?since= and ?epoch= may each be given once")
	case !hasEpoch:
		return nil, bad("?since= needs ?epoch=: the epoch of the welcome event (or --store line) that the seq is from")
	case !hasSince:
		return nil, bad("?epoch= needs ?since=: the seq of the last message seen")
	}
	n, err := strconv.ParseUint(since[0], 10, 64)
	if err != nil {
		return nil, bad("invalid ?since=%q: want the seq of the last message seen, a whole number", since[0])
	}
	if !validEpoch.MatchString(epoch[0]) {
		return nil, bad("invalid ?epoch=%q: want 1-64 letters, digits, '-', '_' or '.'", epoch[0])
	}
	return &resumePoint{since: n, epoch: epoch[0]}, nil
}
