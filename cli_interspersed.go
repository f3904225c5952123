package main

import (
	"strings"

	"github.com/urfave/cli/v2"
)

// allowFlagsAfterArgs returns the command made by newCmd so that its flags
// may also follow its arguments: "wsx dial ws://host/ -H 'A: b' -v".
//
// urfave/cli v2 stops parsing flags at the first argument, and a flag
// silently taken as an argument is a trap users report for other tools. So
// the returned command skips urfave's parsing; its Action moves every flag,
// with its value, in front of the arguments (flagsFirst) and runs a second
// instance of the command on the result, which urfave then parses as usual:
// the same usage errors, the same help. The returned command keeps its
// flags, so "wsx help dial" and "wsx dial --help" list them.
func allowFlagsAfterArgs(newCmd func() *cli.Command) *cli.Command {
	outer := newCmd()
	outer.SkipFlagParsing = true
	outer.Action = func(c *cli.Context) error {
		args, help := flagsFirst(outer.Flags, c.Args().Slice())
		if help {
			// The help action would take the URL for a help topic.
			return cli.ShowCommandHelp(c.Lineage()[1], outer.Name)
		}
		inner := newCmd()
		inner.OnUsageError = outer.OnUsageError
		inner.CustomHelpTemplate = outer.CustomHelpTemplate
		ic := cli.NewContext(c.App, nil, c)
		ic.Command = inner
		return inner.Run(ic, append([]string{inner.Name}, args...)...)
	}
	return outer
}

// flagsFirst returns args with the flags, each with its value, in front of
// the other arguments, which follow a "--" so that none of them is read as a
// flag. A flag that takes a value takes the next argument as Go's flag
// package does ("--wait -1"); a "--" ends the flags. Aliases become the
// flag's name, since urfave refuses two forms of one flag ("-s a
// --subprotocol b"). help reports a -h or --help among the flags.
func flagsFirst(flags []cli.Flag, args []string) (out []string, help bool) {
	takesValue := make(map[string]bool)
	primary := make(map[string]string)
	for _, f := range flags {
		df, ok := f.(cli.DocGenerationFlag)
		for _, name := range f.Names() {
			takesValue[name] = ok && df.TakesValue()
			primary[name] = f.Names()[0]
		}
	}
	var flagArgs, positional []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			positional = append(positional, args[i+1:]...)
			break
		}
		if a == "-" || !strings.HasPrefix(a, "-") {
			positional = append(positional, a)
			continue
		}
		name, value, hasValue := strings.Cut(strings.TrimPrefix(a[1:], "-"), "=")
		if p, ok := primary[name]; ok && p != name {
			a = "--" + p
			if hasValue {
				a += "=" + value
			}
		}
		flagArgs = append(flagArgs, a)
		switch {
		case hasValue:
		case name == "h" || name == "help":
			help = true
		case takesValue[name] && i+1 < len(args):
			i++
			flagArgs = append(flagArgs, args[i])
		case takesValue[name]:
			// Its value is missing: end with it, so the flag parser says
			// "flag needs an argument" instead of taking the "--" as it.
			return flagArgs, help
		}
	}
	return append(append(flagArgs, "--"), positional...), help
}
