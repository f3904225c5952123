package main

import (
	"fmt"
	"regexp"

	"github.com/urfave/cli/v2"
)

// Errors that choose the exit code: run maps a usageError to exitUsage and
// an abnormalError to exitAbnormal; every other error is exitFailure.

// usageError is a bad flag or argument: exit code 2.
type usageError struct{ err error }

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

// usagef returns a usageError with a formatted message.
func usagef(format string, args ...any) error {
	return &usageError{fmt.Errorf(format, args...)}
}

// abnormalError is a connection that ended abnormally: exit code 3.
type abnormalError struct{ err error }

func (e *abnormalError) Error() string { return e.err.Error() }
func (e *abnormalError) Unwrap() error { return e.err }

// onUsageError turns urfave/cli's flag parsing errors into usageErrors, so
// they exit 2 with a message naming the flag instead of printing the help.
func onUsageError(_ *cli.Context, err error, _ bool) error {
	if m := undefinedFlag.FindStringSubmatch(err.Error()); m != nil {
		return usagef("unknown flag %s (see --help)", dashed(m[1]))
	}
	if m := valueMissing.FindStringSubmatch(err.Error()); m != nil {
		return usagef("flag %s needs a value (see --help)", dashed(m[1]))
	}
	return &usageError{err}
}

// The flag package's messages for an unknown flag and a flag without its
// value, which always show a single dash.
var (
	undefinedFlag = regexp.MustCompile(`^flag provided but not defined: -+(.+)$`)
	valueMissing  = regexp.MustCompile(`^flag needs an argument: -+(.+)$`)
)

// dashed writes a flag name as users type it: -x, --name.
func dashed(name string) string {
	if len(name) > 1 {
		return "--" + name
	}
	return "-" + name
}
