package egress

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"

	"github.com/overlaynet/overlaynet/internal/steps"
	"github.com/overlaynet/overlaynet/rtnl"
	"golang.org/x/sys/unix"
)

// forwardingPlace is a device whose forwarding the path needs, the
// connection to its namespace and the namespace (nil: the host's, the
// calling thread's), for one family.
type forwardingPlace struct {
	c     *rtnl.Conn
	ns    *rtnl.NetNS
	netns string
	dev   string
	ipv6  bool
}

// setting names the place's setting, as ForwardingStatus does.
func (f forwardingPlace) setting() string {
	if f.ipv6 {
		return "ipv6 " + rtnl.DevConf6ForceForwarding.String()
	}
	return rtnl.DevConfForwarding.String()
}

// forwardingPlaces lists where the path needs forwarding: packets from
// containers arrive on the bridge (overlay) and HostIf (host); replies and
// the node's own packets arrive on OverlayIf (overlay) and the egress
// device (host). IPv6 needs the same, with its own egress device, where
// the path carries IPv6. Setup turns it on there and Status reads it back.
func forwardingPlaces(p Params, st *State) []forwardingPlace {
	out := []forwardingPlace{
		{p.Overlay, p.OverlayNS, p.OverlayNetNS, p.Bridge, false},
		{p.Overlay, p.OverlayNS, p.OverlayNetNS, st.OverlayIf, false},
		{p.Host, nil, HostNetNS, st.HostIf, false},
		{p.Host, nil, HostNetNS, st.Dev, false},
	}
	if st.IPv6 != nil {
		out = append(out,
			forwardingPlace{p.Overlay, p.OverlayNS, p.OverlayNetNS, p.Bridge, true},
			forwardingPlace{p.Overlay, p.OverlayNS, p.OverlayNetNS, st.OverlayIf, true},
			forwardingPlace{p.Host, nil, HostNetNS, st.HostIf, true},
			forwardingPlace{p.Host, nil, HostNetNS, st.IPv6.Dev, true})
	}
	return out
}

// get reads the place's forwarding setting of device index over netlink;
// ok is false when the kernel reports none.
func (f forwardingPlace) get(index int32) (v uint32, ok bool, err error) {
	if !f.ipv6 {
		conf, err := f.c.LinkInetConf(index)
		if err != nil {
			return 0, false, err
		}
		v, ok = conf.Get(rtnl.DevConfForwarding)
		return v, ok, nil
	}
	conf, err := f.c.LinkInet6Conf(index)
	if err != nil {
		return 0, false, err
	}
	v, ok = conf.Get(rtnl.DevConf6ForceForwarding)
	return v, ok, nil
}

// set changes the place's forwarding setting of device index to v: over
// netlink for IPv4; IPv6's in /proc/sys of the place's namespace, the
// kernel taking no IPv6 device setting over netlink (rtnl's
// DecodeInet6DevConf says so).
func (f forwardingPlace) set(index int32, v uint32) error {
	if !f.ipv6 {
		return f.c.LinkSetInetConf(index, rtnl.DevConfValue{Conf: rtnl.DevConfForwarding, Value: v})
	}
	write := func() error { return writeConf6(f.dev, rtnl.DevConf6ForceForwarding, v) }
	if f.ns == nil {
		return write()
	}
	return f.ns.Do(write)
}

// writeConf6 writes IPv6 setting d of device dev in the calling thread's
// namespace (/proc/sys/net/ipv6/conf/DEV/NAME). It refuses the "all" and
// "default" entries, whose writes change other devices.
func writeConf6(dev string, d rtnl.DevConf6, v uint32) error {
	if dev == "" || dev == "all" || dev == "default" || dev == "." || dev == ".." || filepath.Base(dev) != dev {
		return fmt.Errorf("egress: no IPv6 setting of device %q", dev)
	}
	path := filepath.Join("/proc/sys/net/ipv6/conf", dev, d.String())
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err == nil {
		_, err = f.WriteString(strconv.FormatUint(uint64(v), 10) + "\n")
		err = errors.Join(err, f.Close())
	}
	if err != nil {
		return fmt.Errorf("egress: set %s of %s: %w", d, dev, err)
	}
	return nil
}

// forwarding turns forwarding on where the path needs it
// (forwardingPlaces), one step per device and family, recording the values
// it changed.
func (s *setup) forwarding(r *steps.Runner) error {
	for _, f := range forwardingPlaces(s.p, s.st) {
		l, err := f.c.LinkByName(f.dev)
		if err != nil {
			return fmt.Errorf("egress: forwarding on %s: %w", f.dev, err)
		}
		was, ok, err := f.get(l.Index)
		switch {
		case err != nil:
			return fmt.Errorf("egress: forwarding on %s: %w", f.dev, err)
		case !ok:
			return fmt.Errorf("egress: %s reports no %s setting", f.dev, f.setting())
		case was == 1:
			continue
		}
		step := stepForwarding + " " + f.dev
		if f.ipv6 {
			step = stepForwarding6 + " " + f.dev
		}
		err = r.Do(step, func() error {
			if err := f.set(l.Index, 1); err != nil {
				return fmt.Errorf("egress: turn %s on for %s: %w", f.setting(), f.dev, err)
			}
			return nil
		}, func() error {
			if err := f.set(l.Index, was); !errors.Is(err, unix.ENODEV) && !errors.Is(err, os.ErrNotExist) {
				return err
			}
			return nil
		})
		if err != nil {
			return err
		}
		rec := ForwardingChange{NetNS: f.netns, Dev: f.dev, Was: was, IPv6: f.ipv6}
		if !slices.ContainsFunc(s.st.Forwarding, func(x ForwardingChange) bool { return x.NetNS == rec.NetNS && x.Dev == rec.Dev && x.IPv6 == rec.IPv6 }) {
			s.st.Forwarding = append(s.st.Forwarding, rec)
		}
		s.log.Info("turned forwarding on", "netns", f.netns, "dev", f.dev, "setting", f.setting(), "was", was)
	}
	return nil
}
