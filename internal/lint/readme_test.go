package lint

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestReadmeListsEveryPackage: the package table of the README's "What it
// is" section names every package of the module (in backquotes in its
// first column), and nothing that is not a directory of the module.
func TestReadmeListsEveryPackage(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	named := readmeTable(t, string(b))
	dirs, err := PackageDirs("../..")
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range dirs {
		if !named[d] {
			t.Errorf("README's package table does not name %s", d)
		}
	}
	for n := range named {
		if fi, err := os.Stat(filepath.Join("../..", n)); err != nil || !fi.IsDir() {
			t.Errorf("README's package table names %s, which is no directory of the module", n)
		}
	}
}

// readmeTable returns the paths named in the first column of the table in
// the section "What it is", without trailing slashes.
func readmeTable(t *testing.T, readme string) map[string]bool {
	_, sec, ok := strings.Cut(readme, "\n## What it is\n")
	if !ok {
		t.Fatal(`README has no section "## What it is"`)
	}
	sec, _, _ = strings.Cut(sec, "\n## ")
	code := regexp.MustCompile("`([^`]+)`")
	named := map[string]bool{}
	for _, line := range strings.Split(sec, "\n") {
		if !strings.HasPrefix(line, "| `") {
			continue
		}
		first, _, _ := strings.Cut(line[1:], "|")
		for _, m := range code.FindAllStringSubmatch(first, -1) {
			named[strings.TrimSuffix(m[1], "/")] = true
		}
	}
	if len(named) == 0 {
		t.Fatal(`README's section "What it is" has no package table`)
	}
	return named
}
