#!/usr/bin/env bash
# Builds the real Kubernetes components the Kubernetes tests run (kube-apiserver,
# kube-controller-manager, kube-scheduler, kubelet, kube-proxy, kubectl) and crictl from the Go
# module proxy, once per machine, into a cache outside the repository:
#   ${OVERLAYNET_KUBE_CACHE:-/var/cache/overlaynet/kube}/KUBE_VERSION/bin
# Idempotent: a complete cache built by this recipe (bin/BUILD) is left alone. Nothing is
# downloaded but Go modules. The binaries report their release (kubectl version, the Node's
# kubeletVersion) as the release's own build does (-X .../version.gitVersion).
# The version is the one of the k8s.io modules in go.mod (client-go, api, apimachinery).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=/usr/local/go/bin:$PATH

ver=$(go list -m -f '{{.Version}}' k8s.io/client-go 2>/dev/null || true)
case "$ver" in
v0.*) kver="v1.${ver#v0.}" ;;
*) kver=v1.37.2 ;;
esac
crictl_ver=v1.37.0
cache=${OVERLAYNET_KUBE_CACHE:-/var/cache/overlaynet/kube}/$kver
bins=(kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl crictl)

# What the cache's binaries were built from; a different recipe rebuilds them (only the link
# step when the Go build cache is warm).
recipe="kubernetes $kver crictl $crictl_ver ldflags-version 1"
complete=1
for b in "${bins[@]}"; do [ -x "$cache/bin/$b" ] || complete=0; done
[ "$(cat "$cache/bin/BUILD" 2>/dev/null)" = "$recipe" ] || complete=0
if [ $complete = 1 ]; then
	echo "kube-build: $kver in $cache/bin"
	exit 0
fi

src=$cache/src
mkdir -p "$src" "$cache/bin"
if ! [ -f "$src/go.sum" ]; then
	gomod=$(go mod download -json "k8s.io/kubernetes@$kver" | sed -n 's/.*"GoMod": "\(.*\)",*/\1/p')
	staging=$(sed -n 's#^[[:space:]]*\(k8s.io/[a-z0-9-]*\) => ./staging/src/k8s.io/.*#\1#p' "$gomod")
	[ -n "$staging" ] || { echo "kube-build: no staging modules found in $gomod" >&2; exit 1; }
	{
		echo "module overlaynet.local/kubebuild"
		echo
		echo "go 1.26.0"
		echo
		echo "require ("
		echo "	k8s.io/kubernetes $kver"
		echo "	sigs.k8s.io/cri-tools $crictl_ver"
		echo ")"
		echo
		echo "replace ("
		for m in $staging; do echo "	$m => $m ${kver/v1./v0.}"; done
		echo ")"
	} >"$src/go.mod"
	cat >"$src/tools.go" <<-'EOF'
	//go:build tools

	package tools

	import (
		_ "k8s.io/kubernetes/cmd/kube-apiserver"
		_ "k8s.io/kubernetes/cmd/kube-controller-manager"
		_ "k8s.io/kubernetes/cmd/kube-proxy"
		_ "k8s.io/kubernetes/cmd/kube-scheduler"
		_ "k8s.io/kubernetes/cmd/kubelet"
		_ "k8s.io/kubernetes/cmd/kubectl"
		_ "sigs.k8s.io/cri-tools/cmd/crictl"
	)
	EOF
	(cd "$src" && go mod tidy)
fi
major=${kver#v}; major=${major%%.*}
minor=${kver#v*.}; minor=${minor%%.*}
ldflags="-s -w -X sigs.k8s.io/cri-tools/pkg/version.Version=$crictl_ver"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
	ldflags="$ldflags -X $pkg.gitVersion=$kver -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean"
done
echo "kube-build: building Kubernetes $kver and crictl $crictl_ver into $cache/bin (once per machine; 15-25 min on 2 cores)"
rm -f "$cache/bin/BUILD"
(cd "$src" && CGO_ENABLED=0 go build -trimpath -ldflags="$ldflags" -o "$cache/bin/" \
	k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
	k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubelet \
	k8s.io/kubernetes/cmd/kube-proxy k8s.io/kubernetes/cmd/kubectl sigs.k8s.io/cri-tools/cmd/crictl)
echo "$recipe" >"$cache/bin/BUILD"
ls -l "$cache/bin"
"$cache/bin/kubectl" version --client | head -1
echo "kube-build: ok"
