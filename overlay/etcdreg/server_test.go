package etcdreg

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// etcdServer is a real single-member etcd started by a test on free
// loopback ports with a temporary data dir; a stray system etcd on 2379
// does not matter.
type etcdServer struct {
	t          testing.TB
	bin, dir   string
	clientPort int
	peerPort   int
	extra      []string    // more flags (TLS)
	tls        *tls.Config // to probe /health over https
	cmd        *exec.Cmd
	exited     chan struct{}
	log        *os.File
}

// requireEtcd returns the etcd binary ($ETCD_BIN or etcd in PATH); it skips
// the test without one, but fails it when CI=true.
func requireEtcd(t testing.TB) string {
	t.Helper()
	bin := os.Getenv("ETCD_BIN")
	if bin == "" {
		var err error
		if bin, err = exec.LookPath("etcd"); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatal("etcd test cannot run in CI: no etcd binary (install etcd-server: scripts/setup.sh)")
			}
			t.Skip("skipping: needs the etcd server binary (apt-get install etcd-server, or set ETCD_BIN)")
		}
	}
	return bin
}

// startEtcd starts a fresh etcd and stops it when the test ends.
func startEtcd(t testing.TB, extra ...string) *etcdServer {
	t.Helper()
	s := &etcdServer{t: t, bin: requireEtcd(t), dir: t.TempDir(), clientPort: freePort(t), peerPort: freePort(t), extra: extra}
	t.Cleanup(s.kill)
	s.start()
	return s
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// endpoint returns the client address, "127.0.0.1:PORT".
func (s *etcdServer) endpoint() string { return fmt.Sprintf("127.0.0.1:%d", s.clientPort) }

// url returns a store URL for prefix with query (may be empty).
func (s *etcdServer) url(prefix, query string) string {
	u := "etcd://" + s.endpoint() + "/" + prefix
	if query != "" {
		u += "?" + query
	}
	return u
}

// start runs etcd on the server's data dir and ports and waits until it
// has a leader.
func (s *etcdServer) start() {
	t := s.t
	t.Helper()
	scheme := "http"
	if s.tls != nil {
		scheme = "https"
	}
	curl := fmt.Sprintf("%s://127.0.0.1:%d", scheme, s.clientPort)
	purl := fmt.Sprintf("http://127.0.0.1:%d", s.peerPort)
	args := append([]string{
		"--name", "n0", "--data-dir", filepath.Join(s.dir, "data"),
		"--listen-client-urls", curl, "--advertise-client-urls", curl,
		"--listen-peer-urls", purl, "--initial-advertise-peer-urls", purl,
		"--initial-cluster", "n0=" + purl,
		"--heartbeat-interval", "50", "--election-timeout", "500",
		"--logger", "zap", "--log-level", "warn",
	}, s.extra...)
	var err error
	s.log, err = os.OpenFile(filepath.Join(s.dir, "etcd.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	s.cmd = exec.Command(s.bin, args...)
	s.cmd.Stdout, s.cmd.Stderr = s.log, s.log
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("start etcd: %v", err)
	}
	s.exited = make(chan struct{})
	go func(cmd *exec.Cmd, exited chan struct{}) { cmd.Wait(); close(exited) }(s.cmd, s.exited)

	hc := &http.Client{Timeout: time.Second, Transport: &http.Transport{TLSClientConfig: s.tls}}
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-s.exited:
			t.Fatalf("etcd exited at start:\n%s", s.logTail())
		default:
		}
		resp, err := hc.Get(curl + "/health")
		if err == nil {
			var b bytes.Buffer
			b.ReadFrom(resp.Body)
			resp.Body.Close()
			if strings.Contains(b.String(), `"health":"true"`) {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("etcd not healthy after 15s:\n%s", s.logTail())
}

// stop ends etcd as a crash would (SIGKILL) and waits for it.
func (s *etcdServer) stop() {
	if s.cmd == nil {
		return
	}
	s.cmd.Process.Signal(syscall.SIGKILL)
	<-s.exited
	s.log.Close()
	s.cmd = nil
}

func (s *etcdServer) kill() { s.stop() }

// logTail returns the end of etcd's log, for failures.
func (s *etcdServer) logTail() string {
	b, _ := os.ReadFile(filepath.Join(s.dir, "etcd.log"))
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// open opens a registry on s for prefix, closed when the test ends.
func (s *etcdServer) open(t testing.TB, prefix string, opts Options) *Registry {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	r, err := Open(ctx, s.url(prefix, ""), opts)
	if err != nil {
		t.Fatalf("open: %v\n%s", err, s.logTail())
	}
	t.Cleanup(func() { r.Close() })
	return r
}
