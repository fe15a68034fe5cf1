package main

import (
	"encoding/json"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/overlaynet/overlaynet/internal/nstest"
)

// TestMatchesIproute2 builds one node's overlay and one container twice, in
// parallel sets of namespaces: with the lab's own `ip` commands
// (create_overlay.sh + attach_ctn.sh) and with `overlayd create` + `overlayd
// attach`, then reads both back with `ip -d -j link`, `ip -j addr` and `ip -j
// route` in each corresponding namespace (node, overlay, container) and
// requires the same devices, kinds, VNI, port, flags, MTU, master, MAC,
// addresses and routes. Only what legitimately differs is normalised: the
// host veth's name (veth1 vs ve-pink), ifindexes (compared as names),
// random MACs (bridge, vxlan, host veth, underlay), MAC-derived bridge ids,
// running timers, and IPv6 link-local addresses (derived from random MACs,
// and tentative or not depending on timing).
func TestMatchesIproute2(t *testing.T) {
	// The lab's way, in namespaces ip -n can name.
	_, labNode := nstest.NetNS(t, "ln")
	_, labOver := nstest.NetNS(t, "lo")
	_, labCtr := nstest.NetNS(t, "lc")
	addUnderlay(t, labNode)
	lab := [][]string{
		// create_overlay.sh (overns = labOver; learning off as overlayd's default;
		// local as overlayd's --local).
		{labOver, "ip", "link", "add", "dev", "br0", "type", "bridge"},
		{labOver, "ip", "addr", "add", "dev", "br0", "198.51.100.1/24"},
		// mtu 1450: the lab's command leaves it out, and the kernel then gives a
		// vxlan without a lower device MTU 1500, whose full-size frames no
		// longer fit a 1500-byte underlay once encapsulated. overlayd sets the
		// overlay MTU on the vxlan too; the test holds the lab to it.
		{labNode, "ip", "link", "add", "dev", "vxlan1", "mtu", "1450", "netns", labOver, "type", "vxlan", "id", "42",
			"proxy", "l2miss", "l3miss", "nolearning", "dstport", "4789", "local", "192.0.2.2"},
		{labOver, "ip", "link", "set", "vxlan1", "master", "br0"},
		{labOver, "ip", "link", "set", "br0", "up"},
		{labOver, "ip", "link", "set", "vxlan1", "up"},
		// attach_ctn.sh pink 2
		{labNode, "ip", "link", "add", "dev", "veth1", "mtu", "1450", "netns", labOver, "type", "veth",
			"peer", "name", "eth0", "mtu", "1450", "netns", labCtr},
		{labCtr, "ip", "link", "set", "dev", "eth0", "address", "02:42:c6:33:64:02"},
		{labCtr, "ip", "addr", "add", "dev", "eth0", "198.51.100.2/24"},
		{labOver, "ip", "link", "set", "veth1", "master", "br0"},
		{labOver, "ip", "link", "set", "veth1", "up"},
		{labCtr, "ip", "link", "set", "eth0", "up"},
		{labCtr, "ip", "route", "add", "default", "via", "198.51.100.1"},
	}
	for _, c := range lab {
		nstest.Run(t, c[0], c[1], c[2:]...)
	}

	// overlayd's way.
	n := newUnderlayNode(t, "on")
	n.ok("create", "--local", "192.0.2.2", "--no-egress") // the lab's create_overlay.sh has no way out
	n.ok("attach", "pink", "--ip", "198.51.100.2/24")

	labRun := func(ns string) func(args ...string) string {
		return func(args ...string) string { return nstest.Run(t, ns, "ip", args...) }
	}
	ovdRun := func(ns string) func(args ...string) string {
		if ns == "" {
			return func(args ...string) string { return n.ip(args...) }
		}
		return func(args ...string) string { return n.mustIn(ns, append([]string{"ip"}, args...)...) }
	}
	labSide := map[string]func(...string) string{"node": labRun(labNode), "overlay": labRun(labOver), "container": labRun(labCtr)}
	ovdSide := map[string]func(...string) string{"node": ovdRun(""), "overlay": ovdRun("overns"), "container": ovdRun("pink")}
	// Where each namespace's veth peers live (for link_index).
	peerOf := map[string]string{"node": "node", "overlay": "container", "container": "overlay"}
	hostVeth := map[string]string{"lab": "veth1", "overlayd": "ve-pink"}

	for _, ns := range []string{"node", "overlay", "container"} {
		t.Run(ns, func(t *testing.T) {
			for _, q := range [][]string{{"-d", "-j", "link", "show"}, {"-j", "addr", "show"}, {"-j", "route", "show"}} {
				var norm [2]any
				for i, side := range []struct {
					name string
					run  map[string]func(...string) string
				}{{"lab", labSide}, {"overlayd", ovdSide}} {
					self := indexNames(t, side.run[ns]("-j", "link", "show"))
					peer := indexNames(t, side.run[peerOf[ns]]("-j", "link", "show"))
					out := side.run[ns](q...)
					var v any
					if err := json.Unmarshal([]byte(out), &v); err != nil {
						t.Fatalf("%s: ip %s: %v\n%s", side.name, strings.Join(q, " "), err, out)
					}
					norm[i] = normalizeIP(v, self, peer, hostVeth[side.name])
				}
				if diffs := diffJSON("", norm[0], norm[1]); len(diffs) > 0 {
					t.Errorf("ip %s in the %s netns differs (lab vs overlayd):\n  %s", strings.Join(q, " "), ns, strings.Join(diffs, "\n  "))
				}
				if q[2] == "link" && ns == "overlay" {
					checkLabFacts(t, norm[1])
				}
			}
		})
	}
}

// checkLabFacts checks, on overlayd's normalised overlay namespace, the
// settings the issue names, so that the comparison cannot pass on two
// equally wrong sides.
func checkLabFacts(t *testing.T, v any) {
	t.Helper()
	links := map[string]map[string]any{}
	for _, l := range v.([]any) {
		m := l.(map[string]any)
		links[m["ifname"].(string)] = m
	}
	get := func(name string, path ...string) any {
		var cur any = links[name]
		for _, p := range path {
			m, ok := cur.(map[string]any)
			if !ok {
				return nil
			}
			cur = m[p]
		}
		return cur
	}
	for _, c := range []struct {
		name string
		path []string
		want any
	}{
		{"br0", []string{"linkinfo", "info_kind"}, "bridge"},
		{"br0", []string{"mtu"}, 1450.0},
		{"vxlan1", []string{"linkinfo", "info_kind"}, "vxlan"},
		{"vxlan1", []string{"linkinfo", "info_data", "id"}, 42.0},
		{"vxlan1", []string{"linkinfo", "info_data", "port"}, 4789.0},
		{"vxlan1", []string{"linkinfo", "info_data", "proxy"}, true},
		{"vxlan1", []string{"linkinfo", "info_data", "l2miss"}, true},
		{"vxlan1", []string{"linkinfo", "info_data", "l3miss"}, true},
		{"vxlan1", []string{"linkinfo", "info_data", "learning"}, false},
		{"vxlan1", []string{"linkinfo", "info_data", "local"}, "192.0.2.2"},
		{"vxlan1", []string{"mtu"}, 1450.0},
		{"vxlan1", []string{"master"}, "br0"},
		{"HOSTVETH", []string{"master"}, "br0"},
		{"HOSTVETH", []string{"mtu"}, 1450.0},
		{"HOSTVETH", []string{"link_index"}, "peer:eth0"},
	} {
		if got := get(c.name, c.path...); got != c.want {
			t.Errorf("%s %s = %v, want %v", c.name, strings.Join(c.path, "."), got, c.want)
		}
	}
}

// indexNames maps ifindex to name from `ip -j link show`.
func indexNames(t *testing.T, out string) map[float64]string {
	t.Helper()
	var links []struct {
		Index  float64 `json:"ifindex"`
		IfName string  `json:"ifname"`
	}
	if err := json.Unmarshal([]byte(out), &links); err != nil {
		t.Fatalf("ip -j link: %v\n%s", err, out)
	}
	m := map[float64]string{}
	for _, l := range links {
		m[l.Index] = l.IfName
	}
	return m
}

// fixedMACs are the link names whose MAC is set, not random.
var fixedMACs = map[string]bool{"lo": true, "eth0": true}

// normalizeIP rewrites ip's JSON for comparison (see TestMatchesIproute2):
// links become maps keyed by what they are, ifindexes become names.
func normalizeIP(v any, self, peer map[float64]string, hostVeth string) any {
	rename := func(s string) string {
		if s == hostVeth {
			return "HOSTVETH"
		}
		return s
	}
	list, ok := v.([]any)
	if !ok {
		return v
	}
	for _, e := range list {
		m, ok := e.(map[string]any)
		if !ok {
			continue
		}
		for _, k := range []string{"ifname", "dev", "master"} {
			if s, ok := m[k].(string); ok {
				m[k] = rename(s)
			}
		}
		if idx, ok := m["link_index"].(float64); ok {
			switch {
			case idx == m["ifindex"]:
				m["link_index"] = "self"
			case m["link_netnsid"] != nil:
				m["link_index"] = "peer:" + rename(peer[idx])
			default:
				m["link_index"] = "link:" + rename(self[idx])
			}
		}
		delete(m, "ifindex")
		if name, _ := m["ifname"].(string); !fixedMACs[name] && m["address"] != nil {
			m["address"] = "<random>"
		}
		if li, ok := m["linkinfo"].(map[string]any); ok {
			for _, k := range []string{"info_data", "info_slave_data"} {
				if d, ok := li[k].(map[string]any); ok {
					for key := range d {
						if key == "bridge_id" || key == "root_id" || strings.HasSuffix(key, "_timer") {
							delete(d, key)
						}
					}
				}
			}
		}
		if ai, ok := m["addr_info"].([]any); ok {
			kept := []any{}
			for _, a := range ai {
				if am, ok := a.(map[string]any); ok && am["family"] == "inet6" && am["scope"] == "link" {
					continue
				}
				kept = append(kept, a)
			}
			m["addr_info"] = kept
		}
	}
	sort.SliceStable(list, func(i, j int) bool { return fmt.Sprint(key(list[i])) < fmt.Sprint(key(list[j])) })
	return list
}

// key orders links by name and routes by destination and device.
func key(e any) string {
	m, _ := e.(map[string]any)
	return fmt.Sprint(m["ifname"], m["dst"], m["dev"])
}

// diffJSON lists the paths where a and b differ.
func diffJSON(path string, a, b any) []string {
	switch av := a.(type) {
	case map[string]any:
		bv, ok := b.(map[string]any)
		if !ok {
			return []string{fmt.Sprintf("%s: %v vs %v", path, a, b)}
		}
		keys := map[string]bool{}
		for k := range av {
			keys[k] = true
		}
		for k := range bv {
			keys[k] = true
		}
		var sorted []string
		for k := range keys {
			sorted = append(sorted, k)
		}
		sort.Strings(sorted)
		var out []string
		for _, k := range sorted {
			p := path + "." + k
			if n, ok := av["ifname"].(string); ok && path != "" {
				p = path + "(" + n + ")." + k
			}
			out = append(out, diffJSON(p, av[k], bv[k])...)
		}
		return out
	case []any:
		bv, ok := b.([]any)
		if !ok || len(av) != len(bv) {
			return []string{fmt.Sprintf("%s: %v vs %v", path, toJSON(a), toJSON(b))}
		}
		var out []string
		for i := range av {
			out = append(out, diffJSON(fmt.Sprintf("%s[%d]", path, i), av[i], bv[i])...)
		}
		return out
	default:
		if !reflect.DeepEqual(a, b) {
			return []string{fmt.Sprintf("%s: %v vs %v", path, toJSON(a), toJSON(b))}
		}
		return nil
	}
}

func toJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
