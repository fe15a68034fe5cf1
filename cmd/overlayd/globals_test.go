package main

import (
	"bytes"
	"context"
	"flag"
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestGlobalFlagsBeforeCommand: global flags are accepted before the
// command name as well as after it (after it, they win); a command's own
// flag, or an unknown one, before the name is a usage error naming it.
func TestGlobalFlagsBeforeCommand(t *testing.T) {
	var seen *flag.FlagSet
	inspectFlags = func(_ string, fs *flag.FlagSet) { seen = fs }
	t.Cleanup(func() { inspectFlags = nil })
	state, other := t.TempDir(), t.TempDir()
	tests := []struct {
		name    string
		args    []string
		code    int
		want    map[string]string // flag values the command saw
		message string            // in stderr
	}{
		{name: "before", args: []string{"--state-dir", state, "--store", "dir:/x", "--log-level=debug", "--log-json", "status"},
			code: 1, want: map[string]string{"state-dir": state, "store": "dir:/x", "log-level": "debug", "log-json": "true"}, message: "overlayd status: "},
		{name: "after wins", args: []string{"--state-dir", other, "status", "--state-dir", state},
			code: 1, want: map[string]string{"state-dir": state}},
		{name: "both sides", args: []string{"--netns-dir", "/n", "status", "--store", "dir:/s"},
			code: 1, want: map[string]string{"netns-dir": "/n", "store": "dir:/s"}},
		{name: "command flag before", args: []string{"--json", "status"}, code: 2, message: "unknown global flag --json"},
		{name: "unknown flag", args: []string{"--bogus=1", "status"}, code: 2, message: "unknown global flag --bogus=1"},
		{name: "no value", args: []string{"--store"}, code: 2, message: "flag --store needs a value"},
		{name: "no command", args: []string{"--store", "dir:/x"}, code: 2, message: ""},
		{name: "help", args: []string{"--store", "dir:/x", "--help"}, code: 0},
		{name: "bad value", args: []string{"--log-json=maybe", "status"}, code: 2, message: "log-json"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			seen = nil
			var stdout, stderr bytes.Buffer
			code := runMain(context.Background(), tt.args, &stdout, &stderr)
			if code != tt.code || !strings.Contains(stderr.String(), tt.message) {
				t.Fatalf("%q: exit %d, stderr %q; want %d and %q", tt.args, code, stderr.String(), tt.code, tt.message)
			}
			if strings.Contains(stderr.String(), "unknown command") {
				t.Errorf("global flag taken for a command: %s", stderr.String())
			}
			for name, want := range tt.want {
				if seen == nil {
					t.Fatal("the command did not run")
				}
				if got := seen.Lookup(name).Value.String(); got != want {
					t.Errorf("--%s = %q, want %q", name, got, want)
				}
			}
		})
	}
}

// TestHelpDescribesTheCommand: help texts say what a command does, not which
// script it replaced.
func TestHelpDescribesTheCommand(t *testing.T) {
	for name := range commands {
		var stdout, stderr bytes.Buffer
		runMain(context.Background(), []string{name, "--help"}, &stdout, &stderr)
		help := stdout.String() + stderr.String()
		for _, word := range []string{"lab", ".sh", "script"} {
			if strings.Contains(help, word) {
				t.Errorf("overlayd %s --help mentions %q:\n%s", name, word, help)
			}
		}
	}
}

// TestOnlyWatchImportsRtnl: every command is flag parsing plus a library
// call; only watch, a thin view of rtnl's monitor, uses rtnl directly.
func TestOnlyWatchImportsRtnl(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	var checked int
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		af, err := parser.ParseFile(token.NewFileSet(), f, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		checked++
		for _, imp := range af.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			if strings.HasPrefix(path, "github.com/overlaynet/overlaynet/rtnl") && f != "watch.go" {
				t.Errorf("%s imports %s", f, path)
			}
		}
	}
	if checked < 5 {
		t.Fatalf("only %d files checked", checked)
	}
}
