package daemon

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"time"

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
	return serveMetrics(addr, m, log, defaultMetricsTimeouts())
}

func serveMetrics(addr string, m *resolver.Metrics, log *slog.Logger, to metricsTimeouts) (stop func(), bound string, err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, "", &SettingError{Setting: SettingMetricsAddr, Err: err}
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", m)
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
