#!/usr/bin/env bash
# demo.sh [BINARY] — the lab's three-node exercise on this one machine (run as root;
# `make demo` runs it with bin/overlayd).
#
# Three simulated nodes, each a network namespace (ovdemo<PID>-n1..n3) with its own
# directory of named namespaces and state under a mktemp dir, joined by a bridge in
# an underlay namespace (ovdemo<PID>-ul) at 192.0.2.2, .3 and .4. On each node
# `overlayd create` and two containers as in the lab (198.51.100.0/24: pink .2 and
# sky .3 on node 1, .4 and .5 on node 2, .10 and .11 on node 3), then `overlayd run`
# per node on one shared directory store. No entry is programmed by hand: every
# container pings every other one and the daemons answer the vxlan misses; then
# every container pings 192.0.2.1 in the underlay namespace, outside the overlay
# (egress: masqueraded as its node), and every node its own containers.
# Printed: the pings, the misses each daemon resolved, its neighbour and FDB tables
# (`overlayd status`) and its metrics (--metrics). Everything is removed on exit,
# also on Ctrl-C or SIGTERM. Exit status 0 only when every ping was answered.
#
# DEMO_STORE=etcd (`make demo-etcd`) runs the same on etcd instead of the directory
# store: Debian's etcd server in the underlay namespace at 192.0.2.1:2379, the
# daemons in their default mode there (hybrid: entries programmed from etcd's watch
# before the first packet, misses as the safety net).
set -euo pipefail

BIN=${1:-bin/overlayd}
if [ "$(id -u)" -ne 0 ]; then
	echo "demo: run as root (network namespaces)" >&2
	exit 2
fi
if [ ! -x "$BIN" ]; then
	echo "demo: no overlayd binary at $BIN (make build)" >&2
	exit 2
fi
STORE_KIND=${DEMO_STORE:-dir}
case "$STORE_KIND" in
dir | etcd) ;;
*) echo "demo: DEMO_STORE must be dir or etcd, not $STORE_KIND" >&2; exit 2 ;;
esac
TOOLS="ip nsenter ping"
[ "$STORE_KIND" = etcd ] && TOOLS="$TOOLS etcd"
for tool in $TOOLS; do
	command -v "$tool" >/dev/null || { echo "demo: needs $tool (scripts/setup.sh installs it)" >&2; exit 2; }
done
BIN=$(realpath "$BIN")

TAG=ovdemo$$
UL=$TAG-ul
NODES=("" "$TAG-n1" "$TAG-n2" "$TAG-n3") # 1-based
VTEPS=("" 192.0.2.2 192.0.2.3 192.0.2.4)
CTRS=("1 pink 198.51.100.2" "1 sky 198.51.100.3" "2 pink 198.51.100.4" "2 sky 198.51.100.5"
	"3 pink 198.51.100.10" "3 sky 198.51.100.11")
METRICS=127.0.0.1:9477 # inside each node's own netns
WORK=$(mktemp -d "${TMPDIR:-/tmp}/ovdemo.XXXXXX")
DAEMONS=()
JOBS=()
ETCD_PID=
ETCD_ADDR=192.0.2.1:2379 # inside the underlay namespace, reachable from every node
if [ "$STORE_KIND" = etcd ]; then
	STORE="etcd://$ETCD_ADDR/overlaynet"
else
	STORE="dir:$WORK/store"
fi
exec {OUT}>&1 {ERR}>&2 # a signal may land while a command's output is redirected

# mounts_under lists the mount points in $WORK, deepest first.
mounts_under() {
	awk -v d="$WORK" '$5 == d || index($5, d "/") == 1 { print $5 }' /proc/self/mountinfo | sort -r
}

cleanup() {
	local rc=$? pid i f
	trap '' INT TERM # finish cleaning up even if interrupted again
	set +e
	exec 1>&"$OUT" 2>&"$ERR"
	for pid in "${JOBS[@]}" "${DAEMONS[@]}"; do kill -TERM "$pid" 2>/dev/null; done
	for pid in "${JOBS[@]}" "${DAEMONS[@]}"; do
		for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$pid" 2>/dev/null
		wait "$pid" 2>/dev/null
	done
	for i in 1 2 3; do
		[ -e "/var/run/netns/${NODES[i]}" ] && [ -d "$WORK/n$i/state" ] && ovd "$i" reset >/dev/null 2>&1
		for f in "$WORK/n$i/netns"/*; do
			[ -e "$f" ] && { umount -l "$f"; rm -f "$f"; }
		done
	done
	if [ -n "$ETCD_PID" ]; then
		kill -KILL "$ETCD_PID" 2>/dev/null
		wait "$ETCD_PID" 2>/dev/null
	fi
	for i in 1 2 3; do ip netns del "${NODES[i]}" 2>/dev/null; done
	ip netns del "$UL" 2>/dev/null
	for _ in 1 2 3; do
		for f in $(mounts_under); do umount -l "$f"; done
	done
	local left mounts
	left=$(ip netns list | grep -c "^$TAG" || true)
	mounts=$(mounts_under | wc -l)
	[ "$mounts" -eq 0 ] && rm -rf "$WORK"
	echo
	echo "== cleaned up: daemons stopped, overlayd reset, namespaces deleted ($left of $TAG* left, $mounts mounts left)"
	if [ "$left" -ne 0 ] || [ "$mounts" -ne 0 ]; then
		echo "demo: cleanup incomplete" >&2
		[ "$rc" -eq 0 ] && rc=1
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'echo >&"$ERR"; echo "demo: interrupted" >&"$ERR"; exit 130' INT
trap 'echo >&"$ERR"; echo "demo: terminated" >&"$ERR"; exit 143' TERM

# ovd NODE COMMAND [ARGS]: overlayd COMMAND as node NODE (its netns only, so the
# namespaces it creates stay mounted in its own netns dir), on the shared store.
ovd() {
	local i=$1 cmd=$2
	shift 2
	nsenter --net="/var/run/netns/${NODES[i]}" "$BIN" "$cmd" --netns-dir "$WORK/n$i/netns" \
		--state-dir "$WORK/n$i/state" --store "$STORE" "$@"
}

# in_ctr NODE NAME CMD...: run CMD in container NAME of node NODE.
in_ctr() {
	local i=$1 name=$2
	shift 2
	nsenter --net="$WORK/n$i/netns/$name" "$@"
}

echo "== underlay: bridge in $UL; nodes ${NODES[*]:1} at ${VTEPS[*]:1}"
ip netns add "$UL"
ip -n "$UL" link set lo up
# A fixed MAC: a bridge otherwise takes its lowest port MAC, which changes as
# nodes join and leaves the earlier ones with a stale ARP entry for etcd.
ip -n "$UL" link add br0 address 02:00:c0:00:02:01 type bridge
ip -n "$UL" link set br0 up
ip -n "$UL" addr add 192.0.2.1/24 dev br0 # the "outside": on the underlay, not on the overlay
if [ "$STORE_KIND" = etcd ]; then
	echo "== etcd in $UL at $ETCD_ADDR"
	nsenter --net="/var/run/netns/$UL" etcd --name demo --data-dir "$WORK/etcd" \
		--listen-client-urls "http://$ETCD_ADDR" --advertise-client-urls "http://$ETCD_ADDR" \
		--listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 \
		--initial-cluster demo=http://127.0.0.1:2380 --log-level warn >"$WORK/etcd.log" 2>&1 {OUT}>&- {ERR}>&- &
	ETCD_PID=$!
	for _ in $(seq 100); do
		if nsenter --net="/var/run/netns/$UL" bash -c \
			'exec 3<>/dev/tcp/${0%:*}/${0#*:} && printf "GET /health HTTP/1.0\r\n\r\n" >&3 && cat <&3' "$ETCD_ADDR" 2>/dev/null |
			grep -q '"health":"true"'; then
			break
		fi
		kill -0 "$ETCD_PID" 2>/dev/null || { cat "$WORK/etcd.log" >&2; echo "demo: etcd exited" >&2; exit 1; }
		sleep 0.1
	done
fi
for i in 1 2 3; do
	mkdir -p "$WORK/n$i"
	ip netns add "${NODES[i]}"
	ip -n "${NODES[i]}" link set lo up
	ip -n "$UL" link add "ul$i" type veth peer name u0 netns "${NODES[i]}"
	ip -n "$UL" link set "ul$i" master br0 up
	ip -n "${NODES[i]}" addr add "${VTEPS[i]}/24" dev u0
	ip -n "${NODES[i]}" link set u0 up
	ovd "$i" create --local "${VTEPS[i]}" --log-level warn >/dev/null
done

echo "== containers"
for c in "${CTRS[@]}"; do
	read -r i name ip <<<"$c"
	echo "  node$i: $(ovd "$i" attach "$name" --ip "$ip/24" --log-level warn)"
done

echo "== overlayd run on each node (store $STORE, metrics at $METRICS)"
for i in 1 2 3; do
	nsenter --net="/var/run/netns/${NODES[i]}" "$BIN" run --netns-dir "$WORK/n$i/netns" \
		--state-dir "$WORK/n$i/state" --store "$STORE" --metrics "$METRICS" --log-level debug >"$WORK/n$i.log" 2>&1 {OUT}>&- {ERR}>&- &
	DAEMONS+=($!)
done
for i in 1 2 3; do
	for _ in $(seq 100); do
		grep -q 'msg=reconciled' "$WORK/n$i.log" && break
		kill -0 "${DAEMONS[i - 1]}" 2>/dev/null || break
		sleep 0.1
	done
	if ! grep -q 'msg=reconciled' "$WORK/n$i.log"; then
		echo "demo: overlayd run on node$i did not start:" >&2
		cat "$WORK/n$i.log" >&2
		exit 1
	fi
	echo "  node$i: daemon pid ${DAEMONS[i - 1]} running"
done

echo "== every container pings every other one (ping -c1 -W2, up to 3 tries; a first reply takes milliseconds: each
   daemon answers the miss and has the vxlan answer the very ARP request that raised it)"
mkdir "$WORK/ping"
total=0
for src in "${CTRS[@]}"; do
	read -r si sname sip <<<"$src"
	for dst in "${CTRS[@]}"; do
		read -r di dname dip <<<"$dst"
		[ "$sip" = "$dip" ] && continue
		total=$((total + 1))
		(
			for try in 1 2 3; do
				if out=$(in_ctr "$si" "$sname" ping -n -c1 -W2 "$dip" 2>&1); then
					rtt=$(sed -n 's/.*time=\([0-9.]*\) ms.*/\1/p' <<<"$out")
					echo "ok, try $try, rtt $rtt ms" >"$WORK/ping/$sip-$dip"
					exit 0
				fi
			done
			echo "FAILED (3 tries)" >"$WORK/ping/$sip-$dip"
		) &
		JOBS+=($!)
	done
done
wait "${JOBS[@]}"
JOBS=()
failed=0
for src in "${CTRS[@]}"; do
	read -r si sname sip <<<"$src"
	for dst in "${CTRS[@]}"; do
		read -r di dname dip <<<"$dst"
		[ "$sip" = "$dip" ] && continue
		res=$(cat "$WORK/ping/$sip-$dip")
		[[ $res == ok* ]] || failed=$((failed + 1))
		printf '  %-24s -> %-24s %s\n' "$sname@node$si $sip" "$dname@node$di $dip" "$res"
	done
done
if [ "$failed" -eq 0 ]; then
	echo "  all $total pings answered"
else
	echo "  $failed of $total pings FAILED"
fi

echo "== the way out (egress, on by default): every container pings 192.0.2.1 in $UL, outside the overlay
   (masqueraded as its node's address), and every node pings its own containers"
outside_failed=0
for c in "${CTRS[@]}"; do
	read -r i name ip <<<"$c"
	if in_ctr "$i" "$name" ping -n -c1 -W2 192.0.2.1 >/dev/null 2>&1; then
		printf '  %-24s -> %-24s ok\n' "$name@node$i $ip" "outside 192.0.2.1"
	else
		printf '  %-24s -> %-24s FAILED\n' "$name@node$i $ip" "outside 192.0.2.1"
		outside_failed=$((outside_failed + 1))
	fi
	if nsenter --net="/var/run/netns/${NODES[i]}" ping -n -c1 -W2 "$ip" >/dev/null 2>&1; then
		printf '  %-24s -> %-24s ok\n' "node$i ${VTEPS[i]}" "$name $ip"
	else
		printf '  %-24s -> %-24s FAILED\n' "node$i ${VTEPS[i]}" "$name $ip"
		outside_failed=$((outside_failed + 1))
	fi
done
[ "$outside_failed" -eq 0 ] && echo "  the outside and the nodes reached: all answered"

echo "== misses resolved by the daemons, and entries programmed from etcd's watch (their log lines)"
for i in 1 2 3; do
	echo "  node$i:"
	grep -q -e 'msg=resolved' -e 'msg="programmed from feed"' "$WORK/n$i.log" || echo "    (none)"
	sed -n -e 's/^time=[^ ]* level=DEBUG msg=resolved /    resolved /p' \
		-e 's/^time=[^ ]* level=DEBUG msg="programmed from feed" /    from feed /p' "$WORK/n$i.log"
done

echo "== neighbour and FDB entries on each node's vxlan (overlayd status)"
for i in 1 2 3; do
	echo "  node$i:"
	ovd "$i" status | sed -n '/^NEIGHBOUR/,$p' | sed 's/^/    /'
done

echo "== metrics (GET http://$METRICS/metrics in each node)"
for i in 1 2 3; do
	echo "  node$i:"
	nsenter --net="/var/run/netns/${NODES[i]}" bash -c \
		'exec 3<>/dev/tcp/${0%:*}/${0#*:} && printf "GET /metrics HTTP/1.0\r\nHost: demo\r\n\r\n" >&3 && cat <&3' "$METRICS" 2>/dev/null |
		grep -E '^overlayd_(misses_total|resolutions_total|negative_cache_hits_total|overruns_total|programmed_entries|miss_to_entry_seconds_count|requests_captured_total|requests_answered_total)' |
		sed 's/^/    /' || echo "    (metrics unavailable)"
done

[ "$failed" -eq 0 ] && [ "$outside_failed" -eq 0 ]
