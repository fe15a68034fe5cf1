package dirstore

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/overlaynet/overlaynet/overlay/registry"
	"golang.org/x/sys/unix"
)

var _ registry.TempSweeper = (*Store)(nil)

// StaleTemp is the age from which a writer's temporary file is stale: a
// write takes milliseconds, so one this old is a dead writer's.
const StaleTemp = time.Minute

// tempFile is a value written and fsynced, waiting to be linked into
// place. Where the filesystem has them it is an unnamed file (O_TMPFILE):
// a writer killed before linking it leaves nothing behind. Elsewhere (NFS)
// it is a hidden file next to its target, ".NAME.tmpNNN", which its writer
// removes on every path and SweepTemp removes once stale.
type tempFile struct {
	f    *os.File // unnamed: the open file
	name string   // named: its path
}

// writeTemp writes value+"\n" to a new temporary file in path's directory
// and fsyncs it.
func writeTemp(path, value string) (*tempFile, error) {
	dir := filepath.Dir(path)
	fd, err := unix.Open(dir, unix.O_RDWR|unix.O_TMPFILE|unix.O_CLOEXEC, 0o600)
	if err == nil {
		f := os.NewFile(uintptr(fd), path)
		if err := writeSync(f, value); err != nil {
			f.Close()
			return nil, err
		}
		return &tempFile{f: f}, nil
	}
	if !errors.Is(err, unix.EOPNOTSUPP) && !errors.Is(err, unix.EISDIR) && !errors.Is(err, unix.EINVAL) {
		return nil, fmt.Errorf("dirstore: %w", &os.PathError{Op: "open", Path: dir, Err: err})
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return nil, fmt.Errorf("dirstore: %w", err)
	}
	if err := writeSync(f, value); err != nil {
		f.Close()
		os.Remove(f.Name())
		return nil, err
	}
	if err := f.Close(); err != nil {
		os.Remove(f.Name())
		return nil, fmt.Errorf("dirstore: %w", err)
	}
	return &tempFile{name: f.Name()}, nil
}

func writeSync(f *os.File, value string) error {
	_, err := f.WriteString(value + "\n")
	if err == nil {
		err = f.Sync()
	}
	if err != nil {
		return fmt.Errorf("dirstore: %w", err)
	}
	return nil
}

// link hard-links the file at path: atomically, and only if path does not
// exist (an error wrapping fs.ErrExist then).
func (t *tempFile) link(path string) error {
	if t.f == nil {
		return os.Link(t.name, path)
	}
	proc := "/proc/self/fd/" + strconv.Itoa(int(t.f.Fd()))
	if err := unix.Linkat(unix.AT_FDCWD, proc, unix.AT_FDCWD, path, unix.AT_SYMLINK_FOLLOW); err != nil {
		return &os.LinkError{Op: "link", Old: "(new value)", New: path, Err: err}
	}
	return nil
}

// close releases the temporary file: closed, or removed if named.
func (t *tempFile) close() {
	if t.f != nil {
		t.f.Close()
		return
	}
	os.Remove(t.name)
}

// isTemp reports whether name is a temporary file of the store's writers.
func isTemp(name string) bool {
	return strings.HasPrefix(name, ".") && strings.Contains(name, ".tmp")
}

// SweepTemp removes the writers' temporary files older than olderThan in
// the store's directories (left by writers killed before they removed
// them, where the filesystem has no unnamed files), and returns their
// paths.
func (s *Store) SweepTemp(olderThan time.Duration) ([]string, error) {
	var removed []string
	var errs []error
	for _, d := range []string{"", arpDir, fdbDir, blocksDir, membersDir, nodesDir} {
		r, err := sweepTempIn(filepath.Join(s.root, d), olderThan)
		removed = append(removed, r...)
		if err != nil {
			errs = append(errs, err)
		}
	}
	return removed, errors.Join(errs...)
}

// sweepTempIn is SweepTemp in one directory.
func sweepTempIn(dir string, olderThan time.Duration) ([]string, error) {
	f, err := os.Open(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("dirstore: %w", err)
	}
	names, err := f.Readdirnames(-1)
	f.Close()
	if err != nil {
		return nil, fmt.Errorf("dirstore: %w", err)
	}
	var removed []string
	var errs []error
	for _, name := range names {
		if !isTemp(name) {
			continue
		}
		p := filepath.Join(dir, name)
		fi, err := os.Lstat(p)
		if err != nil || !fi.Mode().IsRegular() || time.Since(fi.ModTime()) < olderThan {
			continue
		}
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, fmt.Errorf("dirstore: %w", err))
			continue
		}
		removed = append(removed, p)
	}
	return removed, errors.Join(errs...)
}
