package kubetest

import (
	"testing"
)

// StandardPlugins is where Debian's containernetworking-plugins are; every
// node's /opt/cni/bin gets their loopback (containerd's CRI sets up each
// pod's lo with it), as a node's CNI package installs it.
const StandardPlugins = "/usr/lib/cni"

// bridgePlugins are the plugins Options.BridgeCNI installs.
func bridgePlugins() []string { return []string{"bridge", "host-local"} }

// bridgeTemplate is containerd's CRI conf_template for Options.BridgeCNI:
// containerd writes it, with the podCIDR kubelet passes, to the node's
// /etc/cni/net.d as soon as the node has one.
const bridgeTemplate = `{
  "cniVersion": "1.0.0",
  "name": "kubetest-bridge",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "cni0",
      "isGateway": true,
      "hairpinMode": true,
      "ipam": {"type": "host-local", "ranges": [[{"subnet": "{{.PodCIDR}}"}]], "routes": [{"dst": "0.0.0.0/0"}]}
    }
  ]
}
`

// routePodCIDRs routes every node's podCIDR from every other node through
// the node's underlay address (host-gw: a pod network across nodes with
// the bridge plugin); it replaces routes already there.
func (c *Cluster) routePodCIDRs(t testing.TB) {
	t.Helper()
	objs, err := c.NodeObjects()
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range c.Nodes {
		for _, peer := range c.Nodes {
			if peer != n {
				n.Run(t, "ip", "route", "replace", objs[peer.Name].Spec.PodCIDR, "via", peer.IP.String())
			}
		}
	}
}
