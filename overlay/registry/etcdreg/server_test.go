package etcdreg

import (
	"context"
	"testing"
	"time"

	"github.com/overlaynet/overlaynet/internal/etcdtest"
)

// etcdServer is a real etcd (internal/etcdtest: Debian's etcd-server on
// free loopback ports with a temporary data dir, killed when the test ends)
// plus what these tests add: opening a registry on it.
type etcdServer struct{ *etcdtest.Server }

// startEtcd starts a fresh etcd with more flags, if any.
func startEtcd(t testing.TB, args ...string) etcdServer {
	t.Helper()
	return etcdServer{etcdtest.Start(t, etcdtest.Options{Args: args})}
}

// open opens a registry on s for prefix, closed when the test ends.
func (s etcdServer) open(t testing.TB, prefix string, opts Options) *Registry {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	r, err := Open(ctx, s.URL(prefix, ""), opts)
	if err != nil {
		t.Fatalf("open: %v\n%s", err, s.LogTail())
	}
	t.Cleanup(func() { r.Close() })
	return r
}
