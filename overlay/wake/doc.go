// Package wake answers the container whose ARP request (IPv4) or Neighbor
// Solicitation (IPv6) raised a vxlan L3 miss as soon as the resolver has
// programmed the answer, instead of at the container's retransmit one
// second later.
//
// The vxlan proxy consumes the request that raised the miss and answers
// nothing. A Waker keeps a copy: a packet socket bound to the vxlan device
// (Open, Linux) receives each request as the bridge transmits it to the
// device (PACKET_OUTGOING: it comes from a local port), a classic BPF
// filter in the kernel keeping nothing else. The requests wait in the
// socket's buffer, waking no thread, until a resolved miss reads them (the
// request that raised it is among the last queued) or Run does, once a
// second; a small Table then holds the latest request of each sender per
// target address for a few seconds. When the resolver has programmed the
// target's neighbour entry it calls Answer, which sends those requests to
// the device once more: the vxlan proxy answers them from the new entry
// (arp_reduce, neigh_reduce), as it answers any request for an address it
// knows — the kernel's own reply, nothing forged, and none for an address
// that has no entry. Each captured request is sent again at most once.
//
// A Waker reads frames; it never looks anything up: what it costs a
// container that floods requests is the reading, bounded by the socket's
// buffer and the table's size. It owns the capture, the table, the
// re-injection and their counters (Stats, Collector for the Prometheus
// exposition); the resolver owns the decision to answer (it calls Answer
// only for an entry it programmed from a registry record).
package wake
