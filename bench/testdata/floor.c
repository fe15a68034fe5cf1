/*
 * floor: the least a miss resolver in its own process can do, the floor of
 * BenchmarkResolveIsolated. One blocking read of the overlay namespace's
 * RTNLGRP_NEIGH socket, the answer computed from the IP alone (no store, no
 * FDB table, no lookup), one netlink write carrying both entries.
 *
 * Usage (inside the overlay namespace, e.g. nsenter --net=...):
 *
 *     floor VXLAN_IFINDEX FIRST_IP COUNT
 *
 * The i-th address from FIRST_IP (0 <= i < COUNT) gets the benchmark's
 * record: MAC 02:42:0b:i>>16:i>>8:i, VTEP 192.0.2.(10 + i % 200); other
 * addresses are ignored. Like overlayd's monitor, the socket carries a
 * classic BPF filter that keeps only miss notifications (RTM_GETNEIGH): the
 * echoes of its own entries, and the error replies of a failed write, never
 * wake it (a wrong entry shows as a benchmark failure: the watcher checks
 * every entry). It prints "ready" once subscribed. Compiled by the benchmark
 * (gcc -O2) at run time.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <linux/filter.h>
#include <linux/if_ether.h>
#include <linux/neighbour.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#ifndef SOL_NETLINK
#define SOL_NETLINK 270
#endif

static void die(const char *what) {
	perror(what);
	exit(1);
}

/* put_attr appends one rtattr to the message m. */
static void put_attr(struct nlmsghdr *m, unsigned short type, const void *data, unsigned short len) {
	struct rtattr *a = (struct rtattr *)((char *)m + NLMSG_ALIGN(m->nlmsg_len));
	a->rta_type = type;
	a->rta_len = RTA_LENGTH(len);
	memcpy(RTA_DATA(a), data, len);
	m->nlmsg_len = NLMSG_ALIGN(m->nlmsg_len) + RTA_ALIGN(a->rta_len);
}

/* put_neigh starts an RTM_NEWNEIGH (create, replace; no ACK) at m. */
static struct nlmsghdr *put_neigh(char *at, unsigned char family, int ifindex, uint8_t flags) {
	struct nlmsghdr *m = (struct nlmsghdr *)at;
	memset(m, 0, NLMSG_SPACE(sizeof(struct ndmsg)));
	m->nlmsg_len = NLMSG_LENGTH(sizeof(struct ndmsg));
	m->nlmsg_type = RTM_NEWNEIGH;
	m->nlmsg_flags = NLM_F_REQUEST | NLM_F_CREATE | NLM_F_REPLACE;
	struct ndmsg *nd = NLMSG_DATA(m);
	nd->ndm_family = family;
	nd->ndm_ifindex = ifindex;
	nd->ndm_state = NUD_PERMANENT;
	nd->ndm_flags = flags;
	return m;
}

/* answer writes the neighbour entry ip -> MAC and the FDB entry MAC -> VTEP
 * of the i-th record in one sendto. */
static void answer(int fd, int vxlan, uint32_t ip, uint32_t i) {
	static char buf[512] __attribute__((aligned(4)));
	unsigned char mac[6] = {0x02, 0x42, 0x0b, (unsigned char)(i >> 16), (unsigned char)(i >> 8), (unsigned char)i};
	unsigned char vtep[4] = {192, 0, 2, (unsigned char)(10 + i % 200)};
	struct nlmsghdr *n = put_neigh(buf, AF_INET, vxlan, 0);
	put_attr(n, NDA_DST, &ip, 4);
	put_attr(n, NDA_LLADDR, mac, 6);
	size_t off = NLMSG_ALIGN(n->nlmsg_len);
	struct nlmsghdr *f = put_neigh(buf + off, AF_BRIDGE, vxlan, NTF_SELF);
	put_attr(f, NDA_LLADDR, mac, 6);
	put_attr(f, NDA_DST, vtep, 4);
	off += NLMSG_ALIGN(f->nlmsg_len);
	struct sockaddr_nl kernel = {.nl_family = AF_NETLINK};
	while (sendto(fd, buf, off, 0, (struct sockaddr *)&kernel, sizeof kernel) < 0) {
		if (errno != EINTR)
			die("sendto");
	}
}

/* handle answers one RTM_GETNEIGH L3 miss for a benchmark address. */
static void handle(int fd, int vxlan, uint32_t first, uint32_t count, struct nlmsghdr *h) {
	if (h->nlmsg_type != RTM_GETNEIGH || h->nlmsg_len < NLMSG_LENGTH(sizeof(struct ndmsg)))
		return;
	struct ndmsg *nd = NLMSG_DATA(h);
	if (nd->ndm_family != AF_INET || nd->ndm_ifindex != vxlan)
		return;
	int len = h->nlmsg_len - NLMSG_LENGTH(sizeof(*nd));
	for (struct rtattr *a = (struct rtattr *)((char *)nd + NLMSG_ALIGN(sizeof(*nd))); RTA_OK(a, len); a = RTA_NEXT(a, len)) {
		if (a->rta_type != NDA_DST || RTA_PAYLOAD(a) != 4)
			continue;
		uint32_t ip;
		memcpy(&ip, RTA_DATA(a), 4);
		uint32_t i = ntohl(ip) - first;
		if (i < count)
			answer(fd, vxlan, ip, i);
		return;
	}
}

int main(int argc, char **argv) {
	if (argc != 4) {
		fprintf(stderr, "usage: floor VXLAN_IFINDEX FIRST_IP COUNT\n");
		return 2;
	}
	int vxlan = atoi(argv[1]);
	struct in_addr first;
	if (inet_pton(AF_INET, argv[2], &first) != 1) {
		fprintf(stderr, "floor: bad address %s\n", argv[2]);
		return 2;
	}
	uint32_t count = (uint32_t)strtoul(argv[3], NULL, 10);
	int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
	if (fd < 0)
		die("socket");
	/* A = nlmsg_type (a big-endian load of a host-order field): keep RTM_GETNEIGH. */
	struct sock_filter code[] = {
		BPF_STMT(BPF_LD | BPF_H | BPF_ABS, 4),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, htons(RTM_GETNEIGH), 0, 1),
		BPF_STMT(BPF_RET | BPF_K, 0xffffffff),
		BPF_STMT(BPF_RET | BPF_K, 0),
	};
	struct sock_fprog prog = {.len = sizeof code / sizeof code[0], .filter = code};
	if (setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, &prog, sizeof prog) < 0)
		die("SO_ATTACH_FILTER");
	struct sockaddr_nl local = {.nl_family = AF_NETLINK};
	if (bind(fd, (struct sockaddr *)&local, sizeof local) < 0)
		die("bind");
	int group = RTNLGRP_NEIGH;
	if (setsockopt(fd, SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, &group, sizeof group) < 0)
		die("NETLINK_ADD_MEMBERSHIP");
	printf("ready\n");
	fflush(stdout);
	static char buf[8192] __attribute__((aligned(4)));
	for (;;) {
		ssize_t n = recv(fd, buf, sizeof buf, 0);
		if (n < 0) {
			if (errno == EINTR || errno == ENOBUFS)
				continue;
			die("recv");
		}
		int left = (int)n;
		for (struct nlmsghdr *h = (struct nlmsghdr *)buf; NLMSG_OK(h, left); h = NLMSG_NEXT(h, left))
			handle(fd, vxlan, ntohl(first.s_addr), count, h);
	}
}
