package nstest

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/overlaynet/overlaynet/rtnl"
)

// OwnersDir records which test process made each namespace NetNS made
// (one file per namespace, holding the process id), so that the namespaces
// of a test process killed before its cleanups ran (kill -9, a timeout's
// panic, a helper interrupted) are removed by the next test that makes one.
const OwnersDir = "/run/overlaynet-nstest"

// ownNetNS records this process as the owner of the namespace name.
func ownNetNS(name string) error {
	if err := os.MkdirAll(OwnersDir, 0o755); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(OwnersDir, name), []byte(strconv.Itoa(os.Getpid())), 0o644)
}

// disown forgets the owner of the namespace name.
func disown(name string) { os.Remove(filepath.Join(OwnersDir, name)) }

// SweepStale deletes the namespaces whose recorded owner process is gone,
// and their records. A namespace without a record is never touched.
func SweepStale() {
	entries, err := os.ReadDir(OwnersDir)
	if err != nil {
		return
	}
	for _, e := range entries {
		name := e.Name()
		if !strings.HasPrefix(name, Prefix) {
			continue
		}
		b, err := os.ReadFile(filepath.Join(OwnersDir, name))
		if err != nil {
			continue
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil || pid <= 0 || pid == os.Getpid() {
			continue
		}
		if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
			continue // alive, or not ours to judge
		}
		if err := rtnl.DeleteNetNS("", name); err == nil || errors.Is(err, os.ErrNotExist) {
			disown(name)
		}
	}
}
