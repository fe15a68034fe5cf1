package kubeapi

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"
)

// transport returns the HTTP transport of cfg: TLS 1.2 or later with
// cfg's roots and client certificate, HTTP/2 where the server speaks it,
// its connections pinged when quiet so that a dead one is found (a watch
// otherwise waits on it for ever).
func transport(cfg Config) *http.Transport {
	return &http.Transport{
		Proxy:       http.ProxyFromEnvironment,
		DialContext: (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig: &tls.Config{
			MinVersion:         tls.VersionTLS12,
			RootCAs:            cfg.RootCAs,
			InsecureSkipVerify: cfg.Insecure, // the kubeconfig's insecure-skip-tls-verify
			ServerName:         cfg.ServerName,
			Certificates:       cfg.Certificates,
		},
		TLSHandshakeTimeout: 10 * time.Second,
		ForceAttemptHTTP2:   true,
		HTTP2:               &http.HTTP2Config{SendPingTimeout: 30 * time.Second, PingTimeout: 15 * time.Second},
		MaxIdleConnsPerHost: 4,
		IdleConnTimeout:     90 * time.Second,
	}
}

// tokenPeriod is how long a token read from a file is used before the
// file is read again (client-go's period: a bound service account token
// is replaced well before it expires).
const tokenPeriod = time.Minute

// auth is a Client's credentials beyond the TLS ones.
type auth struct {
	token, username, password string
	file                      *tokenFile // nil: none
}

func newAuth(cfg Config) auth {
	a := auth{token: cfg.Token, username: cfg.Username, password: cfg.Password}
	if cfg.Token == "" && cfg.TokenFile != "" {
		a.file = &tokenFile{path: cfg.TokenFile, now: time.Now}
	}
	return a
}

// set puts the credentials on req.
func (a auth) set(req *http.Request) {
	switch {
	case a.token != "":
		req.Header.Set("Authorization", "Bearer "+a.token)
	case a.file != nil:
		if t := a.file.get(); t != "" {
			req.Header.Set("Authorization", "Bearer "+t)
		}
	case a.username != "" || a.password != "":
		req.SetBasicAuth(a.username, a.password)
	}
}

// tokenFile is a bearer token read from a file, again once it is
// tokenPeriod old.
type tokenFile struct {
	path string
	now  func() time.Time

	mu    sync.Mutex
	token string
	read  time.Time
}

// get returns the token, read again when the last read is tokenPeriod old;
// when the file cannot be read, the token read last.
func (f *tokenFile) get() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	now := f.now()
	if f.token != "" && now.Sub(f.read) < tokenPeriod {
		return f.token
	}
	if t, err := readToken(f.path); err == nil {
		f.token, f.read = t, now
	}
	return f.token
}

// readToken reads the bearer token in the file at path.
func readToken(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	t := strings.TrimSpace(string(b))
	if t == "" {
		return "", fmt.Errorf("%s: %w", path, errEmptyToken)
	}
	return t, nil
}

var errEmptyToken = errors.New("the token file is empty")
