// Command wsx is a WebSocket swiss-army knife: an echo server, a broadcast
// chat server and a client for terminals and scripts, in one binary.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/urfave/cli/v2"
)

// Exit codes, the same for every command. README.md and the help list them.
const (
	exitOK       = 0 // success, or a normal close
	exitFailure  = 1 // runtime failure: could not listen, could not connect
	exitUsage    = 2 // bad flags or arguments; the message names them
	exitAbnormal = 3 // the connection ended abnormally (dial)
)

const exitCodesHelp = `EXIT CODES:
   0  success: a server stopped on SIGINT/SIGTERM, or a client ended normally
   1  runtime failure: could not listen, could not connect, or dial could not send stdin (a line that is not UTF-8)
   2  usage error: a bad flag or argument (the message names it)
   3  abnormal end of a connection (dial): close code other than 1000/1001, lost connection, timeout
`

func main() {
	os.Exit(run(context.Background(), os.Args, os.Stdin, os.Stdout, os.Stderr))
}

// run runs the wsx command line and returns the process exit code. It never
// calls os.Exit, so tests drive it directly.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		// A second Ctrl-C after the first one started a graceful stop exits at once.
		<-ctx.Done()
		stop()
	}()

	err := newApp(stdin, stdout, stderr).RunContext(ctx, args)
	if err == nil {
		return exitOK
	}
	code := exitCodeOf(err)
	if msg := err.Error(); msg != "" {
		fmt.Fprintf(stderr, "wsx: %s\n", msg)
	}
	return code
}

// exitCodeOf maps an error returned by a command to the process exit code.
func exitCodeOf(err error) int {
	var ue *usageError
	var ae *abnormalError
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &ue):
		return exitUsage
	case errors.As(err, &ae):
		return exitAbnormal
	default:
		return exitFailure
	}
}

// rootAction runs for "wsx" with no command, or with one that does not exist.
func rootAction(c *cli.Context) error {
	if c.Args().Present() {
		return usagef("unknown command %q (see wsx --help)", c.Args().First())
	}
	return cli.ShowAppHelp(c)
}

func init() {
	// urfave/cli gives --version the alias -v, which wsx uses for --verbose.
	cli.VersionFlag = &cli.BoolFlag{Name: "version", Usage: "print the version"}
}

// newApp builds the wsx application with its I/O injected.
func newApp(stdin io.Reader, stdout, stderr io.Writer) *cli.App {
	app := &cli.App{
		Name:    "wsx",
		Usage:   "WebSocket swiss-army knife: echo server, chat server, client",
		Version: version,
		Description: `Examples:
   wsx echo                                  # echo server on :8080, replies "Data received: <msg>"
   wsx serve --history 100                   # broadcast chat server with a browser page
   echo hello | wsx dial ws://localhost:8080/ # send a line, print the reply`,
		Flags:                 globalFlags(),
		Action:                rootAction,
		Commands:              []*cli.Command{echoCommand(), serveCommand(), dialCommand(), benchCommand()},
		Reader:                stdin,
		Writer:                stdout,
		ErrWriter:             stderr,
		OnUsageError:          onUsageError,
		ExitErrHandler:        func(*cli.Context, error) {},
		EnableBashCompletion:  false,
		CustomAppHelpTemplate: cli.AppHelpTemplate + "\n" + exitCodesHelp,
	}
	for _, cmd := range app.Commands {
		cmd.OnUsageError = onUsageError
		cmd.CustomHelpTemplate = cli.CommandHelpTemplate + "\n" + exitCodesHelp
	}
	return app
}
