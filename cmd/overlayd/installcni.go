package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
)

func init() {
	register(&command{
		name:     "install-cni",
		summary:  "install the CNI plugin and its conflist for the container runtime, atomically (a DaemonSet's init container)",
		synopsis: installCNISynopsis,
		run:      runInstallCNI,
	})
}

const installCNISynopsis = "install-cni [--plugin PATH] [--bin-dir /opt/cni/bin] [--conf-dir /etc/cni/net.d] [--conf-name 10-overlaynet.conflist] [--network overlaynet]"

const installCNIHelp = `
Installs the CNI plugin (--plugin, default: overlaynet beside this overlayd)
into --bin-dir and a conflist naming it into --conf-dir, each written to a
temporary file in its directory and renamed into place, so that the runtime
(containerd, CRI-O) never reads half a file. The conflist's plugin keys are
this command's --store, --state-dir and --netns-dir, which the daemon on the
node uses too. What it installed is recorded in --state-dir
(cni-installed.json, with each file's SHA-256): 'run --owner-daemonset'
removes exactly those files, unchanged since, when the DaemonSet is deleted.
Running it again replaces both files.`

// installedFile is one file install-cni installed.
type installedFile struct {
	Path   string `json:"path"`
	SHA256 string `json:"sha256"`
}

// installedRecord is install-cni's record in the state directory.
const installedRecord = "cni-installed.json"

func runInstallCNI(_ context.Context, e *env, fs *flag.FlagSet, args []string) error {
	setUsage(fs, installCNISynopsis, installCNIHelp)
	self, _ := os.Executable()
	plugin := fs.String("plugin", filepath.Join(filepath.Dir(self), "overlaynet"), "the CNI plugin binary to install")
	binDir := fs.String("bin-dir", "/opt/cni/bin", "the runtime's CNI plugin directory")
	confDir := fs.String("conf-dir", "/etc/cni/net.d", "the runtime's CNI configuration directory")
	confName := fs.String("conf-name", "10-overlaynet.conflist", "the conflist's file name (the runtime takes the first in lexical order)")
	network := fs.String("network", "overlaynet", "the network's name in the conflist")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return fmt.Errorf("%w: unexpected arguments %q", errUsage, pos)
	}
	bin, err := os.ReadFile(*plugin)
	if err != nil {
		return fmt.Errorf("--plugin: %w", err)
	}
	conf, err := json.MarshalIndent(map[string]any{
		"cniVersion": "1.0.0",
		"name":       *network,
		"plugins": []map[string]string{{
			"type": "overlaynet", "store": e.global.store, "stateDir": e.global.stateDir, "netnsDir": e.global.netnsDir,
		}},
	}, "", "  ")
	if err != nil {
		return err
	}
	var rec []installedFile
	for _, f := range []struct {
		dir, name string
		data      []byte
		mode      os.FileMode
	}{{*binDir, "overlaynet", bin, 0o755}, {*confDir, *confName, append(conf, '\n'), 0o644}} {
		path, err := writeAtomic(f.dir, f.name, f.data, f.mode)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(f.data)
		rec = append(rec, installedFile{Path: path, SHA256: hex.EncodeToString(sum[:])})
		fmt.Fprintf(e.stdout, "installed %s\n", path)
	}
	b, _ := json.MarshalIndent(rec, "", "  ")
	if err := os.MkdirAll(e.global.stateDir, 0o755); err != nil {
		return err
	}
	_, err = writeAtomic(e.global.stateDir, installedRecord, append(b, '\n'), 0o644)
	return err
}

// writeAtomic writes data to dir/name through a temporary file of dir,
// synced, then renamed over name, and returns the path.
func writeAtomic(dir, name string, data []byte, mode os.FileMode) (string, error) {
	f, err := os.CreateTemp(dir, "."+name+".*")
	if err != nil {
		return "", err
	}
	_, werr := f.Write(data)
	if werr == nil {
		werr = f.Chmod(mode)
	}
	if werr == nil {
		werr = f.Sync()
	}
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	path := filepath.Join(dir, name)
	if werr == nil {
		werr = os.Rename(f.Name(), path)
	}
	if werr != nil {
		os.Remove(f.Name())
		return "", fmt.Errorf("install %s: %w", path, werr)
	}
	return path, nil
}

// removeInstalled removes the files install-cni recorded in stateDir,
// each only if its content is still what was installed, and the record.
func removeInstalled(stateDir string, log *slog.Logger) error {
	recPath := filepath.Join(stateDir, installedRecord)
	b, err := os.ReadFile(recPath)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var rec []installedFile
	if err := json.Unmarshal(b, &rec); err != nil {
		return fmt.Errorf("%s: %w", recPath, err)
	}
	var errs []error
	for _, f := range rec {
		sum, err := fileSHA256(f.Path)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			continue
		case err != nil:
			errs = append(errs, err)
		case sum != f.SHA256:
			log.Warn("leaving a file install-cni installed: it changed since", "path", f.Path)
		default:
			if err := os.Remove(f.Path); err != nil {
				errs = append(errs, err)
				continue
			}
			log.Info("removed", "path", f.Path)
		}
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	return os.Remove(recPath)
}

func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
