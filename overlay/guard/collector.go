package guard

import (
	"fmt"
	"io"

	"github.com/overlaynet/overlaynet/internal/promtext"
)

// Collector returns a Prometheus text collector of the guard's drops by
// reason (read from the rules' counters at each scrape), the allowlist's
// size and its updates. Either allowlist or ports may be nil (off).
func Collector(allowlist *Allowlist, ports func() ([]PortRules, error), st *FollowStats) func(io.Writer) {
	return func(w io.Writer) {
		drops := map[Reason]uint64{}
		if allowlist != nil {
			if by, err := allowlist.DropsBy(); err == nil {
				for r, c := range by {
					drops[r] = c.Packets
				}
			}
		}
		if ports != nil {
			if ps, err := ports(); err == nil {
				for _, p := range ps {
					for r, v := range p.Drops {
						drops[r] += v
					}
				}
			}
		}
		promtext.Header(w, "overlayd_guard_drops_total", "counter", "Packets dropped by the VTEP allowlist and the per-port anti-spoofing rules, by reason.")
		for _, r := range Reasons() {
			fmt.Fprintf(w, "overlayd_guard_drops_total{reason=%q} %d\n", r, drops[r])
		}
		if st != nil {
			promtext.Gauge(w, "overlayd_guard_allowlist_addresses", "Underlay addresses in the VTEP allowlist.", st.Size.Load())
			promtext.Counter(w, "overlayd_guard_allowlist_updates_total", "Changes of the VTEP allowlist committed.", st.Updates.Load())
			promtext.Counter(w, "overlayd_guard_allowlist_errors_total", "Failed VTEP allowlist updates (registry or kernel).", st.Errors.Load())
		}
	}
}
