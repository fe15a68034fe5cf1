// Package etcdtest starts a real single-member etcd server for tests: the
// Debian etcd-server binary (scripts/setup.sh installs it) or $ETCD_BIN, on
// a temporary data directory, on free loopback ports or inside a test's
// network namespace. Tests without the binary are skipped, but fail when
// CI=true.
package etcdtest

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/overlaynet/overlaynet/internal/nstest"
)

// Require returns the etcd binary ($ETCD_BIN or etcd in PATH). It skips the
// test without one, but fails it when CI=true.
func Require(t testing.TB) string {
	t.Helper()
	if bin := os.Getenv("ETCD_BIN"); bin != "" {
		return bin
	}
	bin, err := exec.LookPath("etcd")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("etcd test cannot run in CI: no etcd binary (install etcd-server: scripts/setup.sh)")
		}
		t.Skip("skipping: needs the etcd server binary (apt-get install etcd-server, or set ETCD_BIN)")
	}
	return bin
}

// Options say where the server listens.
type Options struct {
	// NetNS, if set, is the path of a network namespace (/var/run/netns/X)
	// the server runs in (nsenter --net); the test process reaches it
	// through that namespace.
	NetNS string
	// Host is the address to listen on (default 127.0.0.1).
	Host string
	// Args are more etcd flags (the TLS ones, say).
	Args []string
	// TLS, if set, makes the client URL https and is what the health probe
	// uses (give etcd the matching --cert-file/--key-file in Args).
	TLS *tls.Config
}

// Server is a running etcd, killed when the test ends.
type Server struct {
	t          testing.TB
	bin, dir   string
	opts       Options
	clientPort int
	peerPort   int
	cmd        *exec.Cmd
	exited     chan struct{}
	log        *os.File
}

// Start starts a fresh etcd and waits until it is healthy.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	if opts.Host == "" {
		opts.Host = "127.0.0.1"
	}
	s := &Server{t: t, bin: Require(t), dir: t.TempDir(), opts: opts}
	if opts.NetNS == "" {
		s.clientPort, s.peerPort = freePort(t), freePort(t)
	} else {
		s.clientPort, s.peerPort = 2379, 2380 // a namespace of the test's own
	}
	t.Cleanup(s.Stop)
	// A free port may be taken by another test process between freePort
	// and etcd's bind: then start over on new ports.
	for range 3 {
		if !s.start(opts.NetNS == "") {
			return s
		}
		s.clientPort, s.peerPort = freePort(t), freePort(t)
	}
	s.Restart()
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

// Endpoint returns the client address, "HOST:PORT".
func (s *Server) Endpoint() string {
	return net.JoinHostPort(s.opts.Host, strconv.Itoa(s.clientPort))
}

// URL returns an overlayd store URL, etcd://HOST:PORT/PREFIX[?QUERY].
func (s *Server) URL(prefix, query string) string {
	u := "etcd://" + s.Endpoint() + "/" + prefix
	if query != "" {
		u += "?" + query
	}
	return u
}

// Restart starts etcd again on the same data directory and ports (after
// Stop) and waits until it is healthy.
func (s *Server) Restart() {
	s.t.Helper()
	s.start(false)
}

// start starts etcd and waits until it is healthy. With retryBind, an etcd
// that exits at start because its port is taken is reaped and start
// returns true; every other failure is fatal.
func (s *Server) start(retryBind bool) (portTaken bool) {
	t := s.t
	t.Helper()
	scheme := "http"
	if s.opts.TLS != nil {
		scheme = "https"
	}
	curl := scheme + "://" + s.Endpoint()
	purl := "http://" + net.JoinHostPort(s.opts.Host, strconv.Itoa(s.peerPort))
	args := []string{
		"--name", "n0", "--data-dir", filepath.Join(s.dir, "data"),
		"--listen-client-urls", curl, "--advertise-client-urls", curl,
		"--listen-peer-urls", purl, "--initial-advertise-peer-urls", purl,
		"--initial-cluster", "n0=" + purl,
		"--heartbeat-interval", "50", "--election-timeout", "500",
		"--logger", "zap", "--log-level", "warn",
	}
	args = append(args, s.opts.Args...)
	var err error
	if s.log, err = os.OpenFile(filepath.Join(s.dir, "etcd.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644); err != nil {
		t.Fatal(err)
	}
	if s.opts.NetNS != "" {
		s.cmd = exec.Command("nsenter", append([]string{"--net=" + s.opts.NetNS, s.bin}, args...)...)
	} else {
		s.cmd = exec.Command(s.bin, args...)
	}
	s.cmd.Stdout, s.cmd.Stderr = s.log, s.log
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("start etcd: %v", err)
	}
	s.exited = make(chan struct{})
	go func(cmd *exec.Cmd, exited chan struct{}) { cmd.Wait(); close(exited) }(s.cmd, s.exited)

	hc := &http.Client{Timeout: time.Second, Transport: &http.Transport{DialContext: s.DialContext, TLSClientConfig: s.opts.TLS}}
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-s.exited:
			if retryBind && strings.Contains(s.LogTail(), "address already in use") {
				s.log.Close()
				os.RemoveAll(filepath.Join(s.dir, "data")) // begun for the ports it did not get
				os.Remove(filepath.Join(s.dir, "etcd.log"))
				return true
			}
			t.Fatalf("etcd exited at start:\n%s", s.LogTail())
		default:
		}
		if resp, err := hc.Get(curl + "/health"); err == nil {
			var b bytes.Buffer
			b.ReadFrom(resp.Body)
			resp.Body.Close()
			if strings.Contains(b.String(), `"health":"true"`) {
				return false
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("etcd not healthy after 15s:\n%s", s.LogTail())
	return false
}

// DialContext connects from the server's namespace (for an http.Transport,
// or a gRPC dialer, reaching the server or anything else there).
func (s *Server) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	if s.opts.NetNS == "" {
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}
	return nstest.DialContext(ctx, s.opts.NetNS, network, addr)
}

// Pid returns the process ID of the running etcd.
func (s *Server) Pid() int { return s.cmd.Process.Pid }

// Stop kills etcd as a crash would (SIGKILL) and waits for it; Restart
// brings it back with its data.
func (s *Server) Stop() {
	if s.cmd == nil {
		return
	}
	s.cmd.Process.Signal(syscall.SIGKILL)
	<-s.exited
	s.log.Close()
	s.cmd = nil
}

// LogTail returns the end of etcd's log, for failure messages.
func (s *Server) LogTail() string {
	b, _ := os.ReadFile(filepath.Join(s.dir, "etcd.log"))
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return fmt.Sprintf("etcd log (%s):\n%s", s.dir, b)
}

// KV is one key as Keys returns it.
type KV struct {
	// Value is the key's value.
	Value string
	// Lease is the lease the key is attached to (0: none).
	Lease int64
}

// Keys returns every key under prefix (through etcd's JSON gateway, from
// the server's namespace).
func (s *Server) Keys(prefix string) (map[string]KV, error) {
	end := []byte(prefix)
	end[len(end)-1]++
	body, _ := json.Marshal(map[string]string{
		"key":       base64.StdEncoding.EncodeToString([]byte(prefix)),
		"range_end": base64.StdEncoding.EncodeToString(end),
	})
	hc := &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{DialContext: s.DialContext, TLSClientConfig: s.opts.TLS}}
	resp, err := hc.Post("http://"+s.Endpoint()+"/v3/kv/range", "application/json", bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var out struct {
		Kvs []struct {
			Key   string `json:"key"`
			Value string `json:"value"`
			Lease string `json:"lease"`
		} `json:"kvs"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return nil, fmt.Errorf("etcdtest: range %s: %w", prefix, err)
	}
	keys := make(map[string]KV, len(out.Kvs))
	for _, kv := range out.Kvs {
		k, _ := base64.StdEncoding.DecodeString(kv.Key)
		v, _ := base64.StdEncoding.DecodeString(kv.Value)
		lease, _ := strconv.ParseInt(kv.Lease, 10, 64)
		keys[string(k)] = KV{Value: string(v), Lease: lease}
	}
	return keys, nil
}

// EnableAuth turns etcd's authentication on, with user root (all rights)
// holding password (through the JSON gateway). Keys no longer works after
// it: it does not authenticate.
func (s *Server) EnableAuth(password string) error {
	hc := &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{DialContext: s.DialContext, TLSClientConfig: s.opts.TLS}}
	for _, step := range []struct {
		path string
		body map[string]string
	}{
		{"/v3/auth/user/add", map[string]string{"name": "root", "password": password}},
		{"/v3/auth/user/grant", map[string]string{"user": "root", "role": "root"}},
		{"/v3/auth/enable", map[string]string{}},
	} {
		body, _ := json.Marshal(step.body)
		resp, err := hc.Post("http://"+s.Endpoint()+step.path, "application/json", bytes.NewReader(body))
		if err != nil {
			return fmt.Errorf("etcdtest: %s: %w", step.path, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("etcdtest: %s: %s: %s", step.path, resp.Status, b)
		}
	}
	return nil
}
