package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/cni/pkg/version"
	"github.com/overlaynet/overlaynet/overlay"
	"github.com/overlaynet/overlaynet/overlay/ipam"
	"github.com/overlaynet/overlaynet/overlay/registry"
	"github.com/overlaynet/overlaynet/overlay/registry/stores"
)

// Defaults of the plugin's keys: overlayd's.
const (
	defaultStateDir = overlay.DefaultStateDir
	defaultStore    = "dir:/var/lib/overlayd/store"
	defaultNetNSDir = "/var/run/netns"
)

// netConf is the plugin's network configuration.
type netConf struct {
	types.NetConf
	StateDir  string `json:"stateDir,omitempty"`
	Store     string `json:"store,omitempty"`
	NetNSDir  string `json:"netnsDir,omitempty"`
	BlockBits int    `json:"blockBits,omitempty"`
	LogLevel  string `json:"logLevel,omitempty"`
	// Family, "ipv4" or "ipv6", gives containers an address of that
	// family only on a dual-stack overlay; empty: one of each family the
	// overlay has.
	Family string `json:"family,omitempty"`

	RuntimeConfig struct {
		IPs []string `json:"ips,omitempty"`
	} `json:"runtimeConfig,omitzero"`
	Args struct {
		CNI struct {
			IPs []string `json:"ips,omitempty"`
		} `json:"cni,omitzero"`
	} `json:"args,omitzero"`
}

// ipArgs are the CNI_ARGS the plugin reads.
type ipArgs struct {
	types.CommonArgs
	IP net.IP `json:"ip,omitempty"`
}

// loadConf decodes and checks the config on stdin, with defaults filled in.
func loadConf(args *skel.CmdArgs) (*netConf, error) {
	c := &netConf{}
	if err := json.Unmarshal(args.StdinData, c); err != nil {
		return nil, types.NewError(types.ErrDecodingFailure, "overlaynet: config is not valid JSON: "+err.Error(), "")
	}
	if c.RawPrevResult != nil {
		if err := version.ParsePrevResult(&c.NetConf); err != nil {
			return nil, types.NewError(types.ErrDecodingFailure, "overlaynet: prevResult: "+err.Error(), "")
		}
	}
	if c.StateDir == "" {
		c.StateDir = defaultStateDir
	}
	if c.Store == "" {
		c.Store = defaultStore
	}
	if c.NetNSDir == "" {
		c.NetNSDir = defaultNetNSDir
	}
	if c.LogLevel == "" {
		c.LogLevel = "warn"
	}
	var lvl slog.Level
	switch {
	case c.BlockBits < 0 || c.BlockBits > 32:
		return nil, newError(types.ErrInvalidNetworkConfig, "blockBits %d: want 1..32 (0: %d)", c.BlockBits, ipam.DefaultBlockBits)
	case lvl.UnmarshalText([]byte(c.LogLevel)) != nil:
		return nil, newError(types.ErrInvalidNetworkConfig, "logLevel %q: want debug, info, warn or error", c.LogLevel)
	case c.Family != "" && c.Family != "ipv4" && c.Family != "ipv6":
		return nil, newError(types.ErrInvalidNetworkConfig, "family %q: want ipv4 or ipv6 (or none: every family of the overlay)", c.Family)
	}
	return c, nil
}

// only is the family the config gives containers alone, 0 for every family
// of the overlay.
func (c *netConf) only() overlay.Family {
	switch c.Family {
	case "ipv4":
		return overlay.IPv4
	case "ipv6":
		return overlay.IPv6
	}
	return 0
}

// wanted is the addresses asked for: at most one per family.
type wanted struct{ v4, v6 netip.Addr }

// of returns the address of family f.
func (w wanted) of(f overlay.Family) netip.Addr {
	if f == overlay.IPv6 {
		return w.v6
	}
	return w.v4
}

// logger logs to stderr at the config's level.
func (c *netConf) logger(w io.Writer) *slog.Logger {
	var lvl slog.Level
	lvl.UnmarshalText([]byte(c.LogLevel))
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: lvl})).With("plugin", "overlaynet", "network", c.Name)
}

// wantedIPs are the addresses asked for, if any: CNI_ARGS IP=, args.cni.ips
// or runtimeConfig.ips (the "ips" capability), at most one per family (an
// IPv4 one, and an IPv6 one for a dual-stack overlay). Two different
// addresses of one family, and an IPv6 zone, are refused.
func (c *netConf) wantedIPs(cniArgs string) (wanted, error) {
	var asked []string
	if cniArgs != "" {
		var a ipArgs
		if err := types.LoadArgs(cniArgs, &a); err != nil {
			return wanted{}, newError(types.ErrInvalidEnvironmentVariables, "CNI_ARGS %q: %v", cniArgs, err)
		}
		if a.IP != nil {
			asked = append(asked, a.IP.String())
		}
	}
	asked = append(asked, c.Args.CNI.IPs...)
	asked = append(asked, c.RuntimeConfig.IPs...)
	var w wanted
	for _, s := range asked {
		var a netip.Addr
		if p, err := netip.ParsePrefix(s); err == nil {
			a = p.Addr()
		} else if a, err = netip.ParseAddr(s); err != nil {
			return wanted{}, newError(types.ErrInvalidNetworkConfig, "requested IP %q is not an address", s)
		}
		if a.Zone() != "" {
			return wanted{}, newError(errAddressOutside, "requested IP %s has a zone: the overlay is one link, give the address alone", a)
		}
		a = a.Unmap()
		have := &w.v4
		if a.Is6() {
			have = &w.v6
		}
		if have.IsValid() && *have != a {
			return wanted{}, newError(types.ErrInvalidNetworkConfig, "two addresses requested of one family (%s and %s); the overlay gives one per family", *have, a)
		}
		*have = a
	}
	return w, nil
}

// endpointName is the endpoint of attachment (network, container, ifname)
// in overlayd's state: "cni-" and 8 hex digits of its hash, so that the host
// veth is "ve-cni-XXXXXXXX" (15 bytes).
func endpointName(network, containerID, ifname string) string {
	sum := sha256.Sum256([]byte(network + "\x00" + containerID + "\x00" + ifname))
	return cniPrefix + hex.EncodeToString(sum[:4])
}

// cniPrefix starts the name of every endpoint the plugin attaches.
const cniPrefix = "cni-"

// node opens the overlay node and registry the config names: the store
// without a lease (the plugin's records persist with no daemon, as
// overlayd attach's do), for the overlay the state directory records.
// done closes the registry.
func (c *netConf) node(ctx context.Context, log *slog.Logger) (n *overlay.Node, reg registry.Registry, done func(), err error) {
	o := overlay.StoreOptions(c.StateDir, registry.Options{Schemes: stores.Schemes(), Logger: log})
	reg, err = registry.Open(ctx, c.Store, o)
	if err != nil {
		code := errRegistry
		switch {
		case errors.Is(err, registry.ErrUnknownScheme), errors.Is(err, registry.ErrBadURL):
			code = types.ErrInvalidNetworkConfig
		case errors.Is(err, registry.ErrUnavailable):
			code = types.ErrTryAgainLater
		}
		return nil, nil, nil, newError(code, "store %q: %v", registry.RedactURL(c.Store), err)
	}
	n = overlay.NewNode(overlay.NodeOptions{NetNSDir: c.NetNSDir, StateDir: c.StateDir, Registry: reg,
		Logger: log, BlockBits: c.BlockBits})
	return n, reg, func() { reg.Close() }, nil
}
