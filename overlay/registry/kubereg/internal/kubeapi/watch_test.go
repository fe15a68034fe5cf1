package kubeapi

import (
	"context"
	"crypto/tls"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// recorder is a NodeHandler's record: "put NAME CIDR" and "del NAME".
type recorder struct {
	mu      sync.Mutex
	events  []string
	errs    []error
	relists []error
	synced  chan struct{}
}

func (r *recorder) handler() NodeHandler {
	r.synced = make(chan struct{})
	return NodeHandler{
		Event: func(n *Node, deleted bool) {
			r.mu.Lock()
			defer r.mu.Unlock()
			if deleted {
				r.events = append(r.events, "del "+n.Name)
			} else {
				r.events = append(r.events, "put "+n.Name+" "+n.Spec.PodCIDR)
			}
		},
		Synced: func() { close(r.synced) },
		Error: func(err error) {
			r.mu.Lock()
			r.errs = append(r.errs, err)
			r.mu.Unlock()
		},
		Relist: func(err error) {
			r.mu.Lock()
			r.relists = append(r.relists, err)
			r.mu.Unlock()
		},
	}
}

// start runs WatchNodes of f for r until the test ends, and waits for its
// first list.
func (r *recorder) start(t *testing.T, f *fakeAPI) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	c, h := f.client(t), r.handler()
	go func() { defer close(done); c.WatchNodes(ctx, h) }()
	t.Cleanup(func() { cancel(); <-done })
	select {
	case <-r.synced:
	case <-time.After(5 * time.Second):
		t.Fatalf("not synced; errors %v", r.errors())
	}
}

func (r *recorder) errors() []error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.errs)
}

// waitFor waits until the events since mark hold want, in order.
func (r *recorder) waitFor(t *testing.T, mark int, want ...string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		r.mu.Lock()
		got := slices.Clone(r.events[mark:])
		r.mu.Unlock()
		if slices.Equal(got, want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("events %q, want %q", got, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (r *recorder) mark() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.events)
}

// TestWatchNodesPagedList: 1,234 Nodes are listed in pages of 500 (limit,
// continue), each delivered once before Synced; then one watch from the
// list's resourceVersion with bookmarks and a server timeout of 5 to 10
// minutes, over HTTP/2 and TLS 1.2+, with the token and user agent; and
// no other request while idle.
func TestWatchNodesPagedList(t *testing.T) {
	f := newFakeAPI(t)
	for i := range 1234 {
		f.put(fmt.Sprintf("n%04d", i), fmt.Sprintf("10.%d.%d.0/24", i/256, i%256))
	}
	var r recorder
	r.start(t, f)
	if n := r.mark(); n != 1234 {
		t.Fatalf("%d events at sync, want 1234", n)
	}
	time.Sleep(200 * time.Millisecond)
	lists := f.requestsOf(NodesPath, false)
	if len(lists) != 3 {
		t.Fatalf("%d list requests, want 3", len(lists))
	}
	for i, l := range lists {
		if l.query.Get("limit") != "500" || l.query.Has("continue") != (i > 0) {
			t.Errorf("list request %d: %v", i, l.query)
		}
	}
	watches := f.requestsOf(NodesPath, true)
	if len(watches) != 1 {
		t.Fatalf("%d watch requests while idle, want 1", len(watches))
	}
	w := watches[0]
	secs, _ := strconv.Atoi(w.query.Get("timeoutSeconds"))
	if w.query.Get("resourceVersion") != "1234" || w.query.Get("allowWatchBookmarks") != "true" || secs < 300 || secs >= 600 {
		t.Errorf("watch request %v", w.query)
	}
	if w.agent != "overlayd (node test)" || w.auth != "Bearer t0" || w.proto != 2 || w.tls < tls.VersionTLS12 {
		t.Errorf("watch request: agent %q, auth %q, HTTP/%d, TLS %x", w.agent, w.auth, w.proto, w.tls)
	}
}

// TestWatchNodesEvents: changes come as they happen; a bookmark advances
// the resourceVersion the next watch starts from.
func TestWatchNodesEvents(t *testing.T) {
	f := newFakeAPI(t)
	f.put("a", "10.0.1.0/24")
	var r recorder
	r.start(t, f)
	m := r.mark()
	f.put("b", "10.0.2.0/24")
	f.put("a", "10.0.3.0/24")
	f.delete("b")
	r.waitFor(t, m, "put b 10.0.2.0/24", "put a 10.0.3.0/24", "del b")
	rv := f.bookmark()
	time.Sleep(100 * time.Millisecond)
	f.breakWatches()
	f.waitStreams(t, 2)
	watches := f.requestsOf(NodesPath, true)
	if len(watches) < 2 || watches[1].query.Get("resourceVersion") != strconv.Itoa(rv) {
		t.Fatalf("watch requests after a bookmark of %d: %d, the second from %q", rv, len(watches), watches[len(watches)-1].query.Get("resourceVersion"))
	}
	if n := len(f.requestsOf(NodesPath, false)); n != 1 {
		t.Errorf("%d lists, want 1", n)
	}
}

// TestWatchNodesReconnect: a change made while the watch is down (its
// connection dropped, the server then refusing twice) is delivered once
// it is back, from the last resourceVersion: no relist, no loss.
func TestWatchNodesReconnect(t *testing.T) {
	f := newFakeAPI(t)
	f.put("a", "10.0.1.0/24")
	var r recorder
	r.start(t, f)
	m := r.mark()
	f.waitStreams(t, 1)
	f.setQuiet(true)
	f.mu.Lock()
	f.fail = 2
	f.mu.Unlock()
	f.breakWatches()
	f.put("a", "10.0.9.0/24")
	f.put("c", "10.0.4.0/24")
	f.setQuiet(false)
	r.waitFor(t, m, "put a 10.0.9.0/24", "put c 10.0.4.0/24")
	if n := len(f.requestsOf(NodesPath, false)); n != 1 {
		t.Errorf("%d lists, want 1 (a re-watch, not a relist)", n)
	}
	errs := r.errors()
	if len(errs) != 3 || !Temporary(errs[1]) || code(errs[1]) != 503 {
		t.Errorf("errors %v, want the dropped watch and two 503s", errs)
	}
}

// TestWatchNodesRelist: when the last resourceVersion is too old (ERROR
// 410), the Nodes are listed again: those gone meanwhile are delivered as
// deleted, the new ones as put.
func TestWatchNodesRelist(t *testing.T) {
	f := newFakeAPI(t)
	f.put("a", "10.0.1.0/24")
	f.put("b", "10.0.2.0/24")
	var r recorder
	r.start(t, f)
	m := r.mark()
	f.waitStreams(t, 1)
	f.setQuiet(true)
	f.delete("b")
	f.put("c", "10.0.3.0/24")
	f.compact()
	f.setQuiet(false)
	f.breakWatches()
	r.waitFor(t, m, "put a 10.0.1.0/24", "put c 10.0.3.0/24", "del b")
	if n := len(f.requestsOf(NodesPath, false)); n != 2 {
		t.Errorf("%d lists, want 2", n)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.relists) != 1 || !IsGone(r.relists[0]) || !strings.Contains(r.relists[0].Error(), "too old resource version") {
		t.Errorf("relists %v", r.relists)
	}
}

// TestWatchNodesContinueExpired: a list whose continue token expired
// (410) starts over, and still delivers every Node.
func TestWatchNodesContinueExpired(t *testing.T) {
	f := newFakeAPI(t)
	for i := range 1200 {
		f.put(fmt.Sprintf("n%04d", i), "10.0.0.0/24")
	}
	f.expireContinue = 1
	var r recorder
	r.start(t, f)
	lists := f.requestsOf(NodesPath, false)
	if len(lists) != 5 || lists[2].query.Has("continue") {
		t.Errorf("%d list requests, want 5 (page 1, an expired page 2, pages 1 to 3)", len(lists))
	}
	if errs := r.errors(); len(errs) != 0 {
		t.Errorf("errors %v: the list should start over at once", errs)
	}
	r.mu.Lock()
	got := slices.Clone(r.events)
	r.mu.Unlock()
	slices.Sort(got)
	if got = slices.Compact(got); len(got) != 1200 {
		t.Errorf("%d Nodes delivered, want 1200", len(got))
	}
}
