package etcdreg

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/overlaynet/overlaynet/overlay/registry"
)

// Defaults applied by Open.
const (
	// DefaultPrefix is the key prefix when the URL has no path.
	DefaultPrefix = "/overlaynet"
	// DefaultVNI is the overlay used when neither the URL nor Options name one
	// (the overlay package's default VNI).
	DefaultVNI = 42
	// DefaultTTL is the lease TTL: a node that stops keeping its lease alive
	// stops being advertised this long after its last keep-alive.
	DefaultTTL = 10 * time.Second
	// DefaultTimeout bounds dialing and every request whose context has no
	// earlier deadline.
	DefaultTimeout = 5 * time.Second
	// DefaultPort is used for an endpoint given without a port.
	DefaultPort = "2379"
)

// Options tune a Registry. The zero value is usable. A setting may also be
// given in the URL's query (see Open); a setting given both ways must agree.
type Options struct {
	// VNI selects the overlay whose keys the registry reads and writes
	// (URL: vni=42). Zero means DefaultVNI.
	VNI uint32
	// TTL is the lease TTL (URL: ttl=10s, or whole seconds). Zero means
	// DefaultTTL. etcd rounds it up to whole seconds and to its minimum TTL.
	TTL time.Duration
	// NoLease writes records without a lease: they stay until unregistered,
	// as in the directory store (URL: ttl=0). For one-shot clients such as
	// `overlayd attach`, whose records the node's daemon adopts by
	// registering them again under its own lease.
	NoLease bool
	// Timeout bounds dialing and each request whose context has no earlier
	// deadline (URL: timeout=5s). Zero means DefaultTimeout.
	Timeout time.Duration
	// CAFile is a PEM bundle of the CAs that sign the etcd servers'
	// certificates (URL: ca=PATH). Setting it turns TLS on.
	CAFile string
	// CertFile and KeyFile are the PEM client certificate and key for
	// etcd's client certificate authentication (URL: cert=PATH, key=PATH).
	// Setting them turns TLS on; both or neither.
	CertFile, KeyFile string
	// ServerName overrides the name checked in the server certificate
	// (URL: servername=NAME).
	ServerName string
	// Username and Password authenticate to etcd (URL: etcd://USER:PASS@...).
	Username, Password string
	// NodeVTEP, when valid, advertises this node under nodes/<vtep> on its
	// lease (URL: node=192.0.2.2).
	NodeVTEP netip.Addr
	// Keep, when set, is given the records this registry owns before they
	// are registered again under a new lease (after the lease was lost),
	// all at once, and returns those still to be registered; a record it
	// leaves out (a container detached meanwhile by another process) is
	// forgotten instead. The daemon checks its state directory.
	Keep func(owned []registry.Record) []registry.Record
	// Hostname is recorded in the node key (default os.Hostname()).
	Hostname string
	// Logger receives the registry's own events (lease lost and regained,
	// watch re-lists). Nil discards them.
	Logger *slog.Logger
}

// target is a parsed store URL merged with Options.
type target struct {
	endpoints []string // host:port
	prefix    string   // no trailing slash
	tls       bool
	opts      Options
}

// parseURL parses etcd://[USER:PASS@]HOST[:PORT][,HOST[:PORT]...][/PREFIX][?QUERY]
// (etcds:// for TLS with the system's CAs) and merges opts into the result.
func parseURL(raw string, opts Options) (*target, error) {
	bad := func(format string, args ...any) error {
		return registry.BadURL(fmt.Errorf("etcdreg: store URL %q: %s", registry.RedactURL(raw), fmt.Sprintf(format, args...)))
	}
	scheme, rest, ok := strings.Cut(raw, "://")
	if !ok {
		return nil, bad("want etcd://HOST:PORT[,HOST:PORT]/PREFIX")
	}
	t := &target{opts: opts}
	switch scheme {
	case "etcd":
	case "etcds":
		t.tls = true
	default:
		return nil, bad("unknown scheme %q (want etcd or etcds)", scheme)
	}
	rest, rawQuery, _ := strings.Cut(rest, "?")
	// The user information ends at the last "@" before the query (as
	// registry.RedactURL reads it), so that no part of a password is ever
	// taken for a host and quoted in an error.
	var user string
	if at := strings.LastIndex(rest, "@"); at >= 0 {
		user, rest = rest[:at], rest[at+1:]
		if strings.Contains(user, "/") {
			return nil, bad("the user information holds a \"/\" (percent-escape it as %%2F; a prefix cannot hold \"@\")")
		}
	}
	hosts, path, hasPath := strings.Cut(rest, "/")
	if user != "" {
		name, pass, _ := strings.Cut(user, ":")
		var err error
		if name, err = url.PathUnescape(name); err != nil {
			return nil, bad("bad user name: %v", err)
		}
		if pass, err = url.PathUnescape(pass); err != nil {
			return nil, bad("bad %%-escape in the password") // the error would quote it
		}
		if err := agree(&t.opts.Username, name, "user name"); err != nil {
			return nil, bad("%v", err)
		}
		if t.opts.Password != "" && t.opts.Password != pass {
			return nil, bad("the password in the URL disagrees with the one in the options")
		}
		t.opts.Password = pass
	}
	if hosts == "" {
		return nil, bad("no endpoint (want etcd://HOST:PORT/PREFIX)")
	}
	for h := range strings.SplitSeq(hosts, ",") {
		ep, err := endpoint(h)
		if err != nil {
			return nil, bad("%v", err)
		}
		t.endpoints = append(t.endpoints, ep)
	}
	t.prefix = DefaultPrefix
	if hasPath {
		p := strings.TrimRight(path, "/")
		if p != "" {
			t.prefix = "/" + p
		}
	}
	q, err := url.ParseQuery(rawQuery)
	if err != nil {
		return nil, bad("bad query: %v", err)
	}
	if err := t.applyQuery(q); err != nil {
		return nil, bad("%v", err)
	}
	o := &t.opts
	if o.VNI == 0 {
		o.VNI = DefaultVNI
	}
	if o.VNI > 1<<24-1 {
		return nil, bad("vni %d out of range 1..16777215", o.VNI)
	}
	if o.TTL == 0 {
		o.TTL = DefaultTTL
	}
	if o.TTL < 0 {
		return nil, bad("negative ttl %v", o.TTL)
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if (o.CertFile == "") != (o.KeyFile == "") {
		return nil, bad("a client certificate needs both cert and key")
	}
	if o.CAFile != "" || o.CertFile != "" {
		t.tls = true
	}
	return t, nil
}

// applyQuery merges the URL's query into t.opts.
func (t *target) applyQuery(q url.Values) error {
	o := &t.opts
	for k, vs := range q {
		if len(vs) != 1 {
			return fmt.Errorf("%s given %d times", k, len(vs))
		}
		v := vs[0]
		var err error
		switch k {
		case "vni":
			n, perr := strconv.ParseUint(v, 10, 32)
			if perr != nil || n == 0 {
				return fmt.Errorf("vni %q is not a number in 1..16777215", v)
			}
			err = agreeNum(&o.VNI, uint32(n), "vni")
		case "ttl":
			d, perr := parseDuration(v)
			if perr != nil {
				return fmt.Errorf("ttl %q: %v", v, perr)
			}
			if d == 0 {
				o.NoLease = true
			} else {
				err = agreeNum(&o.TTL, d, "ttl")
			}
		case "timeout":
			d, perr := parseDuration(v)
			if perr != nil || d <= 0 {
				return fmt.Errorf("timeout %q is not a positive duration", v)
			}
			err = agreeNum(&o.Timeout, d, "timeout")
		case "ca":
			err = agree(&o.CAFile, v, "ca")
		case "cert":
			err = agree(&o.CertFile, v, "cert")
		case "key":
			err = agree(&o.KeyFile, v, "key")
		case "servername":
			err = agree(&o.ServerName, v, "servername")
		case "node":
			a, perr := netip.ParseAddr(v)
			if perr != nil {
				return fmt.Errorf("node %q is not an IP address", v)
			}
			if o.NodeVTEP.IsValid() && o.NodeVTEP != a {
				return fmt.Errorf("node %s in the URL disagrees with %s in the options", a, o.NodeVTEP)
			}
			o.NodeVTEP = a
		default:
			return fmt.Errorf("unknown parameter %q (known: vni ttl timeout ca cert key servername node)", k)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// agree sets *dst to v if *dst is empty, and refuses two different values.
func agree(dst *string, v, what string) error {
	if *dst != "" && *dst != v {
		return fmt.Errorf("%s %q in the URL disagrees with %q in the options", what, v, *dst)
	}
	*dst = v
	return nil
}

func agreeNum[T uint32 | time.Duration](dst *T, v T, what string) error {
	if *dst != 0 && *dst != v {
		return fmt.Errorf("%s %v in the URL disagrees with %v in the options", what, v, *dst)
	}
	*dst = v
	return nil
}

// parseDuration accepts a Go duration ("10s") or whole seconds ("10").
func parseDuration(s string) (time.Duration, error) {
	if n, err := strconv.ParseUint(s, 10, 32); err == nil {
		return time.Duration(n) * time.Second, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, errors.New("not a duration (like 10s) nor whole seconds")
	}
	if d < 0 {
		return 0, errors.New("negative")
	}
	return d, nil
}

// endpoint validates HOST[:PORT] and adds DefaultPort when missing.
func endpoint(h string) (string, error) {
	if h == "" {
		return "", errors.New("empty endpoint in the host list")
	}
	host, port, err := net.SplitHostPort(h)
	if err != nil {
		// No port: a bare name, IPv4 address or [IPv6] address.
		host = strings.TrimSuffix(strings.TrimPrefix(h, "["), "]")
		port = DefaultPort
		if strings.ContainsAny(host, "[]") || (strings.Contains(host, ":") && !strings.HasPrefix(h, "[")) {
			return "", fmt.Errorf("endpoint %q: want HOST:PORT ([ADDR]:PORT for IPv6)", h)
		}
	}
	if host == "" {
		return "", fmt.Errorf("endpoint %q has no host", h)
	}
	if n, err := strconv.ParseUint(port, 10, 16); err != nil || n == 0 {
		return "", fmt.Errorf("endpoint %q: bad port %q", h, port)
	}
	return net.JoinHostPort(host, port), nil
}

// tlsConfig builds the client TLS configuration from the options.
func (t *target) tlsConfig() (*tls.Config, error) {
	if !t.tls {
		return nil, nil
	}
	o := t.opts
	c := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: o.ServerName}
	if o.CAFile != "" {
		pem, err := os.ReadFile(o.CAFile)
		if err != nil {
			return nil, fmt.Errorf("etcdreg: CA file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("etcdreg: CA file %s holds no PEM certificate", o.CAFile)
		}
		c.RootCAs = pool
	}
	if o.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(o.CertFile, o.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("etcdreg: client certificate: %w", err)
		}
		c.Certificates = []tls.Certificate{cert}
	}
	return c, nil
}
