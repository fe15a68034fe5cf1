// Package nft is overlaynet's nftables machinery, spoken over netlink (no
// nft or iptables binary): the tables overlaynet owns, their chains, named
// sets updated in place, and rules identified by a tag so that one
// feature's (or one container port's) rules can be found, counted and
// removed without touching anything else.
//
// What it owns: one table per feature and family, named
// "overlaynet-FEATURE" (FeatureTable: inet for NAT and forward filtering,
// bridge or netdev for per-port filtering). A feature creates, changes and
// deletes its tables on its own, each change one transaction; DeleteTable
// refuses a table whose name does not start with "overlaynet". Nothing here
// flushes the ruleset or another table; the only writes into tables
// overlaynet does not own are tagged rules added by EnsureRules and removed
// by DeleteTagged, which touch exactly the rules carrying the caller's tags
// (the egress feature uses this for its documented accept rules in a host
// forward chain whose policy is drop, such as iptables-nft's filter
// FORWARD).
//
// Every change is made through a Batch, committed as one nftables
// transaction: the kernel applies all of it or none of it, so a failure
// leaves no half-made table. Rules carry two userdata records: the tag as an
// nft comment (shown by `nft list ruleset` and `iptables -S`) and a digest
// of their expressions, so EnsureRules keeps a rule that is already there
// unchanged (same handle, same counters) and replaces one whose expressions
// differ.
//
// How the features use it:
//   - egress (overlay/egress): table inet overlaynet-egress with a nat
//     postrouting chain holding the masquerade rule for the overlay subnet
//     (and NAT66 for its IPv6 prefix); on a host whose forward policy is
//     drop, tagged accept rules in that host chain (ip, ip6 or inet).
//   - guard (overlay/guard): its own tables; a named set of allowed VTEP
//     addresses whose
//     elements are added and deleted in place (AddElements,
//     DeleteElements), a drop rule with a counter read back by Rules, and
//     per-port anti-spoofing rules tagged with the port's name, removed
//     alone by DeleteTagged.
//
// Rule expressions are github.com/google/nftables/expr values; the helpers
// in match.go build the common ones (addresses, prefixes, interface names,
// set lookups, verdicts, masquerade) in the form nft and iptables-nft
// themselves use, so both list them readably.
package nft
