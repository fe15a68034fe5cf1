package kubereg

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/overlaynet/overlaynet/overlay/registry"
)

// TestDaemonSet: what the daemon makes of its DaemonSet's answer: its UID
// and deletion, ErrGone for 404, ErrDenied for 401 and 403, the registry's
// ErrUnavailable for 5xx, 429 and no answer; the request's path, user
// agent and token as the API server sees them.
func TestDaemonSet(t *testing.T) {
	var answer struct {
		code int
		body string
	}
	var seen *http.Request
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen = r
		w.WriteHeader(answer.code)
		_, _ = w.Write([]byte(answer.body))
	}))
	defer srv.Close()
	dir := t.TempDir()
	kubeconfig := filepath.Join(dir, "kubeconfig")
	kc := "apiVersion: v1\nkind: Config\ncurrent-context: c\ncontexts:\n- name: c\n  context: {cluster: k, user: u}\n" +
		"clusters:\n- name: k\n  cluster:\n    server: " + srv.URL + "\n    insecure-skip-tls-verify: true\n" +
		"users:\n- name: u\n  user:\n    token: secret\n"
	if err := os.WriteFile(kubeconfig, []byte(kc), 0o600); err != nil {
		t.Fatal(err)
	}
	status := func(code int, reason string) string {
		b, _ := json.Marshal(map[string]any{"kind": "Status", "code": code, "reason": reason, "message": "m"})
		return string(b)
	}
	for _, tc := range []struct {
		code int
		body string
		want Owner
		err  error
	}{
		{200, `{"kind":"DaemonSet","metadata":{"name":"overlaynet","uid":"u-1"}}`, Owner{UID: "u-1"}, nil},
		{200, `{"metadata":{"uid":"u-2","deletionTimestamp":"2026-01-01T00:00:00Z"}}`, Owner{UID: "u-2", Deleting: true}, nil},
		{404, status(404, "NotFound"), Owner{}, ErrGone},
		{401, status(401, "Unauthorized"), Owner{}, ErrDenied},
		{403, status(403, "Forbidden"), Owner{}, ErrDenied},
		{503, status(503, "ServiceUnavailable"), Owner{}, registry.ErrUnavailable},
		{429, status(429, "TooManyRequests"), Owner{}, registry.ErrUnavailable},
	} {
		answer.code, answer.body = tc.code, tc.body
		got, err := DaemonSet(context.Background(), kubeconfig, "node-a", "kube-system", "overlaynet")
		if got != tc.want || (tc.err == nil) != (err == nil) || (tc.err != nil && !errors.Is(err, tc.err)) {
			t.Errorf("%d: %+v, %v; want %+v, %v", tc.code, got, err, tc.want, tc.err)
		}
		if seen.URL.Path != "/apis/apps/v1/namespaces/kube-system/daemonsets/overlaynet" || seen.UserAgent() != "overlayd (node node-a)" ||
			seen.Header.Get("Authorization") != "Bearer secret" || seen.Header.Get("Accept") != "application/json" {
			t.Errorf("request %s, agent %q, headers %v", seen.URL, seen.UserAgent(), seen.Header)
		}
	}
	srv.Close()
	if _, err := DaemonSet(context.Background(), kubeconfig, "node-a", "kube-system", "overlaynet"); !errors.Is(err, registry.ErrUnavailable) {
		t.Errorf("server gone: %v", err)
	}
}

// TestOpenBadConfig: a kubeconfig that cannot be used is a bad store URL,
// its error naming the file and the field.
func TestOpenBadConfig(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(path, []byte("current-context: c\ncontexts:\n- name: c\n  context: {cluster: k, user: u}\nclusters:\n- name: k\n  cluster: {server: 'https://192.0.2.1'}\nusers:\n- name: u\n  user:\n    exec: {command: aws}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Opener(context.Background(), "kube:"+path, registry.Options{NodeName: "a"})
	if !errors.Is(err, registry.ErrBadURL) || !strings.Contains(err.Error(), "kubereg: kubeapi: kubeconfig "+path+`: user "u": exec credential plugins are not supported`) {
		t.Errorf("exec user: %v", err)
	}
	t.Setenv("KUBERNETES_SERVICE_HOST", "")
	_, err = Opener(context.Background(), "kube:", registry.Options{NodeName: "a"})
	if !errors.Is(err, registry.ErrBadURL) || !strings.Contains(err.Error(), "needs the in-cluster service account of a pod") || !strings.Contains(err.Error(), "KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT are not set") {
		t.Errorf("in-cluster outside a pod: %v", err)
	}
}
