package daemon

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/overlaynet/overlaynet/overlay"
	"github.com/overlaynet/overlaynet/overlay/resolver"
)

// metricsTimeouts bound every connection to the metrics server: a client
// that sends slowly, reads slowly or idles cannot hold a connection (and its
// goroutine and buffers) for long.
type metricsTimeouts struct{ readHeader, read, write, idle time.Duration }

// defaultMetricsTimeouts are the metrics server's: a scrape is one small
// request and a response of a few kilobytes.
func defaultMetricsTimeouts() metricsTimeouts {
	return metricsTimeouts{readHeader: 5 * time.Second, read: 10 * time.Second, write: 10 * time.Second, idle: 30 * time.Second}
}

// ServeMetrics serves m in the Prometheus text format at
// http://addr/metrics until stop is called; it returns the address it
// listens on (addr with port 0 picks a free port).
func ServeMetrics(addr string, m *resolver.Metrics, log *slog.Logger) (stop func(), bound string, err error) {
	return serveMetrics(addr, m, log, defaultMetricsTimeouts(), nil)
}

// serveMetrics is ServeMetrics with the timeouts to and more handlers by
// path (the daemon's /healthz and /readyz).
func serveMetrics(addr string, m *resolver.Metrics, log *slog.Logger, to metricsTimeouts, more map[string]http.Handler) (stop func(), bound string, err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, "", &SettingError{Setting: SettingMetricsAddr, Err: err}
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", m)
	for path, h := range more {
		mux.Handle(path, h)
	}
	srv := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: to.readHeader,
		ReadTimeout:       to.read,
		WriteTimeout:      to.write,
		IdleTimeout:       to.idle,
		MaxHeaderBytes:    8 << 10,
	}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics server", "err", err)
		}
	}()
	stop = func() {
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	}
	return stop, ln.Addr().String(), nil
}

// maxExposedAddrs bounds the addresses warnExposed names.
const maxExposedAddrs = 16

// warnExposed warns when the metrics server listens on an unspecified
// address (":PORT", "0.0.0.0:PORT", "[::]:PORT"): every address of this
// node's network namespace serves them, to whoever reaches one, this
// node's own containers included when the overlay has egress (their way out
// leads to the node's addresses). It names those addresses, and how to keep
// the metrics to the node.
func warnExposed(asked, bound string, ov *overlay.Overlay, log *slog.Logger) {
	host, port, err := net.SplitHostPort(asked)
	if err != nil {
		return
	}
	if host != "" {
		if a, err := netip.ParseAddr(host); err != nil || !a.IsUnspecified() {
			return
		}
	}
	if _, p, err := net.SplitHostPort(bound); err == nil {
		port = p
	}
	var addrs []string
	if as, err := net.InterfaceAddrs(); err == nil {
		for _, a := range as {
			if len(addrs) == maxExposedAddrs {
				addrs = append(addrs, "...("+strconv.Itoa(len(as))+" addresses)")
				break
			}
			if pfx, err := netip.ParsePrefix(a.String()); err == nil {
				addrs = append(addrs, pfx.Addr().String())
			}
		}
	}
	who := "any host that reaches one of these addresses"
	if ov != nil && ov.Config.Egress != nil {
		who += ", this node's containers included (egress leads them to the node's addresses)"
	}
	log.Warn("metrics are served on every address of this node's network namespace: listen on 127.0.0.1 to keep them to this node",
		"listen", bound, "addresses", strings.Join(addrs, " "), "reachable_by", who, "instead", net.JoinHostPort("127.0.0.1", port))
}
