package etcdv3

import (
	"context"
	"errors"
	"net"
	"net/http"
	"sync/atomic"
	"testing"
	"time"
)

// leaderless is a gRPC endpoint of a member without a leader: Status
// answers (New connects), every Watch is refused as etcd refuses it with
// the hasleader metadata, a trailers-only answer (grpc-status in the
// headers, no body).
type leaderless struct {
	watches, withLeader atomic.Int32
}

func (l *leaderless) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/grpc")
	if r.URL.Path == methodWatch {
		l.watches.Add(1)
		if r.Header.Get("Hasleader") == "true" {
			l.withLeader.Add(1)
		}
		w.Header().Set("Grpc-Status", "14")
		w.Header().Set("Grpc-Message", "etcdserver: no leader")
		w.WriteHeader(http.StatusOK)
		return
	}
	w.Header().Set("Trailer", "Grpc-Status")
	w.WriteHeader(http.StatusOK)
	w.Write(frame(nil))
	w.Header().Set("Grpc-Status", "0")
}

// TestRequireLeader: under WithRequireLeader a watch sends hasleader and
// ends with ErrNoLeader when the member has none; without it, the watch
// waits (tries again) for a leader.
func TestRequireLeader(t *testing.T) {
	l := &leaderless{}
	srv := &http.Server{Handler: l, Protocols: new(http.Protocols)}
	srv.Protocols.SetUnencryptedHTTP2(true)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	c := connect(t, Config{Endpoints: []string{ln.Addr().String()}})
	ctx := ctxT(t, 10*time.Second)

	wr, ok := next(t, c.Watch(WithRequireLeader(ctx), "/k"), 5*time.Second)
	if !ok || !errors.Is(wr.Err(), ErrNoLeader) || !IsUnavailable(wr.Err()) {
		t.Errorf("watch requiring a leader: %+v (%v), want ErrNoLeader", wr, wr.Err())
	}
	if l.withLeader.Load() != 1 {
		t.Errorf("%d watches sent hasleader, want 1", l.withLeader.Load())
	}

	wctx, cancel := context.WithTimeout(ctx, 1500*time.Millisecond)
	defer cancel()
	for wr := range c.Watch(wctx, "/k") {
		t.Errorf("watch without WithRequireLeader delivered %+v (%v)", wr, wr.Err())
	}
	if n := l.watches.Load() - 1; n < 3 || l.withLeader.Load() != 1 {
		t.Errorf("watch without WithRequireLeader tried %d times in 1.5 s (hasleader %d), want several, without hasleader", n, l.withLeader.Load()-1)
	}
}
