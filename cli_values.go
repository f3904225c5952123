package main

import (
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Parsers and checks of flag values that several commands share.

// validText checks that a flag's value can go into a text message, which
// must be UTF-8: anything else makes browsers fail the connection.
func validText(flag, value string) error {
	if !utf8.ValidString(value) {
		return usagef("invalid value for flag --%s: not valid UTF-8", flag)
	}
	return nil
}

// parseSize parses a byte size: a plain number of bytes, or a number with a
// unit B, KB/KiB/K, MB/MiB/M or GB/GiB/G (all binary multiples).
func parseSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	i := 0
	for i < len(t) && t[i] >= '0' && t[i] <= '9' {
		i++
	}
	n, err := strconv.ParseInt(t[:i], 10, 64)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("%q is not a size: want a positive number of bytes, optionally with a unit (KiB, MiB, GiB)", s)
	}
	var shift uint
	switch strings.ToLower(strings.TrimSpace(t[i:])) {
	case "", "b":
	case "k", "kb", "kib":
		shift = 10
	case "m", "mb", "mib":
		shift = 20
	case "g", "gb", "gib":
		shift = 30
	default:
		return 0, fmt.Errorf("%q has an unknown unit: use B, KiB, MiB or GiB", s)
	}
	if n > (1<<62)>>shift {
		return 0, fmt.Errorf("%q is too large", s)
	}
	return n << shift, nil
}
