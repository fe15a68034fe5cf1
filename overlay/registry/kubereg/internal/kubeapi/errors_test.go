package kubeapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

// TestStatusErrors: an answer of failure is a *StatusError with the
// Status's code, reason and message (or the body's start when it is no
// Status); the helpers and Temporary classify it as wrapAPI needs.
func TestStatusErrors(t *testing.T) {
	for _, tc := range []struct {
		code                                int
		body                                string
		reason, msg                         string
		notFound, unauth, forbid, gone, tmp bool
	}{
		{404, `{"kind":"Status","code":404,"reason":"NotFound","message":"daemonsets.apps \"x\" not found"}`, "NotFound", `daemonsets.apps "x" not found`, true, false, false, false, false},
		{401, `{"kind":"Status","code":401,"reason":"Unauthorized","message":"Unauthorized"}`, "Unauthorized", "Unauthorized", false, true, false, false, false},
		{403, `{"kind":"Status","code":403,"reason":"Forbidden","message":"nodes is forbidden"}`, "Forbidden", "nodes is forbidden", false, false, true, false, false},
		{410, `{"kind":"Status","code":410,"reason":"Expired","message":"too old"}`, "Expired", "too old", false, false, false, true, false},
		{409, `{"kind":"Status","code":409,"reason":"Conflict","message":"x"}`, "Conflict", "x", false, false, false, false, false},
		{422, `{"kind":"Status","code":422,"reason":"Invalid","message":"bad patch"}`, "Invalid", "bad patch", false, false, false, false, false},
		{429, `{"kind":"Status","code":429,"reason":"TooManyRequests","message":"slow down"}`, "TooManyRequests", "slow down", false, false, false, false, true},
		{500, `{"kind":"Status","code":500,"reason":"InternalError","message":"etcd"}`, "InternalError", "etcd", false, false, false, false, true},
		{503, `{"kind":"Status","code":503,"reason":"ServiceUnavailable"}`, "ServiceUnavailable", "", false, false, false, false, true},
		{504, `{"kind":"Status","code":504,"reason":"Timeout","message":"the request timed out"}`, "Timeout", "the request timed out", false, false, false, false, true},
		{502, "<html>bad gateway</html>", "Bad Gateway", "<html>bad gateway</html>", false, false, false, false, true},
		{404, "404 page not found", "NotFound", "404 page not found", true, false, false, false, false},
	} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.WriteHeader(tc.code)
			_, _ = w.Write([]byte(tc.body))
		}))
		u, _ := url.Parse(srv.URL)
		c, err := New(Config{Server: u}, "ua")
		if err != nil {
			t.Fatal(err)
		}
		err = c.Get(t.Context(), "/apis/apps/v1/namespaces/ns/daemonsets/x", nil, &struct{}{})
		srv.Close()
		var se *StatusError
		if !errors.As(err, &se) || se.Code != tc.code || se.Reason != tc.reason || se.Message != tc.msg {
			t.Errorf("%d %q: %#v", tc.code, tc.body, err)
			continue
		}
		if IsNotFound(err) != tc.notFound || IsUnauthorized(err) != tc.unauth || IsForbidden(err) != tc.forbid || IsGone(err) != tc.gone || Temporary(err) != tc.tmp {
			t.Errorf("%d: notFound %v unauthorized %v forbidden %v gone %v temporary %v", tc.code, IsNotFound(err), IsUnauthorized(err), IsForbidden(err), IsGone(err), Temporary(err))
		}
		if want := "kubeapi: GET /apis/apps/v1/namespaces/ns/daemonsets/x: "; !strings.HasPrefix(err.Error(), want) {
			t.Errorf("error %q, want it to start %q", err, want)
		}
	}

	// No answer at all: a connection refused is the server's being
	// unavailable, not a StatusError.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	c, _ := New(Config{Server: &url.URL{Scheme: "https", Host: addr}}, "ua")
	err = c.Patch(t.Context(), NodesPath+"/a/status", StrategicMergePatch, []byte("{}"))
	if err == nil || !Temporary(err) || IsNotFound(err) || !strings.HasPrefix(err.Error(), "kubeapi: ") {
		t.Errorf("connection refused: %v (temporary %v)", err, Temporary(err))
	}
}

// FuzzDecodeEvent: whatever a watch stream holds, decoding its events
// never panics, and an event decoded is of a known type, with a Node's
// name unless it is a bookmark or an error, and an ERROR's Status set.
func FuzzDecodeEvent(f *testing.F) {
	f.Add([]byte(`{"type":"ADDED","object":{"kind":"Node","metadata":{"name":"a","resourceVersion":"5","creationTimestamp":"2026-01-02T03:04:05Z","annotations":{"overlaynet.io/vtep":"192.0.2.1"}},"spec":{"podCIDRs":["10.0.0.0/24"]}}}`))
	f.Add([]byte(`{"type":"BOOKMARK","object":{"kind":"Node","metadata":{"resourceVersion":"9"}}}{"type":"DELETED","object":{"metadata":{"name":"b","deletionTimestamp":"2026-01-02T03:04:05Z"}}}`))
	f.Add([]byte(`{"type":"ERROR","object":{"kind":"Status","code":410,"reason":"Expired","message":"too old"}}`))
	f.Add([]byte(`{"type":"MODIFIED","object":{"metadata":{"name":""}}}{"type":"HUH"}[1,2]`))
	f.Add([]byte(`{"type":"ADDED","object":{"metadata":{"name":"x","creationTimestamp":"yesterday"}}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		dec := json.NewDecoder(bytes.NewReader(data))
		for range 64 {
			ev, err := decodeEvent(dec, NodesPath)
			if err != nil {
				var se *json.SyntaxError
				if errors.As(err, &se) || err.Error() == "EOF" {
					return
				}
				continue // an event that is none: the stream goes on, or ends at its next error
			}
			switch ev.Type {
			case Added, Modified, Deleted:
				if ev.Node.Name == "" || ev.Status != nil {
					t.Errorf("%s event %+v", ev.Type, ev)
				}
			case Bookmark:
			case Error:
				if ev.Status == nil || ev.Status.Code == 0 || ev.Status.Reason == "" {
					t.Errorf("ERROR event %+v", ev)
				}
			default:
				t.Errorf("event of type %q decoded", ev.Type)
			}
		}
	})
}
