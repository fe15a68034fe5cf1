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

.PHONY: all build install test vet deps-check bench fuzz demo demo-etcd clean

all: build

## build: a static overlayd and the CNI plugin overlaynet (CGO_ENABLED=0) in bin/; BUILDTAGS=noetcd leaves the etcd client out of overlayd
BUILDTAGS ?=
build:
	CGO_ENABLED=0 $(GO) build -tags '$(BUILDTAGS)' -trimpath -ldflags='-s -w' -o $(BIN) ./cmd/overlayd
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags='-s -w' -o $(PLUGIN) ./cmd/overlaynet
	@ls -l $(BIN) $(PLUGIN) | awk '{print "built", $$9 ":", $$5, "bytes"}'

## install: overlayd to $(PREFIX)/bin, the CNI plugin to $(CNI_BIN_DIR) (DESTDIR for packaging)
install: build
	install -D -m 0755 $(BIN) $(DESTDIR)$(PREFIX)/bin/overlayd
	install -D -m 0755 $(PLUGIN) $(DESTDIR)$(CNI_BIN_DIR)/overlaynet

## deps-check: rtnl/ may import only the standard library and golang.org/x/sys
deps-check:
	@bad=$$($(GO) list -deps ./rtnl/... | grep '\.' | grep -v -e '^vendor/' -e '^golang.org/x/sys/' -e '^github.com/overlaynet/overlaynet/rtnl' || true); \
	if [ -n "$$bad" ]; then echo "rtnl imports outside std and x/sys:"; echo "$$bad"; exit 1; fi; \
	echo "deps-check: rtnl imports only std and golang.org/x/sys"

vet:
	$(GO) vet ./...
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { echo "gofmt needed:"; gofmt -l $$(git ls-files '*.go'); exit 1; }

## test: everything (as root; CI=true makes privileged tests fail instead of skipping)
test: deps-check vet
	$(GO) test -count=1 -timeout 30m ./...

## bench: benchmarks side by side with the peers, benchstat tables (root; a few minutes)
## The resolver benchmarks build the resolver exactly as `overlayd run` with no flags
## (bench.TestBenchmarkConfigIsTheDaemons); RESOLVECOUNT rounds each.
RESOLVECOUNT ?= 4
bench:
	$(GO) test -run '^$$' -bench 'DecodeMiss|Monitor|RegistryLookup' -benchmem -count $(BENCHCOUNT) -benchtime 300ms -timeout 60m ./bench/ | tee bench.txt
	$(GO) test -run '^$$' -bench 'Program' -benchmem -count $(BENCHCOUNT) -benchtime 1x -timeout 60m ./bench/ | tee -a bench.txt
	$(GO) test -run '^$$' -bench 'ResolveIsolated' -benchmem -count $(RESOLVECOUNT) -benchtime 300x -timeout 60m ./bench/ | tee -a bench.txt
	$(GO) test -run '^$$' -bench 'Resolve$$|ResolveBacklog|ResolveScan' -benchmem -count $(RESOLVECOUNT) -benchtime 1x -timeout 60m ./bench/ | tee -a bench.txt
	@test -x $(BENCHSTAT) || $(GO) install golang.org/x/perf/cmd/benchstat@latest
	$(BENCHSTAT) -filter '-.name:/^(Resolve|Program)/' bench.txt
	$(BENCHSTAT) -filter '.name:Program' -col /impl bench.txt
	$(BENCHSTAT) -filter '.name:ResolveIsolated' -col /impl bench.txt
	$(BENCHSTAT) -filter '.name:Resolve' -col /impl bench.txt
	$(BENCHSTAT) -filter '.name:ResolveBacklog' -col /impl bench.txt
	$(BENCHSTAT) -filter '.name:ResolveScan' -col /impl bench.txt

## fuzz: every native fuzz target for FUZZTIME each (no panic, no out-of-range read)
FUZZ_TARGETS := FuzzNeighMessage FuzzLinkMessage FuzzAddressMessage FuzzRouteMessage FuzzAck FuzzAttributeDecoder FuzzMessageIter FuzzClassify FuzzInetDevConf
fuzz:
	@set -e; for t in $(FUZZ_TARGETS); do \
		echo "== $$t ($(FUZZTIME))"; \
		$(GO) test ./rtnl -run '^$$' -fuzz "^$$t$$" -fuzztime $(FUZZTIME); \
	done
	@echo "== FuzzUdata ($(FUZZTIME))"; $(GO) test ./overlay/nft -run '^$$' -fuzz '^FuzzUdata$$' -fuzztime $(FUZZTIME)

## demo: three simulated nodes, a daemon each, containers pinging across them; cleans up after itself (root)
demo: build
	./scripts/demo.sh $(BIN)

## demo-etcd: the same on etcd (a real etcd in the underlay namespace; daemons in hybrid mode)
demo-etcd: build
	DEMO_STORE=etcd ./scripts/demo.sh $(BIN)

clean:
	rm -rf bin bench.txt
