package kubeapi

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"go.yaml.in/yaml/v2"
)

// Config says how to reach an API server and who to be there.
type Config struct {
	// Source names where the configuration came from (a kubeconfig's
	// path, or "in-cluster"), for errors.
	Source string
	// Server is the API server's URL (https://HOST:PORT, maybe with a
	// path prefix).
	Server *url.URL
	// RootCAs verify the server's certificate; nil: the system's.
	RootCAs *x509.CertPool
	// Insecure skips the verification of the server's certificate.
	Insecure bool
	// ServerName is the name the server's certificate is checked for,
	// when it is not the URL's host.
	ServerName string
	// Certificates hold the client certificate, if any.
	Certificates []tls.Certificate
	// Token is a bearer token; TokenFile one read from a file, again
	// every minute (used when Token is empty).
	Token, TokenFile string
	// Username and Password are basic authentication's.
	Username, Password string
}

// ServiceAccountDir is where a pod finds its service account's token and
// the cluster's CA certificate.
const ServiceAccountDir = "/var/run/secrets/kubernetes.io/serviceaccount"

// InCluster returns the configuration of a pod's service account: the
// API server at KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT, the
// cluster's CA (ca.crt) and the account's token (token, re-read every
// minute) in ServiceAccountDir.
func InCluster() (Config, error) { return inCluster(os.Getenv, ServiceAccountDir) }

func inCluster(getenv func(string) string, dir string) (Config, error) {
	host, port := getenv("KUBERNETES_SERVICE_HOST"), getenv("KUBERNETES_SERVICE_PORT")
	if host == "" || port == "" {
		return Config{}, errors.New("kubeapi: in-cluster: KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT are not set (not in a pod)")
	}
	cfg := Config{Source: "in-cluster", Server: &url.URL{Scheme: "https", Host: net.JoinHostPort(host, port)},
		TokenFile: filepath.Join(dir, "token")}
	if _, err := readToken(cfg.TokenFile); err != nil {
		return Config{}, fmt.Errorf("kubeapi: in-cluster: the service account's token: %w", err)
	}
	pool, err := caPool(os.ReadFile(filepath.Join(dir, "ca.crt")))
	if err != nil {
		return Config{}, fmt.Errorf("kubeapi: in-cluster: the cluster's CA certificate: %w", err)
	}
	cfg.RootCAs = pool
	return cfg, nil
}

// kubeconfig is a kubeconfig file, as far as overlaynet reads it.
type kubeconfig struct {
	Clusters []struct {
		Name    string `yaml:"name"`
		Cluster struct {
			Server     string `yaml:"server"`
			CA         string `yaml:"certificate-authority"`
			CAData     string `yaml:"certificate-authority-data"`
			Insecure   bool   `yaml:"insecure-skip-tls-verify"`
			ServerName string `yaml:"tls-server-name"`
		} `yaml:"cluster"`
	} `yaml:"clusters"`
	Users []struct {
		Name string `yaml:"name"`
		User struct {
			Cert         string `yaml:"client-certificate"`
			CertData     string `yaml:"client-certificate-data"`
			Key          string `yaml:"client-key"`
			KeyData      string `yaml:"client-key-data"`
			Token        string `yaml:"token"`
			TokenFile    string `yaml:"tokenFile"`
			Username     string `yaml:"username"`
			Password     string `yaml:"password"`
			Exec         any    `yaml:"exec"`
			AuthProvider any    `yaml:"auth-provider"`
		} `yaml:"user"`
	} `yaml:"users"`
	Contexts []struct {
		Name    string `yaml:"name"`
		Context struct {
			Cluster string `yaml:"cluster"`
			User    string `yaml:"user"`
		} `yaml:"context"`
	} `yaml:"contexts"`
	CurrentContext string `yaml:"current-context"`
}

// Load reads the kubeconfig file at path and returns the configuration of
// its current context. Relative paths in it are taken from the file's
// directory, as kubectl does. Errors name the file and the field.
func Load(path string) (Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("kubeapi: kubeconfig: %w", err)
	}
	var kc kubeconfig
	if err := yaml.Unmarshal(b, &kc); err != nil {
		return Config{}, fmt.Errorf("kubeapi: kubeconfig %s: %w", path, err)
	}
	cfg, err := kc.config(filepath.Dir(path))
	if err != nil {
		return Config{}, fmt.Errorf("kubeapi: kubeconfig %s: %w", path, err)
	}
	cfg.Source = path
	return cfg, nil
}

// config resolves kc's current context, relative paths against dir.
func (kc *kubeconfig) config(dir string) (Config, error) {
	if kc.CurrentContext == "" {
		return Config{}, errors.New("current-context is not set (kubectl config use-context NAME)")
	}
	ci := index(len(kc.Contexts), func(i int) string { return kc.Contexts[i].Name }, kc.CurrentContext)
	if ci < 0 {
		return Config{}, fmt.Errorf("current-context %q is not among contexts", kc.CurrentContext)
	}
	ctx := kc.Contexts[ci].Context
	cl := index(len(kc.Clusters), func(i int) string { return kc.Clusters[i].Name }, ctx.Cluster)
	if cl < 0 {
		return Config{}, fmt.Errorf("context %q: cluster %q is not among clusters", kc.CurrentContext, ctx.Cluster)
	}
	cfg, err := kc.cluster(cl, dir)
	if err != nil {
		return Config{}, err
	}
	if ctx.User == "" {
		return cfg, nil
	}
	u := index(len(kc.Users), func(i int) string { return kc.Users[i].Name }, ctx.User)
	if u < 0 {
		return Config{}, fmt.Errorf("context %q: user %q is not among users", kc.CurrentContext, ctx.User)
	}
	return cfg, kc.user(u, dir, &cfg)
}

// index returns the index of the entry named name of n, or -1.
func index(n int, name func(int) string, want string) int {
	for i := range n {
		if name(i) == want {
			return i
		}
	}
	return -1
}

// cluster reads cluster i.
func (kc *kubeconfig) cluster(i int, dir string) (Config, error) {
	c := kc.Clusters[i].Cluster
	where := fmt.Sprintf("cluster %q", kc.Clusters[i].Name)
	if c.Server == "" {
		return Config{}, fmt.Errorf("%s: server is not set", where)
	}
	raw := c.Server
	if !strings.Contains(raw, "://") {
		raw = "https://" + raw
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return Config{}, fmt.Errorf("%s: server %q is no http(s)://HOST[:PORT] URL", where, c.Server)
	}
	cfg := Config{Server: u, Insecure: c.Insecure, ServerName: c.ServerName}
	pem, err := material(dir, "certificate-authority", c.CAData, c.CA)
	if err != nil {
		return Config{}, fmt.Errorf("%s: %w", where, err)
	}
	if pem != nil {
		if c.Insecure {
			return Config{}, fmt.Errorf("%s: insecure-skip-tls-verify and a certificate-authority exclude each other", where)
		}
		if cfg.RootCAs, err = caPool(pem, nil); err != nil {
			return Config{}, fmt.Errorf("%s: certificate-authority: %w", where, err)
		}
	}
	return cfg, nil
}

// user reads user i into cfg.
func (kc *kubeconfig) user(i int, dir string, cfg *Config) error {
	u := kc.Users[i].User
	where := fmt.Sprintf("user %q", kc.Users[i].Name)
	const use = "give the user a token, a tokenFile (a ServiceAccount's token) or a client-certificate and client-key"
	switch {
	case u.Exec != nil:
		return fmt.Errorf("%s: exec credential plugins are not supported: %s", where, use)
	case u.AuthProvider != nil:
		return fmt.Errorf("%s: auth-provider plugins are not supported: %s", where, use)
	}
	cert, err := material(dir, "client-certificate", u.CertData, u.Cert)
	if err != nil {
		return fmt.Errorf("%s: %w", where, err)
	}
	key, err := material(dir, "client-key", u.KeyData, u.Key)
	if err != nil {
		return fmt.Errorf("%s: %w", where, err)
	}
	switch {
	case cert != nil && key != nil:
		pair, err := tls.X509KeyPair(cert, key)
		if err != nil {
			return fmt.Errorf("%s: client-certificate and client-key: %w", where, err)
		}
		cfg.Certificates = []tls.Certificate{pair}
	case cert != nil:
		return fmt.Errorf("%s: client-certificate without client-key", where)
	case key != nil:
		return fmt.Errorf("%s: client-key without client-certificate", where)
	}
	cfg.Token, cfg.Username, cfg.Password = u.Token, u.Username, u.Password
	if u.Token == "" && u.TokenFile != "" {
		cfg.TokenFile = resolve(dir, u.TokenFile)
		if _, err := readToken(cfg.TokenFile); err != nil {
			return fmt.Errorf("%s: tokenFile: %w", where, err)
		}
	}
	return nil
}

// material returns the bytes of field's -data variant (base64), else
// those of the file at path; nil when both are empty.
func material(dir, field, data, path string) ([]byte, error) {
	switch {
	case data != "":
		b, err := base64.StdEncoding.DecodeString(data)
		if err != nil {
			return nil, fmt.Errorf("%s-data is not base64: %w", field, err)
		}
		return b, nil
	case path != "":
		b, err := os.ReadFile(resolve(dir, path))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", field, err)
		}
		return b, nil
	}
	return nil, nil
}

// resolve returns path, taken from dir when relative.
func resolve(dir, path string) string {
	if filepath.IsAbs(path) {
		return path
	}
	return filepath.Join(dir, path)
}

// caPool returns a pool of the PEM certificates in pem.
func caPool(pem []byte, err error) (*x509.CertPool, error) {
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, errors.New("no PEM certificate in it")
	}
	return pool, nil
}
