package guard

import (
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
		reasons := Reasons()
		promtext.Family(w, "overlayd_guard_drops_total", "counter", "Packets dropped by the VTEP allowlist and the per-port anti-spoofing rules, by reason.",
			"reason", len(reasons), func(i int) (string, uint64) { return string(reasons[i]), drops[reasons[i]] })
		if st != nil {
			promtext.Gauge(w, "overlayd_guard_allowlist_addresses", "Underlay addresses in the VTEP allowlist.", st.Size.Load())
			promtext.Counter(w, "overlayd_guard_allowlist_updates_total", "Changes of the VTEP allowlist committed.", st.Updates.Load())
			promtext.Counter(w, "overlayd_guard_allowlist_errors_total", "Failed VTEP allowlist updates (registry or kernel).", st.Errors.Load())
		}
	}
}
