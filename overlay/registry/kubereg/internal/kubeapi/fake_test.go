package kubeapi

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeAPI is an API server of Nodes for the tests: a paged list, a watch
// from a resourceVersion out of its history (410 once compacted), PATCH
// of a Node's status; every request recorded.
type fakeAPI struct {
	t   *testing.T
	srv *httptest.Server

	mu       sync.Mutex
	nodes    map[string]Node
	rv       int
	history  []fakeEvent   // every change, in order
	oldest   int           // watches from below it are 410 (compacted)
	changed  chan struct{} // closed at each change
	drop     chan struct{} // closed to break the watches
	requests []fakeRequest
	// expireContinue: that many list requests with a continue token are
	// answered 410.
	expireContinue int
	// fail: that many watch requests are answered 503.
	fail int
	// streams counts the watches that were streaming.
	streams int
	// quiet: changes wake no open watch (they happen while it is down).
	quiet bool
}

type fakeEvent struct {
	typ  EventType
	node Node
	rv   int
}

type fakeRequest struct {
	method, path, contentType, auth, agent string
	query                                  url.Values
	body                                   string
	proto                                  int
	tls                                    uint16
}

func newFakeAPI(t *testing.T) *fakeAPI {
	f := &fakeAPI{t: t, nodes: map[string]Node{}, changed: make(chan struct{}), drop: make(chan struct{})}
	f.srv = httptest.NewUnstartedServer(http.HandlerFunc(f.serve))
	f.srv.EnableHTTP2 = true
	f.srv.StartTLS()
	t.Cleanup(f.srv.Close)
	return f
}

// client is a Client of f, with short backoffs.
func (f *fakeAPI) client(t *testing.T) *Client {
	u, _ := url.Parse(f.srv.URL)
	c, err := New(Config{Source: "test", Server: u, RootCAs: f.srv.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs, Token: "t0"}, "overlayd (node test)")
	if err != nil {
		t.Fatal(err)
	}
	c.backoffMin, c.backoffMax = 5*time.Millisecond, 40*time.Millisecond
	return c
}

// put adds or changes a Node (its podCIDR), delete removes one.
func (f *fakeAPI) put(name, podCIDR string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	typ := Modified
	if _, ok := f.nodes[name]; !ok {
		typ = Added
	}
	f.rv++
	n := Node{ObjectMeta: ObjectMeta{Name: name, UID: "u-" + name, ResourceVersion: strconv.Itoa(f.rv)}, Spec: NodeSpec{PodCIDR: podCIDR}}
	f.nodes[name] = n
	f.recordLocked(typ, n)
}

func (f *fakeAPI) delete(name string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := f.nodes[name]
	delete(f.nodes, name)
	f.rv++
	n.ResourceVersion = strconv.Itoa(f.rv)
	f.recordLocked(Deleted, n)
}

func (f *fakeAPI) recordLocked(typ EventType, n Node) {
	f.history = append(f.history, fakeEvent{typ, n, f.rv})
	if !f.quiet {
		close(f.changed)
		f.changed = make(chan struct{})
	}
}

func (f *fakeAPI) setQuiet(q bool) {
	f.mu.Lock()
	f.quiet = q
	f.mu.Unlock()
}

// compact forgets the history: a watch from before now is 410.
func (f *fakeAPI) compact() {
	f.mu.Lock()
	f.oldest = f.rv + 1
	f.mu.Unlock()
}

// bookmark sends a bookmark of a new resourceVersion to the watches.
func (f *fakeAPI) bookmark() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rv++
	f.history = append(f.history, fakeEvent{Bookmark, Node{ObjectMeta: ObjectMeta{ResourceVersion: strconv.Itoa(f.rv)}}, f.rv})
	close(f.changed)
	f.changed = make(chan struct{})
	return f.rv
}

// breakWatches aborts the open watches' streams (a dropped connection).
func (f *fakeAPI) breakWatches() {
	f.mu.Lock()
	close(f.drop)
	f.drop = make(chan struct{})
	f.mu.Unlock()
}

// waitStreams waits until n watches have been streaming.
func (f *fakeAPI) waitStreams(t *testing.T, n int) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(2 * time.Millisecond) {
		f.mu.Lock()
		got := f.streams
		f.mu.Unlock()
		if got >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d watches streaming, want %d", got, n)
		}
	}
}

// requestsOf returns the requests recorded whose path is path and, when
// watch is set, whether they watch.
func (f *fakeAPI) requestsOf(path string, watch bool) []fakeRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []fakeRequest
	for _, r := range f.requests {
		if r.path == path && r.query.Has("watch") == watch {
			out = append(out, r)
		}
	}
	return out
}

func (f *fakeAPI) serve(w http.ResponseWriter, r *http.Request) {
	body := make([]byte, 4096)
	n, _ := r.Body.Read(body)
	f.mu.Lock()
	rec := fakeRequest{method: r.Method, path: r.URL.Path, contentType: r.Header.Get("Content-Type"), auth: r.Header.Get("Authorization"),
		agent: r.UserAgent(), query: r.URL.Query(), body: string(body[:n]), proto: r.ProtoMajor}
	if r.TLS != nil {
		rec.tls = r.TLS.Version
	}
	f.requests = append(f.requests, rec)
	f.mu.Unlock()
	switch {
	case r.Method == http.MethodGet && r.URL.Path == NodesPath && r.URL.Query().Has("watch"):
		f.watch(w, r)
	case r.Method == http.MethodGet && r.URL.Path == NodesPath:
		f.list(w, r)
	case r.Method == http.MethodPatch && strings.HasPrefix(r.URL.Path, NodesPath+"/") && strings.HasSuffix(r.URL.Path, "/status"):
		w.Header().Set("Content-Type", jsonType)
		fmt.Fprint(w, `{"kind":"Node","apiVersion":"v1","metadata":{"name":"x"}}`)
	default:
		writeStatus(w, http.StatusNotFound, "NotFound", "the server could not find the requested resource")
	}
}

func writeStatus(w http.ResponseWriter, code int, reason, msg string) {
	w.Header().Set("Content-Type", jsonType)
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(map[string]any{"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": code, "reason": reason, "message": msg})
}

// list serves a page: continue is "INDEX:RV".
func (f *fakeAPI) list(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	q := r.URL.Query()
	limit, _ := strconv.Atoi(q.Get("limit"))
	names := make([]string, 0, len(f.nodes))
	for name := range f.nodes {
		names = append(names, name)
	}
	slices.Sort(names)
	from := 0
	if c := q.Get("continue"); c != "" {
		if f.expireContinue > 0 {
			f.expireContinue--
			writeStatus(w, http.StatusGone, "Expired", "The provided continue parameter is too old")
			return
		}
		from, _ = strconv.Atoi(strings.Split(c, ":")[0])
	}
	to := len(names)
	if limit > 0 {
		to = min(from+limit, len(names))
	}
	page := map[string]any{"kind": "NodeList", "apiVersion": "v1"}
	meta := map[string]any{"resourceVersion": strconv.Itoa(f.rv)}
	if to < len(names) {
		meta["continue"] = fmt.Sprintf("%d:%d", to, f.rv)
	}
	items := []any{}
	for _, name := range names[from:to] {
		items = append(items, f.nodes[name])
	}
	page["metadata"], page["items"] = meta, items
	w.Header().Set("Content-Type", jsonType)
	_ = json.NewEncoder(w).Encode(page)
}

// watch streams the events after the request's resourceVersion until
// the client goes, or breakWatches.
func (f *fakeAPI) watch(w http.ResponseWriter, r *http.Request) {
	from, err := strconv.Atoi(r.URL.Query().Get("resourceVersion"))
	f.mu.Lock()
	if f.fail > 0 {
		f.fail--
		f.mu.Unlock()
		writeStatus(w, http.StatusServiceUnavailable, "ServiceUnavailable", "the server is shutting down")
		return
	}
	f.mu.Unlock()
	w.Header().Set("Content-Type", jsonType)
	w.WriteHeader(http.StatusOK)
	fl := w.(http.Flusher)
	fl.Flush()
	f.mu.Lock()
	f.streams++
	f.mu.Unlock()
	enc := json.NewEncoder(w)
	for {
		f.mu.Lock()
		if err != nil || from+1 < f.oldest {
			f.mu.Unlock()
			_ = enc.Encode(map[string]any{"type": "ERROR", "object": map[string]any{"kind": "Status", "apiVersion": "v1",
				"status": "Failure", "code": 410, "reason": "Expired", "message": fmt.Sprintf("too old resource version: %d (%d)", from, f.oldest)}})
			return
		}
		var send []fakeEvent
		for _, e := range f.history {
			if e.rv > from {
				send = append(send, e)
			}
		}
		changed, drop := f.changed, f.drop
		f.mu.Unlock()
		for _, e := range send {
			if err := enc.Encode(map[string]any{"type": e.typ, "object": e.node}); err != nil {
				return
			}
			from = e.rv
		}
		fl.Flush()
		select {
		case <-changed:
		case <-drop:
			panic(http.ErrAbortHandler)
		case <-r.Context().Done():
			return
		}
	}
}
