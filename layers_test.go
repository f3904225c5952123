package main

import (
	"fmt"
	"go/ast"
	"go/build"
	"go/parser"
	"go/token"
	"go/types"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
)

// The layers of wsx, a statement of policy in the manner of Go's own
// go/build/deps_test.go. wsx is one flat package, so the compiler cannot
// keep its families apart; this test does. A file's family is its name's
// prefix (familyOf); a family may use only what is declared in its own
// files and in the families listed for it. Test files are not checked.
//
//	wire      frames, masking, the poller, socket I/O: nothing of wsx
//	cli       flag names, value parsers, logging, argument order
//	engine    wsserver_*, wsconn_*: accepting, reading and writing connections
//	echo      wsx echo, on the engine
//	hub       rooms, fan-out, history, store: the chat's core, on the engine
//	serve     wsx serve: its flags, admission, HTTP side, on the hub
//	client    handshake options and masked frames, for dial and bench
//	dial      wsx dial, on the client side
//	bench     wsx bench, on the client side
//	main      main.go assembles the commands and may use anything
var layers = map[string][]string{
	"wire":   {},
	"cli":    {},
	"engine": {"wire", "cli"},
	"echo":   {"engine", "wire", "cli"},
	"hub":    {"engine", "wire", "cli"},
	"serve":  {"hub", "engine", "wire", "cli"},
	"client": {"wire", "cli"},
	"dial":   {"client", "wire", "cli"},
	"bench":  {"client", "wire", "cli"},
	"main":   {"dial", "bench", "client", "serve", "hub", "echo", "engine", "wire", "cli"},
}

// familyPrefixes maps file name prefixes to families, longest first.
var familyPrefixes = []struct{ prefix, family string }{
	{"wsserver", "engine"},
	{"wsconn", "engine"},
	{"wire_", "wire"},
	{"cli_", "cli"},
	{"echo", "echo"},
	{"hub", "hub"},
	{"serve", "serve"},
	{"client_", "client"},
	{"dial", "dial"},
	{"bench", "bench"},
	{"main.go", "main"},
}

// familyOf is the family of a Go file, or "" if its name has no known
// prefix.
func familyOf(file string) string {
	base := filepath.Base(file)
	for _, p := range familyPrefixes {
		if strings.HasPrefix(base, p.prefix) {
			return p.family
		}
	}
	return ""
}

// platforms are the GOOS values whose files the check reads: each
// platform's build-tagged files are checked with the files they build with.
var platforms = []string{"linux", "darwin", "windows", "freebsd"}

// layerViolations type-checks the non-test Go files of dir, as each of
// platforms builds them, and returns one line for each declaration used
// from a family the user's family may not use, and for each file of no
// family.
func layerViolations(dir string) ([]string, error) {
	imp := fakeImporter{}
	seen := map[string]bool{}
	var out []string
	for _, goos := range platforms {
		ctx := build.Default
		ctx.GOOS = goos
		bp, err := ctx.ImportDir(dir, 0)
		if err != nil {
			return nil, fmt.Errorf("GOOS=%s: %w", goos, err)
		}
		lines, err := checkFiles(dir, bp.GoFiles, imp)
		if err != nil {
			return nil, err
		}
		for _, l := range lines {
			if !seen[l] {
				seen[l] = true
				out = append(out, l)
			}
		}
	}
	sort.Strings(out)
	return out, nil
}

// checkFiles type-checks the named files of dir as one package and returns
// the violations in them.
func checkFiles(dir string, names []string, imp types.Importer) ([]string, error) {
	fset := token.NewFileSet()
	var files []*ast.File
	for _, name := range names {
		f, err := parser.ParseFile(fset, filepath.Join(dir, name), nil, 0)
		if err != nil {
			return nil, err
		}
		files = append(files, f)
	}
	info := &types.Info{Uses: make(map[*ast.Ident]types.Object)}
	conf := types.Config{
		Importer: imp,
		Error:    func(error) {},
	}
	pkg, _ := conf.Check("wsx", fset, files, info)
	var out []string
	for _, name := range names {
		if familyOf(name) == "" {
			out = append(out, fmt.Sprintf("%s: no family: name the file with one of the prefixes in familyPrefixes", name))
		}
	}
	for id, obj := range info.Uses {
		if obj == nil || obj.Pkg() != pkg || !obj.Pos().IsValid() {
			continue
		}
		user := fset.Position(id.Pos())
		decl := fset.Position(obj.Pos())
		from, to := familyOf(user.Filename), familyOf(decl.Filename)
		if from == "" || to == "" || from == to || slices.Contains(layers[from], to) {
			continue
		}
		out = append(out, fmt.Sprintf("%s:%d: family %s uses %s of family %s (%s)",
			filepath.Base(user.Filename), user.Line, from, obj.Name(), to, filepath.Base(decl.Filename)))
	}
	return out, nil
}

// fakeImporter makes every imported package an empty one: what matters is
// which of our own declarations each identifier refers to, and errors
// about imported names do not change that. It keeps the check fast and
// needs no module downloads.
type fakeImporter struct{}

func (fakeImporter) Import(path string) (*types.Package, error) {
	name := path[strings.LastIndex(path, "/")+1:]
	if len(name) <= 3 && strings.HasPrefix(name, "v") { // .../cli/v2
		trimmed := strings.TrimSuffix(path, "/"+name)
		name = trimmed[strings.LastIndex(trimmed, "/")+1:]
	}
	p := types.NewPackage(path, name)
	p.MarkComplete()
	return p, nil
}

// TestLayers fails when a family uses one it must not.
func TestLayers(t *testing.T) {
	violations, err := layerViolations(".")
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range violations {
		t.Error(v)
	}
}

// TestLayersCatchesViolations plants violations in a copy of two files
// and checks that the layer check reports them: a check that cannot fail
// would guard nothing.
func TestLayersCatchesViolations(t *testing.T) {
	dir := t.TempDir()
	write := func(name, src string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("wire_frame.go", "package main\n\nfunc appendHeader() int { return hubSize() }\n")
	write("hub.go", "package main\n\nfunc hubSize() int { return appendHeader() }\n")
	write("dial.go", "package main\n\ntype dialThing struct{ h *hubThing }\n")
	write("hub_thing.go", "package main\n\ntype hubThing struct{}\n")
	write("misc.go", "package main\n")
	got, err := layerViolations(dir)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"dial.go:3: family dial uses hubThing of family hub (hub_thing.go)",
		"misc.go: no family: name the file with one of the prefixes in familyPrefixes",
		"wire_frame.go:3: family wire uses hubSize of family hub (hub.go)",
	}
	if !slices.Equal(got, want) {
		t.Errorf("layerViolations = %q, want %q", got, want)
	}
}
