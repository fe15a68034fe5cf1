package kubetest

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
)

// writeNodeConfigs writes node n's kubelet kubeconfig (system:node:NAME in
// group system:nodes, as the Node authorizer wants), its kubelet config and
// its kube-proxy config.
func (c *Cluster) writeNodeConfigs(n *Node) error {
	if err := c.certKubeconfig(filepath.Join(n.Dir, "kubelet.kubeconfig"), certSpec{cn: "system:node:" + n.Name, orgs: []string{"system:nodes"}}); err != nil {
		return err
	}
	b, _ := json.MarshalIndent(n.kubeletConfig(), "", "  ")
	if err := os.WriteFile(filepath.Join(n.Dir, "kubelet.json"), b, 0o644); err != nil {
		return err
	}
	b, _ = json.MarshalIndent(map[string]any{
		"apiVersion":         "kubeproxy.config.k8s.io/v1alpha1",
		"kind":               "KubeProxyConfiguration",
		"mode":               "nftables",
		"clientConnection":   map[string]any{"kubeconfig": filepath.Join(c.Dir, "kube-proxy.kubeconfig")},
		"hostnameOverride":   n.Name,
		"clusterCIDR":        ClusterCIDR,
		"oomScoreAdj":        0,
		"healthzBindAddress": "127.0.0.1:10256",
		"metricsBindAddress": "127.0.0.1:10249",
		// nf_conntrack_max and the hash size are host-wide: left alone.
		"conntrack": map[string]any{"maxPerCore": 0, "min": 0, "tcpEstablishedTimeout": "0s", "tcpCloseWaitTimeout": "0s"},
	}, "", "  ")
	return os.WriteFile(filepath.Join(n.Dir, "kube-proxy.json"), b, 0o644)
}

// containerdConfig is the node's containerd 1.6 config: its CRI plugin
// calls the CNI plugins of /opt/cni/bin named by /etc/cni/net.d (the
// node's own), runs the pod sandbox image the lab imports, and sets no
// OOM score below its own (root here lacks CAP_SYS_RESOURCE). Plugins
// that would write outside the node's paths (opt: /opt/containerd) or
// probe file systems it does not use are off.
func (n *Node) containerdConfig() string {
	tmpl := ""
	if n.c.opts.BridgeCNI {
		tmpl = fmt.Sprintf("    conf_template = %q\n", filepath.Join(n.c.Dir, "bridge.conflist.tmpl"))
	}
	return fmt.Sprintf(`version = 2
root = "/var/lib/containerd"
state = "/run/containerd"
disabled_plugins = ["io.containerd.internal.v1.opt", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs", "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]

[grpc]
  address = %q

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = %q
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/opt/cni/bin"
    conf_dir = "/etc/cni/net.d"
%s`, ContainerdSocket, PauseImage, tmpl)
}

// kubeletConfig is the node's KubeletConfiguration: cgroupfs under the
// node's cgroupRoot on cgroup v1, its containerd, client certificates of
// the cluster's CA and webhook authorization (the API server's kubelet
// client is system:masters), no swap or cgroup v1 refusal, no OOM score
// below its own, no image garbage collection (nothing can be pulled back),
// eviction only when the machine is really short.
func (n *Node) kubeletConfig() map[string]any {
	return map[string]any{
		"apiVersion":                  "kubelet.config.k8s.io/v1beta1",
		"kind":                        "KubeletConfiguration",
		"failSwapOn":                  false,
		"failCgroupV1":                false,
		"cgroupDriver":                "cgroupfs",
		"cgroupRoot":                  n.Cgroup,
		"containerRuntimeEndpoint":    "unix://" + ContainerdSocket,
		"volumePluginDir":             "/var/lib/kubelet/volume-plugins",
		"readOnlyPort":                0,
		"healthzBindAddress":          "127.0.0.1",
		"oomScoreAdj":                 0,
		"imageGCHighThresholdPercent": 100,
		"evictionHard": map[string]string{
			"memory.available": "100Mi", "nodefs.available": "1%", "imagefs.available": "1%", "nodefs.inodesFree": "1%",
		},
		"authentication": map[string]any{
			"anonymous": map[string]any{"enabled": false},
			"webhook":   map[string]any{"enabled": true},
			"x509":      map[string]any{"clientCAFile": n.c.CAFile},
		},
		"authorization": map[string]any{"mode": "Webhook"},
		"clusterDomain": "cluster.local",
	}
}
