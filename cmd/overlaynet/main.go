// Command overlaynet is the CNI plugin of overlaynet: container runtimes
// (containerd, CRI-O, podman, Kubernetes) call it to attach the network
// namespaces they create to this node's overlay, exactly as `overlayd
// attach` does (veth, MAC, MTU, address, default route, registry records,
// announcement), with addresses allocated from the node's blocks in the
// registry, or by a delegated IPAM plugin named in the config's "ipam".
//
// It implements ADD, DEL, CHECK, STATUS, GC and VERSION for configs of
// cniVersion 0.3.0, 0.3.1, 0.4.0, 1.0.0 and 1.1.0 (each command where the
// version has it), and must run in the node's host network namespace, where
// `overlayd create` ran.
//
// # Configuration
//
//	{"cniVersion": "1.0.0", "name": "overlay", "type": "overlaynet"}
//
// is enough on a node set up with `overlayd create`; the optional keys are
// those of overlayd's global flags, with the same defaults: "stateDir"
// (/var/lib/overlayd), "store" (dir:/var/lib/overlayd/store), "netnsDir"
// (/var/run/netns), and "blockBits" (26, the size of the address blocks a
// node claims; the same on every node), "logLevel" (warn; logs go to
// stderr). An address may be asked for with CNI_ARGS "IP=198.51.100.7",
// "args": {"cni": {"ips": [...]}} or the "ips" capability
// (runtimeConfig.ips); it is honoured if free. An "ipam" section (e.g.
// {"type": "host-local", ...}) makes the plugin call that IPAM plugin for
// the address instead of allocating it.
//
// # Errors
//
// Errors are the spec's JSON error object on stdout, with the spec's codes
// where one fits (1 incompatible version, 3 the container's netns does not
// exist or is not a network namespace, 4 missing or bad environment
// variable, 6 undecodable config, 7 invalid config, 8 CNI_NETNS is the
// plugin's own namespace, 11 the registry is unavailable: try again later,
// 50 STATUS: not ready, 999 internal), and these plugin-specific ones:
//
//	100  no overlay on this node (run `overlayd create`)
//	101  the address is taken (by another container, here or on another node)
//	102  the address is outside the overlay subnet, or reserved
//	     (network, broadcast, gateway)
//	103  no free address (every block claimed and this node's full)
//	104  the interface CNI_IFNAME exists in the container, or the attachment
//	     exists (ADD twice without DEL)
//	105  the registry failed (other than unavailable)
//	106  the delegated IPAM plugin failed or returned no usable address
//	107  CHECK found differences (listed in details)
package main

import (
	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/version"
)

// about is printed by the plugin run without CNI_COMMAND.
const about = "overlaynet: CNI plugin attaching containers to this node's overlaynet VXLAN overlay"

// supported are the CNI versions of the configs the plugin accepts.
var supported = version.PluginSupports("0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0")

func main() {
	skel.PluginMainFuncs(skel.CNIFuncs{
		Add:    cmdAdd,
		Del:    cmdDel,
		Check:  cmdCheck,
		Status: cmdStatus,
		GC:     cmdGC,
	}, supported, about)
}
