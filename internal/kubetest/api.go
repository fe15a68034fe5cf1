package kubetest

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// newHTTPClient returns a client of the API server that connects from the
// control plane's namespace and trusts the cluster's CA.
func (c *Cluster) newHTTPClient() *http.Client {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(c.CA)
	return &http.Client{
		Timeout: 10 * time.Second,
		Transport: &http.Transport{
			DialContext:     c.DialContext,
			TLSClientConfig: &tls.Config{RootCAs: pool},
			MaxIdleConns:    4,
		},
	}
}

// Request sends an API request with a bearer token ("" for an anonymous
// one) and returns the response's status and body. A body is JSON; a
// PATCH's is a JSON merge patch.
func (c *Cluster) Request(method, path, token string, body []byte) (int, []byte, error) {
	req, err := http.NewRequest(method, c.Server+path, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	switch {
	case method == http.MethodPatch:
		req.Header.Set("Content-Type", "application/merge-patch+json")
	case body != nil:
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.httpClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// getJSON GETs path as the admin and decodes the answer into out.
func (c *Cluster) getJSON(path string, out any) error {
	status, body, err := c.Request("GET", path, c.AdminToken, nil)
	if err != nil {
		return fmt.Errorf("kubetest: GET %s: %w", path, err)
	}
	if status != http.StatusOK {
		return fmt.Errorf("kubetest: GET %s: %d: %s", path, status, body)
	}
	if err := json.Unmarshal(body, out); err != nil {
		return fmt.Errorf("kubetest: GET %s: %w", path, err)
	}
	return nil
}

// Get GETs an API path as the admin and decodes the JSON answer into out;
// a failure fails t.
func (c *Cluster) Get(t testing.TB, path string, out any) {
	t.Helper()
	if err := c.getJSON(path, out); err != nil {
		t.Fatal(err)
	}
}

// Kubectl runs the lab's kubectl as the admin, in the control plane's
// network namespace, and returns its standard output; a failure fails t.
func (c *Cluster) Kubectl(t testing.TB, args ...string) string {
	t.Helper()
	out, err := c.KubectlWith(c.AdminKubeconfig, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// KubectlWith runs kubectl with the given kubeconfig, in the control
// plane's network namespace, and returns its standard output or an error
// carrying its standard error.
func (c *Cluster) KubectlWith(kubeconfig string, args ...string) (string, error) {
	return output(c.kubectl(kubeconfig, args...))
}

func (c *Cluster) kubectl(kubeconfig string, args ...string) *exec.Cmd {
	argv := c.inControlPlane(append([]string{filepath.Join(c.Bin, "kubectl"), "--kubeconfig", kubeconfig}, args...)...)
	return exec.Command(argv[0], argv[1:]...)
}

// Apply applies a manifest (kubectl apply -f -) as the admin.
func (c *Cluster) Apply(t testing.TB, manifest string) string {
	t.Helper()
	cmd := c.kubectl(c.AdminKubeconfig, "apply", "-f", "-")
	cmd.Stdin = strings.NewReader(manifest)
	out, err := output(cmd)
	if err != nil {
		t.Fatalf("%v\nmanifest:\n%s", err, manifest)
	}
	return out
}

// ServiceAccountToken returns a token of the service account ns/sa from
// the TokenRequest API (kubectl create token; valid for an hour), as a pod
// of that service account holds.
func (c *Cluster) ServiceAccountToken(t testing.TB, ns, sa string) string {
	t.Helper()
	return strings.TrimSpace(c.Kubectl(t, "create", "token", sa, "--namespace", ns, "--duration", "1h"))
}

// KubeconfigFor writes a kubeconfig of the cluster whose user is the bearer
// token and returns its path (in the cluster's directory).
func (c *Cluster) KubeconfigFor(t testing.TB, token string) string {
	t.Helper()
	f, err := os.CreateTemp(c.Dir, "token-*.kubeconfig")
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	if err := writeKubeconfig(f.Name(), c.Server, c.CA, credentials{token: token}); err != nil {
		t.Fatal(err)
	}
	return f.Name()
}
