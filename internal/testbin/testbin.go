// Package testbin builds the project's commands for tests that run them as
// an operator would: once per test binary, as `make build` builds them
// (static, stripped).
package testbin

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

// Set is commands built together, on first use, into one directory.
type Set struct {
	// Pkgs maps each binary's name to its package, as go build takes it
	// (relative to the test's directory).
	Pkgs map[string]string
	// Tags, by binary name, are build tags (go build -tags), as make
	// builds that binary for its use.
	Tags map[string]string

	once sync.Once
	dir  string
	err  error
}

// Dir returns the directory holding the binaries, building them on first
// use; a failed build fails tb.
func (s *Set) Dir(tb testing.TB) string {
	tb.Helper()
	s.once.Do(func() {
		if s.dir, s.err = os.MkdirTemp("", "overlaynet-bin"); s.err != nil {
			return
		}
		for name, pkg := range s.Pkgs {
			cmd := exec.Command("go", "build", "-tags", s.Tags[name], "-trimpath", "-ldflags=-s -w", "-o", filepath.Join(s.dir, name), pkg)
			cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
			if out, err := cmd.CombinedOutput(); err != nil {
				s.err = fmt.Errorf("go build %s: %v\n%s", pkg, err, out)
				return
			}
		}
	})
	if s.err != nil {
		tb.Fatal(s.err)
	}
	return s.dir
}

// Remove deletes the binaries; call it from TestMain once the tests ran.
func (s *Set) Remove() {
	if s.dir != "" {
		os.RemoveAll(s.dir)
	}
}
