package daemon

import (
	"bufio"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/overlaynet/overlaynet/overlay"
	"github.com/overlaynet/overlaynet/overlay/egress"
	"github.com/overlaynet/overlaynet/overlay/resolver"
)

// TestMetricsServerTimeouts: a client of the metrics server that idles
// after a scrape, or announces a request body and never sends it, is
// disconnected once the server's timeouts pass, instead of holding its
// connection forever.
func TestMetricsServerTimeouts(t *testing.T) {
	short := metricsTimeouts{readHeader: 200 * time.Millisecond, read: 300 * time.Millisecond,
		write: 300 * time.Millisecond, idle: 300 * time.Millisecond}
	stop, addr, err := serveMetrics("127.0.0.1:0", &resolver.Metrics{}, slog.New(slog.DiscardHandler), short, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()

	for _, tc := range []struct {
		name, request string
		answered      bool // a 200 comes before the close
	}{
		{"idle keep-alive", "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", true},
		// The server waits for the body it would discard before answering.
		{"body never sent", "GET /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n", false},
		{"headers never finished", "GET /metrics HTTP/1.1\r\nHost: x\r\n", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if _, err := io.WriteString(c, tc.request); err != nil {
				t.Fatal(err)
			}
			// The client waits up to 5 s, well beyond the timeouts: the
			// server must have closed the connection by then.
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			start := time.Now()
			got, err := io.ReadAll(bufio.NewReader(c))
			if err != nil {
				t.Fatalf("connection still open after %v (read: %v); got %q", time.Since(start).Round(time.Millisecond), err, got)
			}
			if tc.answered && !strings.HasPrefix(string(got), "HTTP/1.1 200") {
				t.Errorf("response %q, want a 200 before the close", got)
			}
		})
	}
}

// TestWarnExposed: a metrics address with an unspecified host (":PORT",
// "0.0.0.0:PORT", "[::]:PORT") is warned about, naming the addresses that
// serve it, who reaches them (containers too with egress) and 127.0.0.1 as
// the way to keep them local; a specific address is not.
func TestWarnExposed(t *testing.T) {
	withEgress := &overlay.Overlay{Config: overlay.Config{Egress: &egress.Config{}}}
	for _, tc := range []struct {
		addr   string
		ov     *overlay.Overlay
		warned bool
	}{
		{":9477", nil, true},
		{"0.0.0.0:9477", withEgress, true},
		{"[::]:9477", nil, true},
		{"127.0.0.1:9477", withEgress, false},
		{"192.0.2.2:9477", nil, false},
		{"[::1]:9477", nil, false},
	} {
		t.Run(tc.addr, func(t *testing.T) {
			var b strings.Builder
			warnExposed(tc.addr, tc.addr, tc.ov, slog.New(slog.NewTextHandler(&b, nil)))
			out := b.String()
			if !tc.warned {
				if out != "" {
					t.Errorf("warned about %s:\n%s", tc.addr, out)
				}
				return
			}
			for _, want := range []string{"level=WARN", "every address of this node's network namespace", "addresses=\"",
				"127.0.0.1", "instead=127.0.0.1:9477"} {
				if !strings.Contains(out, want) {
					t.Errorf("warning lacks %q:\n%s", want, out)
				}
			}
			if containers := strings.Contains(out, "containers included"); containers != (tc.ov != nil) {
				t.Errorf("containers named: %v, want %v (egress):\n%s", containers, tc.ov != nil, out)
			}
		})
	}
}
