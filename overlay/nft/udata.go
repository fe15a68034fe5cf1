package nft

import "bytes"

// Rule userdata is a list of records: a type byte, a length byte, then
// that many bytes (libnftnl's nftnl_udata). The kernel stores it
// unchecked: a rule written by another tool may carry anything, so it is
// parsed here without trusting it (github.com/google/nftables/userdata
// slices before checking the length and panics on a truncated record).

// udataRecord returns the data of the first record of type typ in ud, or
// nil if there is none or the records are malformed before it.
func udataRecord(ud []byte, typ byte) []byte {
	for len(ud) >= 2 {
		t, n := ud[0], int(ud[1])
		if len(ud) < 2+n {
			return nil
		}
		if t == typ {
			return ud[2 : 2+n : 2+n]
		}
		ud = ud[2+n:]
	}
	return nil
}

// udataComment returns the NUL-terminated comment record (type 0) of ud.
func udataComment(ud []byte) (string, bool) {
	d := udataRecord(ud, udataTypeComment)
	if d == nil {
		return "", false
	}
	d, _ = bytes.CutSuffix(d, []byte{0})
	return string(d), true
}

// udataAppend appends a record; data is at most 255 bytes (callers check).
func udataAppend(ud []byte, typ byte, data []byte) []byte {
	ud = append(ud, typ, byte(len(data)))
	return append(ud, data...)
}

// Userdata record types: the comment (NFTNL_UDATA_RULE_COMMENT, shown by
// nft and iptables) and overlaynet's digest of the rule's expressions,
// which nft and iptables-nft skip as a type they do not know.
const (
	udataTypeComment byte = 0
	udataTypeDigest  byte = 0x4f
)
