package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/overlaynet/overlaynet/ethaddr"
	"github.com/overlaynet/overlaynet/rtnl"
)

func init() {
	register(&command{
		name:     "watch",
		summary:  "print the kernel's L2/L3 misses and app_solicit requests as they arrive",
		synopsis: watchSynopsis,
		run:      runWatch,
	})
}

const watchSynopsis = "watch [--netns NAME] [--dev DEV] [--json] [--neigh] [--no-app-solicit] [--rcvbuf BYTES]"

const watchHelp = `
Prints each neighbour notification of a network namespace as it arrives,
until SIGINT or SIGTERM: L3 misses (who has IP?), L2 misses (where is MAC?)
and app_solicit requests, with the device, address, MAC and NUD state; with
--neigh also the neighbour and FDB entries being added and deleted. It reads
only: nothing is answered or programmed (that is what run does). When
notifications were lost (receive buffer overrun) it says so. On exit it
prints the counts of each kind to standard error.`

// watchOptions are the flags of overlayd watch.
type watchOptions struct {
	netns   string
	dev     string
	json    bool
	neigh   bool
	noApp   bool
	rcvbuf  int
	devIdx  int32
	monitor *rtnl.Monitor
}

func runWatch(ctx context.Context, e *env, fs *flag.FlagSet, args []string) error {
	var o watchOptions
	fs.StringVar(&o.netns, "netns", "", "named network namespace to watch, in --netns-dir (default: the current one)")
	fs.StringVar(&o.dev, "dev", "", "only events on this device (e.g. vxlan1)")
	fs.BoolVar(&o.json, "json", false, "print one JSON object per line")
	fs.BoolVar(&o.neigh, "neigh", false, "also print neighbour and FDB entries being added and deleted")
	fs.BoolVar(&o.noApp, "no-app-solicit", false, "do not print app_solicit requests")
	fs.IntVar(&o.rcvbuf, "rcvbuf", rtnl.DefaultMonitorReceiveBuffer, "netlink receive buffer in bytes (forced; the kernel doubles it)")
	setUsage(fs, watchSynopsis, watchHelp)
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return fmt.Errorf("%w: unexpected arguments %q", errUsage, pos)
	}
	if o.rcvbuf < 0 {
		return fmt.Errorf("%w: --rcvbuf %d is negative", errUsage, o.rcvbuf)
	}

	var ns *rtnl.NetNS
	where := "the current netns"
	if o.netns != "" {
		if ns, err = rtnl.OpenNamedNetNS(e.global.netnsDir, o.netns); err != nil {
			return err
		}
		defer ns.Close()
		where = "netns " + o.netns
	}
	c, err := rtnl.Dial(&rtnl.Config{NetNS: ns, ReceiveBuffer: -1})
	if err != nil {
		return err
	}
	defer c.Close()
	names := newLinkNames(c)
	if o.dev != "" {
		l, err := c.LinkByName(o.dev)
		if err != nil {
			return fmt.Errorf("device %s in %s: %w", o.dev, where, err)
		}
		o.devIdx = l.Index
		names.byIndex[l.Index] = linkName{l.Name, names.now()}
	}
	m, err := rtnl.DialMonitor(rtnl.MonitorConfig{NetNS: ns, ReceiveBuffer: o.rcvbuf})
	if err != nil {
		return err
	}
	defer m.Close()
	o.monitor = m
	fmt.Fprintf(e.stderr, "overlayd watch: listening for misses in %s (receive buffer %d bytes)\n", where, m.ReceiveBuffer())

	err = m.Run(ctx, func(ev *rtnl.Event) error { return o.print(e.stdout, e.stderr, names, ev) })
	if errors.Is(err, context.Canceled) {
		err = nil // SIGINT or SIGTERM: a clean exit
	}
	st := m.Stats()
	fmt.Fprintf(e.stderr, "overlayd watch: %d l3miss, %d l2miss, %d app_solicit, %d overruns, %d decode errors\n",
		st.L3Misses, st.L2Misses, st.AppSolicits, st.Overruns, st.DecodeErrors)
	return err
}

// watchRecord is the --json form of an event.
type watchRecord struct {
	Time     string  `json:"time"`
	Kind     string  `json:"kind"` // l3miss, l2miss, app_solicit, neigh_add, neigh_delete, overrun
	Dev      string  `json:"dev,omitempty"`
	Ifindex  int32   `json:"ifindex,omitempty"`
	IP       string  `json:"ip,omitempty"`
	MAC      string  `json:"mac,omitempty"`
	State    string  `json:"state,omitempty"`
	Probes   *uint32 `json:"probes,omitempty"`
	VNI      *uint32 `json:"vni,omitempty"`
	Family   string  `json:"family,omitempty"`
	Overruns uint64  `json:"overruns,omitempty"`
}

func (o *watchOptions) print(stdout, stderr io.Writer, names *linkNames, ev *rtnl.Event) error {
	now := time.Now().Format(time.RFC3339Nano)
	var ifindex int32
	switch ev.Kind {
	case rtnl.EventMiss:
		ifindex = ev.Miss.Ifindex
		if o.noApp && ev.Miss.Kind == rtnl.MissAppSolicit {
			return nil
		}
	case rtnl.EventNeighAdd, rtnl.EventNeighDelete:
		if !o.neigh {
			return nil
		}
		ifindex = ev.Neigh.Ifindex
	case rtnl.EventOverrun:
		n := o.monitor.Stats().Overruns
		if o.json {
			return writeJSON(stdout, watchRecord{Time: now, Kind: ev.Kind.String(), Overruns: n})
		}
		fmt.Fprintf(stderr, "overlayd watch: receive buffer overrun (%d so far): notifications were lost\n", n)
		return nil
	}
	if o.devIdx != 0 && ifindex != o.devIdx {
		return nil
	}
	dev := names.name(ifindex)
	if ev.Kind == rtnl.EventMiss {
		m := &ev.Miss
		if o.json {
			r := watchRecord{Time: now, Kind: m.Kind.String(), Dev: dev, Ifindex: ifindex, State: m.State.String()}
			if m.IP.IsValid() {
				r.IP = m.IP.String()
			}
			if m.HasMAC {
				r.MAC = ethaddr.MAC(m.MAC).String()
			}
			if m.Kind == rtnl.MissAppSolicit {
				r.Probes = &m.Probes
			}
			if m.HasVNI && m.VNI < 1<<24 && m.Kind == rtnl.MissL2 && m.VNI != 0 {
				r.VNI = &m.VNI
			}
			return writeJSON(stdout, r)
		}
		var err error
		switch m.Kind {
		case rtnl.MissL3:
			_, err = fmt.Fprintf(stdout, "L3 miss on %s: who has %s?\n", dev, m.IP)
		case rtnl.MissL2:
			_, err = fmt.Fprintf(stdout, "L2 miss on %s: who has %s?\n", dev, ethaddr.MAC(m.MAC))
		case rtnl.MissAppSolicit:
			_, err = fmt.Fprintf(stdout, "app_solicit on %s: who has %s? (probes %d)\n", dev, m.IP, m.Probes)
		}
		return err
	}
	n := &ev.Neigh
	verb := "add"
	if ev.Kind == rtnl.EventNeighDelete {
		verb = "delete"
	}
	if o.json {
		r := watchRecord{Time: now, Kind: ev.Kind.String(), Dev: dev, Ifindex: ifindex, State: n.State.String(), Family: familyName(n.Family)}
		if n.Dst.IsValid() {
			r.IP = n.Dst.String()
		}
		if len(n.LLAddr) > 0 {
			r.MAC = n.LLAddr.String()
		}
		if n.Present.Has(rtnl.NeighAttrVNI) {
			r.VNI = &n.VNI
		}
		return writeJSON(stdout, r)
	}
	_, err := fmt.Fprintf(stdout, "neigh %s %s on %s: %s\n", verb, familyName(n.Family), dev, n)
	return err
}

func writeJSON(w io.Writer, r watchRecord) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

func familyName(f uint8) string {
	switch f {
	case 2:
		return "inet"
	case 10:
		return "inet6"
	case 7:
		return "bridge"
	}
	return strconv.Itoa(int(f))
}

// linkNamesTTL is how long watch trusts a cached device name: a device
// renamed, or deleted and its index reused, shows under its new name within
// this long.
const linkNamesTTL = 5 * time.Second

// linkNames caches ifindex-to-name lookups in the watched namespace for
// linkNamesTTL.
type linkNames struct {
	c       *rtnl.Conn
	now     func() time.Time
	byIndex map[int32]linkName
}

type linkName struct {
	name string
	at   time.Time
}

func newLinkNames(c *rtnl.Conn) *linkNames {
	return &linkNames{c: c, now: time.Now, byIndex: map[int32]linkName{}}
}

func (l *linkNames) name(index int32) string {
	now := l.now()
	if n, ok := l.byIndex[index]; ok && now.Sub(n.at) < linkNamesTTL {
		return n.name
	}
	n := "if" + strconv.Itoa(int(index))
	if m, err := l.c.LinkGet(index); err == nil {
		n = m.Name
	}
	l.byIndex[index] = linkName{n, now}
	return n
}
