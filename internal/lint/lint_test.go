package lint

import (
	"go/parser"
	"go/token"
	"slices"
	"strconv"
	"testing"
)

// maxFuncLines is the longest a function outside tests may be.
const maxFuncLines = 100

// allowed are the package-level variables that are no state to speak of:
// tables filled once and only read, a sync.Pool, and the one counter that
// is process-wide by nature; each with why it is a variable rather than a
// constant, a field or a function.
var allowed = map[string]string{
	"internal/nstest.counter":                "test-helper package: namespace names must be unique within the test process",
	"overlay/resolver.ignoreReasonNames":     "name table of ignoreReason.String",
	"overlay/resolver.dropReasonNames":       "name table of dropReason.String",
	"overlay/resolver.unresolvedReasonNames": "name table of unresolvedReason.String",
	"overlay/resolver.reconcileActionNames":  "name table of reconcileAction.String",
	"overlay/resolver.latencyBuckets":        "the histograms' bucket bounds; its length sizes their arrays",
	"overlay/resolver.missResolutions":       "sync.Pool of miss resolutions (a miss costs no allocation)",
	"rtnl.addrFlagNames":                     "name table of AddrFlags.String",
	"rtnl.linkFlagNames":                     "name table of LinkFlags.String",
	"rtnl.neighStateNames":                   "name table of NeighState.String",
	"rtnl.neighFlagNames":                    "name table of NeighFlags.String",
	"rtnl.neighAttrNames":                    "name table of NeighAttr.String",
	"rtnl.neighAttrSize":                     "payload size of each fixed-size NDA_* attribute, for the decoder",
	"rtnl.routeTypeNames":                    "name table of RouteType.String",
}

// PENDING (issue 24): pendingVars are being removed by work under way on
// other branches, each named with the branch (helper) that removes it.
// This list must be empty once that work is on main; an entry that
// matches nothing fails the test, so the branch that removes a variable
// removes its entry too.
var pendingVars = map[string]string{}

// PENDING (issue 24): pendingFuncs are functions over maxFuncLines being
// split on other branches, as pendingVars; to be emptied the same way.
var pendingFuncs = map[string]string{}

func moduleSources(t *testing.T) (*token.FileSet, []Source) {
	t.Helper()
	fset := token.NewFileSet()
	srcs, err := Sources(fset, "../..")
	if err != nil {
		t.Fatal(err)
	}
	if len(srcs) < 100 {
		t.Fatalf("only %d source files found under the module root", len(srcs))
	}
	return fset, srcs
}

// TestNoPackageState: no package-level variable outside main packages and
// tests, but interface assertions, sentinel errors and those allowed
// above.
func TestNoPackageState(t *testing.T) {
	fset, srcs := moduleSources(t)
	seen := map[string]bool{}
	for _, v := range PackageVars(fset, srcs) {
		k := v.Key()
		seen[k] = true
		if allowed[k] == "" && pendingVars[k] == "" {
			t.Errorf("%s:%d: package-level variable %s is mutable state: make it a field, a constant or a function (a read-only table: list it in allowed, saying why)",
				v.Pos.Filename, v.Pos.Line, v.Name)
		}
	}
	for _, list := range []map[string]string{allowed, pendingVars} {
		for k := range list {
			if !seen[k] {
				t.Errorf("%s is listed in this test but is no package-level variable any more: remove it from the list", k)
			}
		}
	}
}

// TestNoLongFunc: no function outside tests, commands included, is over
// maxFuncLines lines.
func TestNoLongFunc(t *testing.T) {
	fset, srcs := moduleSources(t)
	seen := map[string]bool{}
	for _, f := range LongFuncs(fset, srcs, maxFuncLines) {
		k := f.Pos.Filename + ":" + f.Name
		seen[k] = true
		if pendingFuncs[k] == "" {
			t.Errorf("%s:%d: %s is %d lines, over %d: split it", f.Pos.Filename, f.Pos.Line, f.Name, f.Lines, maxFuncLines)
		}
	}
	for k := range pendingFuncs {
		if !seen[k] {
			t.Errorf("%s is listed as pending but is not over %d lines any more: remove it from pendingFuncs", k, maxFuncLines)
		}
	}
}

// TestPackageVars: what counts as state and what does not (a main
// package's variables do not).
func TestPackageVars(t *testing.T) {
	const src = `package p

import ("errors"; "fmt")

var _ I = (*T)(nil)
var _ = sideEffect()
var ErrGone = errors.New("p: gone")
var errBad = fmt.Errorf("p: bad %d", 1)
var ErrMade = newErr()
var Errata = "not an error"
var (
	ErrA, b = errors.New("p: a"), 2
	c int
)
var table = [...]string{"x"}
const k = 1
func f() { var local = 1; _ = local }
`
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, "p/p.go", src, 0)
	if err != nil {
		t.Fatal(err)
	}
	m, err := parser.ParseFile(fset, "cmd/c/main.go", "package main\n\nvar flagX = 1\n", 0)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, v := range PackageVars(fset, []Source{{Dir: "p", Path: "p/p.go", File: f}, {Dir: "cmd/c", Path: "cmd/c/main.go", File: m}}) {
		got = append(got, v.Key())
	}
	want := []string{"p._", "p.ErrMade", "p.Errata", "p.b", "p.c", "p.table"}
	if !slices.Equal(got, want) {
		t.Errorf("PackageVars = %v, want %v", got, want)
	}
}

// TestLongFuncs: a function's length runs from its func keyword to its
// closing brace; its doc comment does not count.
func TestLongFuncs(t *testing.T) {
	const src = `package p

// short has a doc comment
// of three
// lines.
func short() {
	_ = 1
}

func (r *R[T]) long() {
	_ = 1
	_ = 2
}

type R[T any] struct{}
`
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, "p.go", src, parser.ParseComments)
	if err != nil {
		t.Fatal(err)
	}
	srcs := []Source{{Dir: ".", Path: "p.go", File: f}}
	for _, tc := range []struct {
		max  int
		want []string
	}{
		{2, []string{"short 3", "R.long 4"}},
		{3, []string{"R.long 4"}},
		{4, nil},
	} {
		var got []string
		for _, fn := range LongFuncs(fset, srcs, tc.max) {
			got = append(got, fn.Name+" "+strconv.Itoa(fn.Lines))
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("LongFuncs(max %d) = %v, want %v", tc.max, got, tc.want)
		}
	}
}
