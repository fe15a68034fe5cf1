package etcdreg

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/overlaynet/overlaynet/internal/etcdtest"
	"github.com/overlaynet/overlaynet/overlay/registry"
)

// pki is a throwaway CA with a server and a client certificate, as PEM files.
type pki struct {
	ca, serverCert, serverKey, clientCert, clientKey string
}

func newPKI(t *testing.T) pki {
	t.Helper()
	dir := t.TempDir()
	write := func(name, typ string, der []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	key := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	now := time.Now()
	caKey := key()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "overlaynet test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	leaf := func(serial int64, name string, usage x509.ExtKeyUsage) (string, string) {
		k := key()
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name},
			NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
			KeyUsage:    x509.KeyUsageDigitalSignature,
			ExtKeyUsage: []x509.ExtKeyUsage{usage},
			IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &k.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		kder, err := x509.MarshalECPrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		return write(name+".pem", "CERTIFICATE", der), write(name+"-key.pem", "EC PRIVATE KEY", kder)
	}
	p := pki{ca: write("ca.pem", "CERTIFICATE", caDER)}
	p.serverCert, p.serverKey = leaf(2, "server", x509.ExtKeyUsageServerAuth)
	p.clientCert, p.clientKey = leaf(3, "client", x509.ExtKeyUsageClientAuth)
	return p
}

// An etcd that requires client certificates: the registry connects with
// the CA and client certificate given in the URL, and not without them.
func TestTLS(t *testing.T) {
	etcdtest.Require(t)
	p := newPKI(t)
	pool := x509.NewCertPool()
	caPEM, _ := os.ReadFile(p.ca)
	pool.AppendCertsFromPEM(caPEM)
	cc, err := tls.LoadX509KeyPair(p.clientCert, p.clientKey)
	if err != nil {
		t.Fatal(err)
	}
	s := etcdtest.Start(t, etcdtest.Options{
		Args: []string{"--cert-file", p.serverCert, "--key-file", p.serverKey, "--trusted-ca-file", p.ca, "--client-cert-auth"},
		TLS:  &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cc}},
	})

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	q := url.Values{"ca": {p.ca}, "cert": {p.clientCert}, "key": {p.clientKey}, "timeout": {"2s"}}
	r, err := Open(ctx, s.URL("tls", q.Encode()), Options{})
	if err != nil {
		t.Fatalf("open with client certificate: %v\n%s", err, s.LogTail())
	}
	defer r.Close()
	rc := rec("198.51.100.2", "02:42:c6:33:64:02", "192.0.2.2")
	if err := r.Register(ctx, rc); err != nil {
		t.Fatal(err)
	}
	if mac, err := r.LookupMAC(ctx, rc.IP); err != nil || mac != rc.MAC {
		t.Fatalf("LookupMAC over TLS: %s, %v", mac, err)
	}

	refused := []struct {
		name, url string
		opts      Options
		why       string // in the error (TLS 1.3 reports a refused client certificate after the handshake: the last error varies)
	}{
		{"no client certificate", s.URL("tls", "timeout=1s"), Options{CAFile: p.ca}, "connect to"},
		{"plain text", s.URL("tls", "timeout=1s"), Options{}, "connection error"},
		{"unknown CA", s.URL("tls", "timeout=1s&cert="+p.clientCert+"&key="+p.clientKey), Options{CAFile: p.clientCert}, "unknown authority"},
	}
	for _, tt := range refused {
		r, err := Open(ctx, tt.url, tt.opts)
		if err == nil {
			r.Close()
			t.Errorf("%s: connected", tt.name)
			continue
		}
		if !errors.Is(err, registry.ErrUnavailable) || !strings.Contains(err.Error(), tt.why) {
			t.Errorf("%s: %v; want registry.ErrUnavailable saying %q", tt.name, err, tt.why)
		}
		t.Logf("%s: %v", tt.name, err)
	}
	if _, err := Open(ctx, s.URL("tls", "ca="+filepath.Join(t.TempDir(), "missing.pem")), Options{}); err == nil || !strings.Contains(err.Error(), "CA file") {
		t.Errorf("missing CA file: %v", err)
	}
}
