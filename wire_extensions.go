package main

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Sec-WebSocket-Extensions: parsing (RFC 6455 §9.1) and the server's side
// of permessage-deflate negotiation (RFC 7692 §7).
//
// gorilla answers every permessage-deflate offer with one fixed response
// and parses parameters into a map, losing duplicates; RFC 7692 wants an
// offer with an unknown or repeated parameter declined, and an offer of
// server_max_window_bits answered with that parameter. So wsx chooses the
// offer itself, hands gorilla a plain "permessage-deflate" when it accepts
// one, and puts its own answer in the response.

const (
	deflateExtension = "permessage-deflate"

	// deflateWindowBits is the LZ77 window wsx compresses with: Go's
	// compress/flate always uses 32 KiB.
	deflateWindowBits = 15

	// gorillaDeflateAnswer is the response gorilla writes when it has
	// negotiated permessage-deflate.
	gorillaDeflateAnswer = deflateExtension + "; server_no_context_takeover; client_no_context_takeover"
)

// extension is one element of a Sec-WebSocket-Extensions list.
type extension struct {
	name   string
	params []extensionParam // in order, duplicates kept
}

// extensionParam is one ";key[=value]" of an extension.
type extensionParam struct {
	key, value string
	hasValue   bool
}

// parseExtensions parses the values of Sec-WebSocket-Extensions headers:
// a comma-separated list of token *( ";" token [ "=" (token | quoted-string) ] ).
func parseExtensions(values []string) ([]extension, error) {
	var list []extension
	for _, v := range values {
		s := v
		for {
			s = skipLWS(s)
			if s == "" {
				break
			}
			var e extension
			var err error
			if e.name, s = cutToken(s); e.name == "" {
				return nil, fmt.Errorf("extension list %q: expected an extension name at %q", v, s)
			}
			for s = skipLWS(s); strings.HasPrefix(s, ";"); s = skipLWS(s) {
				var p extensionParam
				if p.key, s = cutToken(skipLWS(s[1:])); p.key == "" {
					return nil, fmt.Errorf("extension %s: expected a parameter name at %q", e.name, s)
				}
				if s = skipLWS(s); strings.HasPrefix(s, "=") {
					p.hasValue = true
					if p.value, s, err = cutValue(skipLWS(s[1:])); err != nil {
						return nil, fmt.Errorf("extension %s: parameter %s: %w", e.name, p.key, err)
					}
				}
				e.params = append(e.params, p)
			}
			list = append(list, e)
			if s == "" {
				break
			}
			if s[0] != ',' {
				return nil, fmt.Errorf("extension list %q: unexpected %q", v, s)
			}
			s = s[1:]
		}
	}
	return list, nil
}

// skipLWS drops leading spaces and tabs.
func skipLWS(s string) string { return strings.TrimLeft(s, " \t") }

// cutToken splits a leading HTTP token off s.
func cutToken(s string) (token, rest string) {
	i := 0
	for i < len(s) && isTokenByte(s[i]) {
		i++
	}
	return s[:i], s[i:]
}

// isToken reports whether s is a non-empty HTTP token (RFC 7230).
func isToken(s string) bool {
	tok, rest := cutToken(s)
	return tok != "" && rest == ""
}

// isTokenByte reports whether b may appear in an HTTP token (RFC 7230).
func isTokenByte(b byte) bool {
	return b > ' ' && b < 0x7f && !strings.ContainsRune(`"(),/:;<=>?@[\]{}`, rune(b))
}

// cutValue splits a parameter value, a token or a quoted string whose
// content must itself be a token (RFC 6455 §9.1), off s.
func cutValue(s string) (value, rest string, err error) {
	if !strings.HasPrefix(s, `"`) {
		if value, rest = cutToken(s); value == "" {
			return "", "", fmt.Errorf("missing value at %q", s)
		}
		return value, rest, nil
	}
	var b strings.Builder
	for i := 1; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"':
			v := b.String()
			if tok, tail := cutToken(v); tok == "" || tail != "" {
				return "", "", fmt.Errorf("quoted value %q is not a token", v)
			}
			return v, s[i+1:], nil
		case c == '\\' && i+1 < len(s):
			i++
			b.WriteByte(s[i])
		default:
			b.WriteByte(c)
		}
	}
	return "", "", errors.New("unterminated quoted value")
}

// negotiateDeflate picks the first permessage-deflate offer wsx can
// accept and returns the answer for it, or false when there is none: then
// the connection goes uncompressed. An offer is declined when it has an
// unknown or repeated parameter or an invalid value (RFC 7692 §7), or asks
// wsx to compress within a window smaller than it can (§7.1.2.1).
func negotiateDeflate(offers []extension) (answer string, ok bool) {
	for _, e := range offers {
		if e.name != deflateExtension {
			continue
		}
		if windowOffered, ok := acceptableDeflateOffer(e.params); ok {
			if windowOffered {
				return gorillaDeflateAnswer + "; server_max_window_bits=" + strconv.Itoa(deflateWindowBits), true
			}
			return gorillaDeflateAnswer, true
		}
	}
	return "", false
}

// acceptableDeflateOffer checks one offer's parameters and reports whether
// it offered server_max_window_bits, which the answer must then name.
// client_max_window_bits needs nothing: wsx inflates any window.
func acceptableDeflateOffer(params []extensionParam) (windowOffered, ok bool) {
	seen := map[string]bool{}
	for _, p := range params {
		if seen[p.key] {
			return false, false
		}
		seen[p.key] = true
		switch p.key {
		case "server_no_context_takeover", "client_no_context_takeover":
			if p.hasValue {
				return false, false
			}
		case "server_max_window_bits":
			if !p.hasValue || windowBits(p.value) != deflateWindowBits {
				return false, false
			}
			windowOffered = true
		case "client_max_window_bits":
			if p.hasValue && windowBits(p.value) == 0 {
				return false, false
			}
		default:
			return false, false
		}
	}
	return windowOffered, true
}

// windowBits parses a window size parameter: 8 to 15, no sign or leading
// zero; else 0.
func windowBits(v string) int {
	if len(v) == 0 || len(v) > 2 || v[0] == '0' {
		return 0
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 8 || n > 15 {
		return 0
	}
	return n
}
