package kubeapi

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"math/big"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// selfSigned returns a self-signed certificate and its key, as PEM.
func selfSigned(t *testing.T, cn string) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
}

// kubeconfigOf is a kubeconfig of one context "c" of cluster "k" and
// user "u" with these fields.
func kubeconfigOf(cluster, user string) string {
	return "apiVersion: v1\nkind: Config\ncurrent-context: c\ncontexts:\n- name: c\n  context: {cluster: k, user: u}\n" +
		"clusters:\n- name: k\n  cluster:\n" + cluster + "users:\n- name: u\n  user:\n" + user
}

// TestLoad: the kubeconfig variants kubectl takes (CA file, relative to
// the kubeconfig's directory, or data; insecure; tls-server-name; client
// certificate files or data; token; tokenFile) and clear errors, naming
// the file and the field, for the broken ones.
func TestLoad(t *testing.T) {
	dir := t.TempDir()
	cert, key := selfSigned(t, "admin")
	b64 := base64.StdEncoding.EncodeToString
	for name, b := range map[string][]byte{"ca.crt": cert, "certs/client.crt": cert, "certs/client.key": key, "token": []byte("tok-file\n"), "empty": nil, "junk": []byte("junk")} {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	const server = "    server: https://192.0.2.1:6443/prefix\n"
	for _, tc := range []struct {
		name, file string
		check      func(Config) bool
		err        string // the error holds it; empty: none
	}{
		{"ca-file-relative", kubeconfigOf(server+"    certificate-authority: ca.crt\n", "    token: tok\n"),
			func(c Config) bool {
				return c.RootCAs != nil && c.Token == "tok" && c.Server.String() == "https://192.0.2.1:6443/prefix"
			}, ""},
		{"ca-data", kubeconfigOf(server+"    certificate-authority-data: "+b64(cert)+"\n    tls-server-name: api.example\n", ""),
			func(c Config) bool { return c.RootCAs != nil && c.ServerName == "api.example" }, ""},
		{"insecure", kubeconfigOf(server+"    insecure-skip-tls-verify: true\n", "    username: a\n    password: b\n"),
			func(c Config) bool { return c.Insecure && c.RootCAs == nil && c.Username == "a" && c.Password == "b" }, ""},
		{"no-scheme", kubeconfigOf("    server: 192.0.2.1:6443\n", ""),
			func(c Config) bool { return c.Server.String() == "https://192.0.2.1:6443" }, ""},
		{"client-cert-files", kubeconfigOf(server, "    client-certificate: certs/client.crt\n    client-key: "+filepath.Join(dir, "certs/client.key")+"\n"),
			func(c Config) bool { return len(c.Certificates) == 1 }, ""},
		{"client-cert-data", kubeconfigOf(server, "    client-certificate-data: "+b64(cert)+"\n    client-key-data: "+b64(key)+"\n"),
			func(c Config) bool { return len(c.Certificates) == 1 }, ""},
		{"token-file", kubeconfigOf(server, "    tokenFile: token\n"),
			func(c Config) bool { return c.Token == "" && c.TokenFile == filepath.Join(dir, "token") }, ""},
		{"token-wins", kubeconfigOf(server, "    token: t\n    tokenFile: missing\n"),
			func(c Config) bool { return c.Token == "t" && c.TokenFile == "" }, ""},

		{"not-yaml", "clusters: [", nil, "yaml"},
		{"no-current-context", strings.Replace(kubeconfigOf(server, ""), "current-context: c", "", 1), nil, "current-context is not set"},
		{"unknown-context", strings.Replace(kubeconfigOf(server, ""), "current-context: c", "current-context: x", 1), nil, `current-context "x" is not among contexts`},
		{"unknown-cluster", strings.Replace(kubeconfigOf(server, ""), "cluster: k,", "cluster: x,", 1), nil, `context "c": cluster "x" is not among clusters`},
		{"unknown-user", strings.Replace(kubeconfigOf(server, ""), "- name: u\n", "- name: v\n", 1), nil, `context "c": user "u" is not among users`},
		{"no-server", kubeconfigOf("    insecure-skip-tls-verify: true\n", ""), nil, `cluster "k": server is not set`},
		{"bad-server", kubeconfigOf("    server: ftp://x\n", ""), nil, `cluster "k": server "ftp://x"`},
		{"ca-missing", kubeconfigOf(server+"    certificate-authority: nope.crt\n", ""), nil, `cluster "k": certificate-authority: open ` + filepath.Join(dir, "nope.crt")},
		{"ca-not-base64", kubeconfigOf(server+"    certificate-authority-data: '%%%'\n", ""), nil, `cluster "k": certificate-authority-data is not base64`},
		{"ca-not-pem", kubeconfigOf(server+"    certificate-authority: junk\n", ""), nil, `cluster "k": certificate-authority: no PEM certificate`},
		{"ca-and-insecure", kubeconfigOf(server+"    certificate-authority: ca.crt\n    insecure-skip-tls-verify: true\n", ""), nil, "exclude each other"},
		{"cert-without-key", kubeconfigOf(server, "    client-certificate: certs/client.crt\n"), nil, `user "u": client-certificate without client-key`},
		{"key-without-cert", kubeconfigOf(server, "    client-key-data: "+b64(key)+"\n"), nil, `user "u": client-key without client-certificate`},
		{"key-mismatch", kubeconfigOf(server, "    client-certificate: certs/client.crt\n    client-key: junk\n"), nil, `user "u": client-certificate and client-key`},
		{"cert-missing", kubeconfigOf(server, "    client-certificate: gone.crt\n    client-key: junk\n"), nil, `user "u": client-certificate: open`},
		{"exec", kubeconfigOf(server, "    exec:\n      command: aws\n"), nil, `user "u": exec credential plugins are not supported: give the user a token`},
		{"auth-provider", kubeconfigOf(server, "    auth-provider:\n      name: gcp\n"), nil, `user "u": auth-provider plugins are not supported`},
		{"token-file-missing", kubeconfigOf(server, "    tokenFile: gone\n"), nil, `user "u": tokenFile: open`},
		{"token-file-empty", kubeconfigOf(server, "    tokenFile: empty\n"), nil, `user "u": tokenFile: ` + filepath.Join(dir, "empty") + ": the token file is empty"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, tc.name+".kubeconfig")
			if err := os.WriteFile(path, []byte(tc.file), 0o600); err != nil {
				t.Fatal(err)
			}
			cfg, err := Load(path)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) || !strings.Contains(err.Error(), "kubeapi: kubeconfig "+path+": ") {
					t.Fatalf("error %v, want one naming %s and %q", err, path, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if cfg.Source != path || !tc.check(cfg) {
				t.Errorf("config %+v", cfg)
			}
		})
	}
	if _, err := Load(filepath.Join(dir, "absent")); err == nil || !strings.Contains(err.Error(), filepath.Join(dir, "absent")) {
		t.Errorf("absent kubeconfig: %v", err)
	}
}

// TestLoadConnects: a kubeconfig with the server's CA as data and a client
// certificate reaches a server that requires one.
func TestLoadConnects(t *testing.T) {
	f := newFakeAPI(t)
	f.put("a", "10.0.1.0/24")
	cert, key := selfSigned(t, "admin")
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(cert)
	f.srv.TLS.ClientAuth, f.srv.TLS.ClientCAs = tls.RequireAndVerifyClientCert, pool
	caPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: f.srv.Certificate().Raw})
	b64 := base64.StdEncoding.EncodeToString
	path := filepath.Join(t.TempDir(), "kubeconfig")
	kc := kubeconfigOf("    server: "+f.srv.URL+"\n    certificate-authority-data: "+b64(caPEM)+"\n    tls-server-name: example.com\n",
		"    client-certificate-data: "+b64(cert)+"\n    client-key-data: "+b64(key)+"\n")
	if err := os.WriteFile(path, []byte(kc), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	c, err := New(cfg, "ua")
	if err != nil {
		t.Fatal(err)
	}
	var page nodeList
	if err := c.Get(t.Context(), NodesPath, nil, &page); err != nil || len(page.Items) != 1 {
		t.Fatalf("list: %v, %+v", err, page)
	}
	// Without the client certificate, the server refuses the handshake.
	cfg.Certificates = nil
	c, _ = New(cfg, "ua")
	if err := c.Get(t.Context(), NodesPath, nil, &page); err == nil || !Temporary(err) {
		t.Errorf("without a client certificate: %v", err)
	}
}

// TestInCluster: a pod's configuration from the environment and the
// service account's directory; its token sent; clear errors when it is
// not in a pod or the account's files are missing.
func TestInCluster(t *testing.T) {
	f := newFakeAPI(t)
	u, _ := url.Parse(f.srv.URL)
	dir := t.TempDir()
	caPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: f.srv.Certificate().Raw})
	env := map[string]string{"KUBERNETES_SERVICE_HOST": u.Hostname(), "KUBERNETES_SERVICE_PORT": u.Port()}
	getenv := func(k string) string { return env[k] }

	if _, err := inCluster(getenv, dir); err == nil || !strings.Contains(err.Error(), "kubeapi: in-cluster: the service account's token: open "+filepath.Join(dir, "token")) {
		t.Errorf("no token: %v", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "token"), []byte("sa-token"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := inCluster(getenv, dir); err == nil || !strings.Contains(err.Error(), "the cluster's CA certificate: open "+filepath.Join(dir, "ca.crt")) {
		t.Errorf("no ca.crt: %v", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "ca.crt"), caPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := inCluster(getenv, dir)
	if err != nil {
		t.Fatal(err)
	}
	c, err := New(cfg, "ua")
	if err != nil {
		t.Fatal(err)
	}
	// httptest's certificate is for example.com and 127.0.0.1.
	if err := c.Patch(t.Context(), NodesPath+"/a/status", MergePatch, []byte(`{"metadata":{}}`)); err != nil {
		t.Fatal(err)
	}
	p := f.requestsOf(NodesPath+"/a/status", false)
	if len(p) != 1 || p[0].auth != "Bearer sa-token" || p[0].contentType != string(MergePatch) || p[0].body != `{"metadata":{}}` || p[0].method != http.MethodPatch {
		t.Errorf("patch requests %+v", p)
	}

	delete(env, "KUBERNETES_SERVICE_PORT")
	if _, err := inCluster(getenv, dir); err == nil || !strings.Contains(err.Error(), "KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT are not set") {
		t.Errorf("not in a pod: %v", err)
	}
}

// TestTokenFileRotates: a token read from a file is read again once it is
// a minute old (bound tokens rotate), not at every request; a file that
// cannot be read keeps the last token.
func TestTokenFileRotates(t *testing.T) {
	f := newFakeAPI(t)
	path := filepath.Join(t.TempDir(), "token")
	write := func(s string) {
		if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("one")
	u, _ := url.Parse(f.srv.URL)
	caPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: f.srv.Certificate().Raw})
	pool, _ := caPool(caPEM, nil)
	c, err := New(Config{Server: u, RootCAs: pool, TokenFile: path}, "ua")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1_000_000, 0)
	c.auth.file.now = func() time.Time { return now }
	var got []string
	send := func() {
		var page nodeList
		if err := c.Get(t.Context(), NodesPath, nil, &page); err != nil {
			t.Fatal(err)
		}
		r := f.requestsOf(NodesPath, false)
		got = append(got, strings.TrimPrefix(r[len(r)-1].auth, "Bearer "))
	}
	send()
	write("two")
	now = now.Add(59 * time.Second)
	send()
	now = now.Add(time.Second)
	send()
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	now = now.Add(2 * time.Minute)
	send()
	if want := []string{"one", "one", "two", "two"}; strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("tokens sent %q, want %q", got, want)
	}
}

// TestBasicAuth: a kubeconfig user's username and password are sent as
// basic authentication.
func TestBasicAuth(t *testing.T) {
	f := newFakeAPI(t)
	u, _ := url.Parse(f.srv.URL)
	c, err := New(Config{Server: u, Insecure: true, Username: "admin", Password: "pw"}, "ua")
	if err != nil {
		t.Fatal(err)
	}
	var page nodeList
	if err := c.Get(t.Context(), NodesPath, nil, &page); err != nil {
		t.Fatal(err)
	}
	r := f.requestsOf(NodesPath, false)
	if want := "Basic " + base64.StdEncoding.EncodeToString([]byte("admin:pw")); len(r) != 1 || r[0].auth != want {
		t.Errorf("requests %+v, want authorization %q", r, want)
	}
}
