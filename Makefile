# overlaynet. Run as root for the integration tests (network namespaces).
GO       ?= go
PATH     := /usr/local/go/bin:$(PATH)
export PATH
BIN      := bin/overlayd
PLUGIN   := bin/overlaynet
PREFIX   ?= /usr/local
CNI_BIN_DIR ?= /opt/cni/bin
FUZZTIME ?= 10s
BENCHCOUNT ?= 6
BENCHSTAT  = $(shell $(GO) env GOPATH)/bin/benchstat

.PHONY: all build image install test test-race test-bigendian cross vet deps-check bench fuzz demo demo-etcd kube-build clean

all: build

## build: a static overlayd and the CNI plugin overlaynet (CGO_ENABLED=0) in bin/; BUILDTAGS=noetcd leaves the etcd
## client out of overlayd, BUILDTAGS=nokube the Kubernetes client; the plugin never needs the Kubernetes client
## (it reads what the daemon recorded): it is always built with nokube
BUILDTAGS ?=
build:
	CGO_ENABLED=0 $(GO) build -tags '$(BUILDTAGS)' -trimpath -ldflags='-s -w' -o $(BIN) ./cmd/overlayd
	CGO_ENABLED=0 $(GO) build -tags 'nokube $(BUILDTAGS)' -trimpath -ldflags='-s -w' -o $(PLUGIN) ./cmd/overlaynet
	@ls -l $(BIN) $(PLUGIN) | awk '{print "built", $$9 ":", $$5, "bytes"}'

## image: the container image of the static binaries, an OCI archive that `ctr images import` and
## `podman load` take (no container engine needed), for deploy/kubernetes/overlaynet.yaml: overlayd
## without the etcd client (a cluster's store is its API), the plugin without the Kubernetes client
IMAGE ?= docker.io/overlaynet/overlaynet:dev
image:
	@mkdir -p bin/image
	CGO_ENABLED=0 $(GO) build -tags noetcd -trimpath -ldflags='-s -w' -o bin/image/overlayd ./cmd/overlayd
	CGO_ENABLED=0 $(GO) build -tags nokube -trimpath -ldflags='-s -w' -o bin/image/overlaynet ./cmd/overlaynet
	$(GO) run ./internal/mkimage -o bin/overlaynet-image.tar -name $(IMAGE) bin/image/overlayd bin/image/overlaynet

## install: overlayd to $(PREFIX)/bin, the CNI plugin to $(CNI_BIN_DIR) (DESTDIR for packaging)
install: build
	install -D -m 0755 $(BIN) $(DESTDIR)$(PREFIX)/bin/overlayd
	install -D -m 0755 $(PLUGIN) $(DESTDIR)$(CNI_BIN_DIR)/overlaynet

## deps-check: rtnl/ may import only the standard library and golang.org/x/sys; ethaddr/ only the standard library;
## overlayd and the CNI plugin (any tags) link no package of the Kubernetes project's modules (k8s.io/, sigs.k8s.io/),
## nor gRPC, the protobuf runtime, zap or go.etcd.io: the Kubernetes and etcd clients are kubereg's and etcdreg's own
deps-check:
	@bad=$$($(GO) list -deps ./rtnl/... | grep '\.' | grep -v -e '^vendor/' -e '^golang.org/x/sys/' -e '^github.com/overlaynet/overlaynet/rtnl' || true); \
	if [ -n "$$bad" ]; then echo "rtnl imports outside std and x/sys:"; echo "$$bad"; exit 1; fi; \
	bad=$$($(GO) list -deps ./ethaddr | grep '\.' | grep -v '^github.com/overlaynet/overlaynet/ethaddr$$' || true); \
	if [ -n "$$bad" ]; then echo "ethaddr imports outside std:"; echo "$$bad"; exit 1; fi; \
	for tags in '' noetcd nokube; do \
		bad=$$($(GO) list -tags "$$tags" -deps ./cmd/overlayd ./cmd/overlaynet | grep -e '^k8s\.io/' -e '^sigs\.k8s\.io/' \
			-e '^go\.etcd\.io/' -e '^google\.golang\.org/grpc' -e '^google\.golang\.org/protobuf' -e '^go\.uber\.org/zap' || true); \
		if [ -n "$$bad" ]; then echo "overlayd or overlaynet (tags '$$tags') link Kubernetes or etcd project modules:"; echo "$$bad"; exit 1; fi; \
	done; \
	echo "deps-check: rtnl imports only std and golang.org/x/sys; ethaddr only std; overlayd and overlaynet no k8s.io, sigs.k8s.io, gRPC, protobuf, zap or go.etcd.io package"

vet:
	$(GO) vet ./...
	$(GO) vet -tags noetcd ./...
	$(GO) vet -tags nokube ./...
	$(GO) vet -tags 'noetcd nokube' ./...
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { echo "gofmt needed:"; gofmt -l $$(git ls-files '*.go'); exit 1; }

## test: everything (as root; CI=true makes privileged tests fail instead of skipping),
## then the library under the race detector (test-race), rtnl on big-endian (test-bigendian)
## and the cross-build matrix (cross)
test: deps-check vet
	$(GO) test -count=1 -timeout 30m ./...
	@$(MAKE) --no-print-directory test-race test-bigendian cross

## test-race: the tests of the library packages (rtnl, overlay, internal) under the race
## detector (it needs cgo: scripts/setup.sh installs gcc)
test-race:
	CGO_ENABLED=1 $(GO) test -race -count=1 -timeout 30m ./rtnl/... ./overlay/... ./internal/...

## test-bigendian: rtnl's tests cross-compiled for linux/s390x (big-endian) and run under
## qemu-user; tests that need a live kernel skip there, and only there (internal/nstest)
QEMU_S390X ?= qemu-s390x-static
test-bigendian:
	@command -v $(QEMU_S390X) >/dev/null || { echo "test-bigendian: $(QEMU_S390X) not found (scripts/setup.sh installs qemu-user-static)"; exit 1; }
	@log=$$(mktemp); trap 'rm -f $$log' EXIT; rc=0; \
	OVERLAYNET_QEMU_USER=1 GOARCH=s390x $(GO) test -count=1 -timeout 20m -v -exec $(QEMU_S390X) \
		./rtnl/... ./internal/golden/ ./internal/nstest/ >$$log 2>&1 || rc=$$?; \
	grep -E '^(ok|FAIL|panic:)' $$log; \
	[ $$rc -eq 0 ] || grep -B2 -A20 -e '--- FAIL' -e '^panic:' $$log | head -150; \
	echo "test-bigendian (linux/s390x under $(QEMU_S390X)): $$(grep -c '^ *--- PASS' $$log) passed," \
		"$$(grep -c '^ *--- SKIP' $$log) skipped, $$(grep -c '^ *--- FAIL' $$log) failed"; \
	exit $$rc

## cross: every package built (static, -trimpath) for each of CROSS_ARCHS, and overlayd's size per
## architecture as `make build` makes it: with the etcd and Kubernetes clients, without the etcd client
## (BUILDTAGS=noetcd: make image's), without the Kubernetes client (nokube), and with neither; the
## portable packages (PORTABLE_PKGS: rtnl, ethaddr, the registry, the resolver, wake) built for each of
## CROSS_OTHERS, and rtnl's tests vetted there (the codec and the fake kernel's tests compile
## outside Linux; sockets and namespaces return rtnl.ErrNotSupported)
CROSS_ARCHS ?= amd64 arm64 arm mips mipsle riscv64 ppc64le
CROSS_TAGS := full noetcd nokube noetcd,nokube
CROSS_OTHERS ?= darwin/amd64 windows/amd64
PORTABLE_PKGS := ./rtnl/... ./ethaddr/... ./overlay/registry/ ./overlay/resolver/ ./overlay/wake/
cross:
	@set -e; for p in $(CROSS_OTHERS); do \
		echo "cross: $$p ($(PORTABLE_PKGS))"; \
		CGO_ENABLED=0 GOOS=$${p%/*} GOARCH=$${p#*/} $(GO) build -trimpath $(PORTABLE_PKGS); \
		CGO_ENABLED=0 GOOS=$${p%/*} GOARCH=$${p#*/} $(GO) vet ./rtnl/...; \
	done
	@set -e; mkdir -p bin/cross; sizes=""; \
	for a in $(CROSS_ARCHS); do \
		echo "cross: linux/$$a"; \
		CGO_ENABLED=0 GOOS=linux GOARCH=$$a $(GO) build -trimpath ./...; \
		line="$$a"; \
		for tags in $(CROSS_TAGS); do \
			CGO_ENABLED=0 GOOS=linux GOARCH=$$a $(GO) build -tags "$$(echo $$tags | sed 's/full//; s/,/ /')" -trimpath -ldflags='-s -w' -o bin/cross/overlayd-$$tags-$$a ./cmd/overlayd; \
			line="$$line $$(stat -c %s bin/cross/overlayd-$$tags-$$a)"; \
		done; \
		sizes="$$sizes$$line\n"; \
	done; \
	printf "$$sizes" | awk 'BEGIN { printf "%-8s %12s %12s %12s %14s\n", "linux/", "full", "noetcd", "nokube", "noetcd nokube" } \
		{ printf "%-8s %11.1fM %11.1fM %11.1fM %13.1fM\n", $$1, $$2/1048576, $$3/1048576, $$4/1048576, $$5/1048576 }'

## bench-scale: a node at scale on a real etcd (root; about 6 minutes): start-up with 10k and
## 100k remote endpoints (time, RSS, bytes per endpoint), churn of 1,000 changes/s on 100k
## (write-to-entry and miss p50/p99), each as the overlayd binary, measured from outside
# bench and bench-scale pipe go test through tee: pipefail so a failing benchmark fails make.
bench bench-scale: SHELL := /bin/bash
bench bench-scale: .SHELLFLAGS := -o pipefail -c

bench-scale:
	$(GO) test -run '^$$' -bench 'Startup' -benchtime 1x -count 3 -timeout 30m ./cmd/overlayd/ | tee bench-scale.txt
	$(GO) test -run '^$$' -bench 'Churn' -benchtime 1x -count 2 -timeout 30m ./cmd/overlayd/ | tee -a bench-scale.txt

## bench: benchmarks side by side with the peers, benchstat tables (root; a few minutes; gcc for the floor)
## The resolver benchmarks build the resolver exactly as `overlayd run` with no flags
## (bench.TestBenchmarkConfigIsTheDaemons); RESOLVECOUNT rounds each.
RESOLVECOUNT ?= 4
bench:
	$(GO) test -run '^$$' -bench 'DecodeMiss|Monitor|RegistryLookup' -benchmem -count $(BENCHCOUNT) -benchtime 300ms -timeout 60m ./bench/ | tee bench.txt
	$(GO) test -run '^$$' -bench 'Program' -benchmem -count $(BENCHCOUNT) -benchtime 1x -timeout 60m ./bench/ | tee -a bench.txt
	$(GO) test -run '^$$' -bench 'ResolveIsolated' -benchmem -count $(RESOLVECOUNT) -benchtime 500x -timeout 60m ./bench/ | tee -a bench.txt
	$(GO) test -run '^$$' -bench 'FirstContact' -count $(RESOLVECOUNT) -benchtime 16x -timeout 60m ./cmd/overlayd/ | tee -a bench.txt
	$(GO) test -run '^$$' -bench 'Resolve$$|ResolveBacklog|ResolveScan' -benchmem -count $(RESOLVECOUNT) -benchtime 1x -timeout 60m ./bench/ | tee -a bench.txt
	$(GO) test -run '^$$' -bench 'CrossNodeTCP|AllowlistUpdate' -benchmem -count $(BENCHCOUNT) -timeout 60m ./bench/ | tee -a bench.txt
	$(GO) test -run '^$$' -bench 'Encrypt' -benchmem -count $(BENCHCOUNT) -benchtime 2s -timeout 60m ./bench/ | tee -a bench.txt
	@test -x $(BENCHSTAT) || $(GO) install golang.org/x/perf/cmd/benchstat@latest
	$(BENCHSTAT) -filter '-.name:/^(Resolve|Program|CrossNodeTCP|FirstContact|Encrypt)/' bench.txt
	$(BENCHSTAT) -filter '.name:Program' -col /impl bench.txt
	$(BENCHSTAT) -filter '.name:ResolveIsolated' -col /impl bench.txt
	$(BENCHSTAT) -filter '.name:ResolveIsolatedFamily' -col /family bench.txt
	$(BENCHSTAT) -filter '.name:FirstContact' -col /store bench.txt
	$(BENCHSTAT) -filter '.name:FirstContactIPv6' bench.txt
	$(BENCHSTAT) -filter '.name:Resolve' -col /impl bench.txt
	$(BENCHSTAT) -filter '.name:ResolveBacklog' -col /impl bench.txt
	$(BENCHSTAT) -filter '.name:ResolveScan' -col /impl bench.txt
	$(BENCHSTAT) -filter '.name:CrossNodeTCP' -col /filters bench.txt
	$(BENCHSTAT) -filter '.name:/^Encrypt/' -col /encrypt bench.txt

## fuzz: every native fuzz target for FUZZTIME each (no panic, no out-of-range read)
FUZZ_TARGETS := FuzzNeighMessage FuzzLinkMessage FuzzAddressMessage FuzzRouteMessage FuzzAck FuzzAttributeDecoder FuzzMessageIter FuzzClassify FuzzMonitorDatagram FuzzInetDevConf FuzzInet6DevConf
fuzz:
	@set -e; for t in $(FUZZ_TARGETS); do \
		echo "== $$t ($(FUZZTIME))"; \
		$(GO) test ./rtnl -run '^$$' -fuzz "^$$t$$" -fuzztime $(FUZZTIME); \
	done
	@echo "== FuzzUdata ($(FUZZTIME))"; $(GO) test ./overlay/nft -run '^$$' -fuzz '^FuzzUdata$$' -fuzztime $(FUZZTIME)
	@echo "== FuzzParseNode ($(FUZZTIME))"; $(GO) test ./overlay/registry/kubereg -run '^$$' -fuzz '^FuzzParseNode$$' -fuzztime $(FUZZTIME)
	@echo "== FuzzDecodeEvent ($(FUZZTIME))"; $(GO) test ./overlay/registry/kubereg/internal/kubeapi -run '^$$' -fuzz '^FuzzDecodeEvent$$' -fuzztime $(FUZZTIME)
	@echo "== FuzzTarget ($(FUZZTIME))"; $(GO) test ./overlay/wake -run '^$$' -fuzz '^FuzzTarget$$' -fuzztime $(FUZZTIME)
	@set -e; for t in FuzzUAPIGet FuzzGenlDevice; do \
		echo "== $$t ($(FUZZTIME))"; $(GO) test ./overlay/wireguard -run '^$$' -fuzz "^$$t$$" -fuzztime $(FUZZTIME); \
	done
	@set -e; for t in FuzzRangeResponse FuzzTxnResponse FuzzWatchResponse FuzzGrantResponse FuzzTimeToLiveResponse FuzzKeepAliveResponse FuzzAuthenticateResponse FuzzMessage; do \
		echo "== $$t ($(FUZZTIME))"; $(GO) test ./overlay/registry/etcdreg/internal/etcdv3 -run '^$$' -fuzz "^$$t$$" -fuzztime $(FUZZTIME); \
	done

## kube-build: the Kubernetes components internal/kubetest runs, built once per machine into
## $(OVERLAYNET_KUBE_CACHE) (default /var/cache/overlaynet/kube); scripts/setup.sh runs it
kube-build:
	./scripts/kube-build.sh

## demo: three simulated nodes, a daemon each, containers pinging across them; cleans up after itself (root)
demo: build
	./scripts/demo.sh $(BIN)

## demo-etcd: the same on etcd (a real etcd in the underlay namespace; daemons in hybrid mode)
demo-etcd: build
	DEMO_STORE=etcd ./scripts/demo.sh $(BIN)

clean:
	rm -rf bin bench.txt
