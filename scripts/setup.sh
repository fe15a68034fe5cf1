#!/usr/bin/env bash
# Installs what overlaynet's build, tests and demo need on a fresh Debian machine (run as root).
# Idempotent: packages already present are left alone.
set -euo pipefail

need=()
command -v ip >/dev/null      || need+=(iproute2)      # tests read state back with ip/bridge
command -v bridge >/dev/null  || need+=(iproute2)
command -v ping >/dev/null    || need+=(iputils-ping)  # real ICMP echo across the overlay
command -v nsenter >/dev/null || need+=(util-linux)    # run a command in a node's netns only
command -v make >/dev/null    || need+=(make)
command -v git >/dev/null     || need+=(git)
command -v nft >/dev/null     || need+=(nftables)      # nft tests read rulesets back with `nft -j list ruleset`
command -v iptables-nft >/dev/null || need+=(iptables) # egress tests set FORWARD policy DROP as Docker does
command -v etcd >/dev/null    || need+=(etcd-server)   # etcd registry tests start their own etcd on free ports
command -v tcpdump >/dev/null || need+=(tcpdump)       # encryption tests capture the underlay: WireGuard only
command -v podman >/dev/null  || need+=(podman)        # the CNI plugin's end-to-end test under a real runtime
command -v runc >/dev/null    || need+=(runc)          # podman's runtime here (crun refuses mixed cgroup layouts)
[ -x /usr/lib/cni/tuning ]    || need+=(containernetworking-plugins) # tuning (chaining) and host-local (delegated IPAM)
[ -x /bin/busybox ]           || need+=(busybox-static) # the podman test's container root filesystem
# The benchmarks' Python peer (the old lab's arpd) runs on Debian's interpreter and pyroute2.
/usr/bin/python3 -c 'import pyroute2' 2>/dev/null || need+=(python3-pyroute2)
command -v qemu-s390x-static >/dev/null || need+=(qemu-user-static) # make test-bigendian runs rtnl's tests on s390x
command -v gcc >/dev/null     || need+=(gcc libc6-dev)  # make test-race: the race detector needs cgo; make bench: the C floor
command -v containerd >/dev/null || need+=(containerd)  # CRI runtime of the Kubernetes tests' simulated nodes
command -v openssl >/dev/null || need+=(openssl)        # the Kubernetes tests' service-account and serving keys
command -v wireguard-go >/dev/null || need+=(wireguard-go) # userspace WireGuard (this kernel may lack the module)
command -v wg >/dev/null      || need+=(wireguard-tools) # reads WireGuard devices back in tests
command -v tcpdump >/dev/null || need+=(tcpdump)        # underlay captures in the encryption tests
if [ ${#need[@]} -gt 0 ]; then
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${need[@]}" ca-certificates >/dev/null
fi

# Go: this project needs go >= 1.26 (go.mod). Machines of our kind have it in /usr/local/go.
if ! command -v go >/dev/null && [ -x /usr/local/go/bin/go ]; then
	echo "setup: Go is in /usr/local/go/bin; add it to PATH (export PATH=/usr/local/go/bin:\$PATH)" >&2
fi
if ! command -v go >/dev/null && ! [ -x /usr/local/go/bin/go ]; then
	echo "setup: no Go toolchain found; install Go >= 1.26 (https://go.dev/doc/install)" >&2
	exit 1
fi
# cnitool, the CNI project's client, drives the plugin in tests.
gobin=$(PATH=/usr/local/go/bin:$PATH go env GOPATH)/bin
if ! [ -x "$gobin/cnitool" ]; then
	PATH=/usr/local/go/bin:$PATH go install github.com/containernetworking/cni/cnitool@v1.3.1
fi
# The Kubernetes tests' components (internal/kubetest): kube-apiserver, kube-controller-manager,
# kube-scheduler, kubelet, kube-proxy, kubectl and crictl, built from the Go module proxy once per
# machine into /var/cache/overlaynet/kube (cold: about 25 minutes on 2 cores; then nothing).
"$(dirname "$0")/kube-build.sh"
echo "setup: ok"
