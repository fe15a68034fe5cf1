package etcdv3

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/overlaynet/overlaynet/internal/etcdtest"
)

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// connect opens a client on endpoints, closed when the test ends.
func connect(t *testing.T, cfg Config) *Client {
	t.Helper()
	if cfg.DialTimeout == 0 {
		cfg.DialTimeout = 2 * time.Second
	}
	c, err := New(ctxT(t, 10*time.Second), cfg)
	if err != nil {
		t.Fatalf("New(%v): %v", cfg.Endpoints, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// deadEndpoint returns a loopback address nothing listens on.
func deadEndpoint(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ep := l.Addr().String()
	l.Close()
	return ep
}

func keys(r *GetResponse) string {
	var s []string
	for _, kv := range r.Kvs {
		s = append(s, string(kv.Key)+"="+string(kv.Value))
	}
	return strings.Join(s, " ")
}

func TestKV(t *testing.T) {
	s := etcdtest.Start(t, etcdtest.Options{})
	c := connect(t, Config{Endpoints: []string{s.Endpoint()}})
	ctx := ctxT(t, 20*time.Second)
	var first int64
	for i, k := range []string{"/p/a", "/p/b", "/p/c", "/q"} {
		r, err := c.Put(ctx, k, fmt.Sprint("v", i))
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			first = r.Header.Revision
		}
	}
	if _, err := c.Put(ctx, "/p/a", "changed"); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		key   string
		opts  []OpOption
		want  string
		more  bool
		count int64
	}{
		{"one key", "/p/b", nil, "/p/b=v1", false, 1},
		{"missing", "/p/x", nil, "", false, 0},
		{"prefix", "/p/", []OpOption{WithPrefix()}, "/p/a=changed /p/b=v1 /p/c=v2", false, 3},
		{"range", "/p/b", []OpOption{WithRange("/q")}, "/p/b=v1 /p/c=v2", false, 2},
		{"limit", "/p/", []OpOption{WithPrefix(), WithLimit(2)}, "/p/a=changed /p/b=v1", true, 3},
		{"revision", "/p/", []OpOption{WithPrefix(), WithRev(first)}, "/p/a=v0", false, 1},
		{"serializable", "/p/a", []OpOption{WithSerializable()}, "/p/a=changed", false, 1},
		{"everything", "", []OpOption{WithPrefix()}, "/p/a=changed /p/b=v1 /p/c=v2 /q=v3", false, 4},
	}
	for _, tt := range tests {
		r, err := c.Get(ctx, tt.key, tt.opts...)
		if err != nil {
			t.Errorf("%s: %v", tt.name, err)
			continue
		}
		if got := keys(r); got != tt.want || r.More != tt.more || r.Count != tt.count || r.Header.Revision < first+4 {
			t.Errorf("%s: %q more %v count %d (revision %d), want %q more %v count %d", tt.name, got, r.More, r.Count, r.Header.Revision, tt.want, tt.more, tt.count)
		}
	}
	r, _ := c.Get(ctx, "/p/a")
	if kv := r.Kvs[0]; kv.CreateRevision != first || kv.ModRevision != first+4 || kv.Version != 2 {
		t.Errorf("/p/a: %+v, want created at %d, changed at %d, version 2", kv, first, first+4)
	}
	if _, err := c.Compact(ctx, first+2); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Get(ctx, "/p/a", WithRev(first)); !errors.Is(err, ErrCompacted) {
		t.Errorf("get at a compacted revision: %v, want ErrCompacted", err)
	}
	if GetPrefixRangeEnd("/a\xff") != "/b" || GetPrefixRangeEnd("\xff") != "\x00" {
		t.Errorf("GetPrefixRangeEnd: %q %q", GetPrefixRangeEnd("/a\xff"), GetPrefixRangeEnd("\xff"))
	}
}

func TestTxn(t *testing.T) {
	s := etcdtest.Start(t, etcdtest.Options{})
	c := connect(t, Config{Endpoints: []string{s.Endpoint()}})
	ctx := ctxT(t, 20*time.Second)
	create := func(k, v string) (*TxnResponse, error) {
		return c.Txn(ctx).If(Compare(CreateRevision(k), "=", 0)).Then(OpPut(k, v)).Else(OpGet(k)).Commit()
	}
	r, err := create("/k", "one")
	if err != nil || !r.Succeeded || r.Responses[0].Put == nil {
		t.Fatalf("create: %+v, %v", r, err)
	}
	r, err = create("/k", "two")
	if err != nil || r.Succeeded || string(r.Responses[0].GetResponseRange().Kvs[0].Value) != "one" {
		t.Fatalf("create again: %+v, %v; want the Else with the value", r, err)
	}
	mod := r.Responses[0].GetResponseRange().Kvs[0].ModRevision
	// Nested: delete /k if it holds "one" (it does), and /j if it holds
	// "x" (it does not: its Else reads it), all at once.
	if _, err := c.Put(ctx, "/j", "y"); err != nil {
		t.Fatal(err)
	}
	r, err = c.Txn(ctx).If(Compare(ModRevision("/k"), "=", mod)).Then(
		OpTxn([]Cmp{Compare(Value("/k"), "=", "one")}, []Op{OpDelete("/k")}, nil),
		OpTxn([]Cmp{Compare(Value("/j"), "=", "x")}, []Op{OpDelete("/j")}, []Op{OpGet("/j")}),
	).Commit()
	if err != nil || !r.Succeeded || len(r.Responses) != 2 {
		t.Fatalf("nested: %+v, %v", r, err)
	}
	if in := r.Responses[0].Txn; in == nil || !in.Succeeded || in.Responses[0].Delete.Deleted != 1 {
		t.Errorf("nested delete of /k: %+v", in)
	}
	if in := r.Responses[1].Txn; in == nil || in.Succeeded || string(in.Responses[0].GetResponseRange().Kvs[0].Value) != "y" {
		t.Errorf("nested compare of /j: %+v", in)
	}
	if g, _ := c.Get(ctx, "/", WithPrefix()); keys(g) != "/j=y" {
		t.Errorf("after the nested transaction: %q, want /j=y", keys(g))
	}
	r, err = c.Txn(ctx).If(Compare(ModRevision("/j"), ">", mod), Compare(Value("/j"), "!=", "z")).Then(OpDelete("/", WithPrefix())).Commit()
	if err != nil || !r.Succeeded || r.Responses[0].Delete.Deleted != 1 {
		t.Errorf("> and !=: %+v, %v", r, err)
	}
}

func TestLease(t *testing.T) {
	s := etcdtest.Start(t, etcdtest.Options{})
	c := connect(t, Config{Endpoints: []string{s.Endpoint()}})
	ctx := ctxT(t, 30*time.Second)
	g, err := c.Grant(ctx, 2)
	if err != nil || g.ID == 0 || g.TTL != 2 {
		t.Fatalf("grant: %+v, %v", g, err)
	}
	if _, err := c.Put(ctx, "/leased", "v", WithLease(g.ID)); err != nil {
		t.Fatal(err)
	}
	kctx, stop := context.WithCancel(ctx)
	ch, err := c.KeepAlive(kctx, g.ID)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(5 * time.Second) // 2.5 TTLs
	if ended := handled(t, s, "LeaseKeepAlive"); ended != 0 {
		t.Errorf("%v keep-alive streams ended in 2.5 TTLs of renewals: want one stream for as long as it renews", ended)
	}
	n := 0
	for len(ch) > 0 {
		<-ch
		n++
	}
	if n == 0 {
		t.Error("no renewal in the channel")
	}
	r, err := c.Get(ctx, "/leased")
	if err != nil || len(r.Kvs) != 1 || LeaseID(r.Kvs[0].Lease) != g.ID {
		t.Fatalf("leased key after 2.5 TTLs kept alive: %+v, %v", r, err)
	}
	ttl, err := c.TimeToLive(ctx, g.ID)
	if err != nil || ttl.TTL < 1 || ttl.GrantedTTL != 2 || ttl.ID != g.ID {
		t.Errorf("time to live: %+v, %v", ttl, err)
	}
	stop()
	for range ch { // closed once its context ends
	}

	// Revoked while kept alive: the keys go, the channel closes.
	ch, err = c.KeepAlive(ctx, g.ID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Revoke(ctx, g.ID); err != nil {
		t.Fatal(err)
	}
	select {
	case <-waitClosed(ch):
	case <-time.After(4 * time.Second):
		t.Error("keep-alive channel still open 4 s after the revoke (TTL 2 s)")
	}
	if r, err := c.Get(ctx, "/leased"); err != nil || len(r.Kvs) != 0 {
		t.Errorf("leased key after the revoke: %+v, %v", r, err)
	}
	if ttl, err := c.TimeToLive(ctx, g.ID); err != nil || ttl.TTL != -1 {
		t.Errorf("time to live after the revoke: %+v, %v", ttl, err)
	}
	if _, err := c.Revoke(ctx, g.ID); !errors.Is(err, ErrLeaseNotFound) {
		t.Errorf("revoke again: %v, want ErrLeaseNotFound", err)
	}
	if _, err := c.Put(ctx, "/leased", "v", WithLease(g.ID)); !errors.Is(err, ErrLeaseNotFound) || IsUnavailable(err) {
		t.Errorf("put under the revoked lease: %v, want ErrLeaseNotFound", err)
	}
}

func waitClosed[T any](ch <-chan T) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		for range ch {
		}
		close(done)
	}()
	return done
}

// next returns the next watch response, failing after d.
func next(t *testing.T, ch WatchChan, d time.Duration) (WatchResponse, bool) {
	t.Helper()
	select {
	case wr, ok := <-ch:
		return wr, ok
	case <-time.After(d):
		t.Fatalf("no watch response in %v", d)
	}
	return WatchResponse{}, false
}

// events reads n events from ch as "PUT /k=v" strings.
func events(t *testing.T, ch WatchChan, n int, d time.Duration) []string {
	t.Helper()
	var out []string
	for len(out) < n {
		wr, ok := next(t, ch, d)
		if !ok || wr.Err() != nil {
			t.Fatalf("watch ended after %d events of %d: %v", len(out), n, wr.Err())
		}
		for _, ev := range wr.Events {
			out = append(out, fmt.Sprintf("%s %s=%s", ev.Type, ev.Kv.Key, ev.Kv.Value))
		}
	}
	return out
}

func TestWatch(t *testing.T) {
	s := etcdtest.Start(t, etcdtest.Options{})
	c := connect(t, Config{Endpoints: []string{s.Endpoint()}})
	ctx := ctxT(t, 30*time.Second)
	p, _ := c.Put(ctx, "/w/a", "1")
	c.Put(ctx, "/other", "x")
	c.Txn(ctx).Then(OpPut("/w/b", "2"), OpDelete("/w/a")).Commit()

	wctx, cancel := context.WithCancel(ctx)
	ch := c.Watch(wctx, "/w/", WithPrefix(), WithRev(p.Header.Revision))
	// The past first (the other key left out), then live events.
	want := []string{"PUT /w/a=1", "PUT /w/b=2", "DELETE /w/a="}
	if got := events(t, ch, 3, 5*time.Second); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("events from revision %d: %v, want %v", p.Header.Revision, got, want)
	}
	// A transaction's events come in one response.
	c.Txn(ctx).Then(OpPut("/w/c", "3"), OpPut("/w/d", "4")).Commit()
	wr, _ := next(t, ch, 5*time.Second)
	if len(wr.Events) != 2 || string(wr.Events[1].Kv.Key) != "/w/d" || wr.Events[1].Kv.ModRevision != wr.Header.Revision {
		t.Errorf("transaction's response: %+v", wr)
	}
	cancel()
	for wr := range ch {
		t.Errorf("after cancel: %+v", wr)
	}
	var ok bool

	// Watching from a revision compacted meanwhile ends the watch.
	r, _ := c.Put(ctx, "/w/e", "5")
	if _, err := c.Compact(ctx, r.Header.Revision); err != nil {
		t.Fatal(err)
	}
	ch = c.Watch(ctx, "/w/", WithPrefix(), WithRev(p.Header.Revision))
	wr, ok = next(t, ch, 5*time.Second)
	if !ok || !errors.Is(wr.Err(), ErrCompacted) || wr.CompactRevision != r.Header.Revision {
		t.Errorf("watch from a compacted revision: %+v (%v), want ErrCompacted at %d", wr, wr.Err(), r.Header.Revision)
	}
	if _, ok := <-ch; ok {
		t.Error("channel open after the compaction")
	}
}

// TestWatchCompactedWhileBehind: etcd compacts past a watch's revision
// while the watch cannot reach it; resumed, the watch ends with
// ErrCompacted rather than skipping the lost events.
func TestWatchCompactedWhileBehind(t *testing.T) {
	s := etcdtest.Start(t, etcdtest.Options{})
	p := newProxy(t, s.Endpoint())
	c := connect(t, Config{Endpoints: []string{p.addr()}, DialTimeout: time.Second})
	direct := connect(t, Config{Endpoints: []string{s.Endpoint()}})
	ctx := ctxT(t, 30*time.Second)
	ch := c.Watch(ctx, "/w/", WithPrefix(), WithRev(1))
	direct.Put(ctx, "/w/a", "1")
	events(t, ch, 1, 5*time.Second)
	p.cut()
	var last int64
	for i := range 3 {
		r, err := direct.Put(ctx, "/w/b", fmt.Sprint(i))
		if err != nil {
			t.Fatal(err)
		}
		last = r.Header.Revision
	}
	if _, err := direct.Compact(ctx, last); err != nil {
		t.Fatal(err)
	}
	p.heal()
	wr, ok := next(t, ch, 10*time.Second)
	if !ok || !errors.Is(wr.Err(), ErrCompacted) || wr.CompactRevision != last || len(wr.Events) != 0 {
		t.Fatalf("resumed behind a compaction: %+v (%v), want ErrCompacted at %d", wr, wr.Err(), last)
	}
	if _, ok := <-ch; ok {
		t.Error("channel open after the compaction")
	}
}

// TestRestart: etcd killed and restarted (same data) under a watch and a
// keep-alive: the watch resumes from its last revision, nothing lost or
// repeated, and the lease survives.
func TestRestart(t *testing.T) {
	s := etcdtest.Start(t, etcdtest.Options{})
	c := connect(t, Config{Endpoints: []string{s.Endpoint()}, DialTimeout: time.Second})
	ctx := ctxT(t, 60*time.Second)
	g, err := c.Grant(ctx, 8)
	if err != nil {
		t.Fatal(err)
	}
	ka, err := c.KeepAlive(ctx, g.ID)
	if err != nil {
		t.Fatal(err)
	}
	ch := c.Watch(ctx, "/r/", WithPrefix(), WithRev(1))
	var want []string
	put := func(cli *Client, i int) {
		if _, err := cli.Put(ctx, fmt.Sprintf("/r/%02d", i), "v"); err != nil {
			t.Fatal(err)
		}
		want = append(want, fmt.Sprintf("PUT /r/%02d=v", i))
	}
	for i := range 5 {
		put(c, i)
	}
	got := events(t, ch, 5, 5*time.Second)

	s.Stop()
	time.Sleep(1500 * time.Millisecond)
	s.Restart()
	// Writes by another client while this one's streams are still
	// reconnecting.
	other := connect(t, Config{Endpoints: []string{s.Endpoint()}})
	for i := 5; i < 10; i++ {
		put(other, i)
	}
	got = append(got, events(t, ch, 5, 10*time.Second)...)
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("events across the restart:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	select {
	case wr := <-ch:
		t.Errorf("event repeated or extra: %+v", wr)
	case <-time.After(300 * time.Millisecond):
	}
	// The lease lives on, renewed from the restarted etcd.
	deadline := time.Now().Add(10 * time.Second)
	for {
		select {
		case r, ok := <-ka:
			if !ok {
				t.Fatal("keep-alive gave up across a 1.5 s outage (TTL 8 s)")
			}
			if ttl, err := c.TimeToLive(ctx, g.ID); err != nil || ttl.TTL <= 0 {
				t.Fatalf("lease after the restart: %+v, %v", ttl, err)
			}
			t.Logf("renewed after the restart: TTL %d", r.TTL)
			return
		case <-time.After(time.Until(deadline)):
			t.Fatal("no renewal 10 s after the restart")
		}
	}
}

// TestFailover: with a dead endpoint first, New, calls, watches and
// keep-alives go to the live one; with only dead ones, New fails within
// DialTimeout saying why.
func TestFailover(t *testing.T) {
	s := etcdtest.Start(t, etcdtest.Options{})
	dead := deadEndpoint(t)
	c := connect(t, Config{Endpoints: []string{dead, s.Endpoint()}, DialTimeout: time.Second})
	ctx := ctxT(t, 20*time.Second)
	if _, err := c.Put(ctx, "/f", "1"); err != nil {
		t.Fatal(err)
	}
	if r, err := c.Get(ctx, "/f"); err != nil || keys(r) != "/f=1" {
		t.Fatalf("get: %+v, %v", r, err)
	}
	// Every stream and call starts at the dead endpoint again.
	c.tr.cur.Store(0)
	ch := c.Watch(ctx, "/f", WithRev(1))
	if got := events(t, ch, 1, 5*time.Second); got[0] != "PUT /f=1" {
		t.Errorf("watch: %v", got)
	}
	c.tr.cur.Store(0)
	g, err := c.Grant(ctx, 5)
	if err != nil {
		t.Fatalf("grant through a dead endpoint first: %v", err)
	}
	c.tr.cur.Store(0)
	ka, _ := c.KeepAlive(ctx, g.ID)
	select {
	case r := <-ka:
		if r == nil || r.ID != g.ID {
			t.Errorf("keep-alive: %+v", r)
		}
	case <-time.After(5 * time.Second):
		t.Error("no keep-alive renewal through the live endpoint")
	}

	start := time.Now()
	_, err = New(ctx, Config{Endpoints: []string{dead, deadEndpoint(t)}, DialTimeout: 500 * time.Millisecond})
	if !IsUnavailable(err) || !strings.Contains(err.Error(), "connection refused") || time.Since(start) > 2*time.Second {
		t.Errorf("New with dead endpoints: %v after %v; want unavailable, saying connection refused, within 0.5 s", err, time.Since(start))
	}
}

// TestHungEndpoint: an endpoint that stops answering with its connection
// open (a hung etcd, a black hole) is noticed by the HTTP/2 pings within
// KeepAliveTime + KeepAliveTimeout; the watch and the keep-alive resume at
// the next endpoint, nothing lost, and calls go there.
func TestHungEndpoint(t *testing.T) {
	s := etcdtest.Start(t, etcdtest.Options{})
	hung, live := newProxy(t, s.Endpoint()), newProxy(t, s.Endpoint())
	c := connect(t, Config{Endpoints: []string{hung.addr(), live.addr()}, DialTimeout: time.Second,
		KeepAliveTime: 500 * time.Millisecond, KeepAliveTimeout: 500 * time.Millisecond})
	direct := connect(t, Config{Endpoints: []string{s.Endpoint()}})
	ctx := ctxT(t, 30*time.Second)
	g, err := c.Grant(ctx, 3)
	if err != nil {
		t.Fatal(err)
	}
	ka, _ := c.KeepAlive(ctx, g.ID)
	ch := c.Watch(ctx, "/h/", WithPrefix(), WithRev(1))
	direct.Put(ctx, "/h/a", "1")
	events(t, ch, 1, 5*time.Second)
	hung.freeze()
	start := time.Now()
	direct.Put(ctx, "/h/b", "2")
	if got := events(t, ch, 1, 10*time.Second); got[0] != "PUT /h/b=2" {
		t.Errorf("after the endpoint hung: %v", got)
	}
	t.Logf("watch resumed %v after the endpoint hung", time.Since(start).Round(time.Millisecond))
	if time.Since(start) > 4*time.Second {
		t.Errorf("watch resumed only after %v", time.Since(start))
	}
	for len(ka) > 0 {
		<-ka
	}
	select {
	case _, ok := <-ka:
		if !ok {
			t.Fatal("keep-alive gave up")
		}
	case <-time.After(3 * time.Second):
		t.Fatal("no renewal through the live endpoint")
	}
	if ttl, err := direct.TimeToLive(ctx, g.ID); err != nil || ttl.TTL <= 0 {
		t.Errorf("lease: %+v, %v", ttl, err)
	}
	if _, err := c.Get(ctx, "/h/a"); err != nil {
		t.Errorf("get: %v", err)
	}
}

// TestAuth: a user's token is sent with every call and renewed when etcd
// rejects it (expired after --auth-token-ttl); wrong credentials fail New.
func TestAuth(t *testing.T) {
	s := etcdtest.Start(t, etcdtest.Options{Args: []string{"--auth-token-ttl", "1"}})
	if err := s.EnableAuth("pw"); err != nil {
		t.Fatal(err)
	}
	ctx := ctxT(t, 30*time.Second)
	c := connect(t, Config{Endpoints: []string{s.Endpoint()}, Username: "root", Password: "pw"})
	if _, err := c.Put(ctx, "/a", "1"); err != nil {
		t.Fatal(err)
	}
	first := *c.token.Load()
	ch := c.Watch(ctx, "/a", WithRev(1))
	events(t, ch, 1, 5*time.Second)
	time.Sleep(2500 * time.Millisecond) // the token expires
	if r, err := c.Get(ctx, "/a"); err != nil || keys(r) != "/a=1" {
		t.Fatalf("get with an expired token: %+v, %v", r, err)
	}
	if *c.token.Load() == first {
		t.Error("token not renewed")
	}
	if _, err := c.Put(ctx, "/a", "2"); err != nil {
		t.Fatal(err)
	}
	if got := events(t, ch, 1, 5*time.Second); got[0] != "PUT /a=2" {
		t.Errorf("watch: %v", got)
	}

	_, err := New(ctx, Config{Endpoints: []string{s.Endpoint()}, Username: "root", Password: "wrong", DialTimeout: time.Second})
	if !errors.Is(err, ErrAuthFailed) || IsUnavailable(err) {
		t.Errorf("wrong password: %v, want ErrAuthFailed", err)
	}
	anon := connect(t, Config{Endpoints: []string{s.Endpoint()}})
	if _, err := anon.Get(ctx, "/a"); err == nil || IsUnavailable(err) {
		t.Errorf("get without credentials: %v, want refused", err)
	}
}

// handled returns etcd's count of the calls of method that ended
// (grpc_server_handled_total): a stream counts once it ends.
func handled(t *testing.T, s *etcdtest.Server, method string) float64 {
	t.Helper()
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DialContext: s.DialContext}}
	resp, err := hc.Get("http://" + s.Endpoint() + "/metrics")
	if err != nil {
		t.Fatalf("etcd metrics: %v", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("etcd metrics: %v", err)
	}
	var n float64
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "grpc_server_handled_total{") && strings.Contains(line, `grpc_method="`+method+`"`) {
			f := strings.Fields(line)
			v, _ := strconv.ParseFloat(f[len(f)-1], 64)
			n += v
		}
	}
	return n
}
