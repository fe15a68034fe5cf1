package nft

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
)

// MaxTagLen is the longest tag a rule may carry (the kernel keeps at most
// 256 bytes of rule userdata, shared with the digest).
const MaxTagLen = 200

// Rule is a rule to add: its expressions and the tag that identifies it.
type Rule struct {
	// Tag identifies the rule among the chain's rules (its nft comment).
	// Required, at most MaxTagLen bytes, no NUL.
	Tag string
	// Exprs are the rule's expressions, in order.
	Exprs []expr.Any
	// Head puts the rule first in its chain instead of last.
	Head bool
}

// RuleInfo is a rule read back from the kernel.
type RuleInfo struct {
	// Handle identifies the rule in its chain.
	Handle uint64 `json:"handle"`
	// Tag is the rule's comment ("" if it has none).
	Tag string `json:"tag,omitempty"`
	// Packets and Bytes sum the rule's counter expressions.
	Packets uint64 `json:"packets"`
	Bytes   uint64 `json:"bytes"`
	// Exprs are the decoded expressions.
	Exprs []expr.Any `json:"-"`

	digest []byte
}

func validateTag(tag string) error {
	switch {
	case tag == "":
		return errors.New("nft: rule has no tag")
	case len(tag) > MaxTagLen:
		return fmt.Errorf("nft: rule tag %q is %d bytes, longer than %d", tag, len(tag), MaxTagLen)
	case strings.IndexByte(tag, 0) >= 0:
		return fmt.Errorf("nft: rule tag %q contains NUL", tag)
	}
	return nil
}

// digest returns a digest of exprs' netlink encoding for family f.
func digest(f Family, exprs []expr.Any) ([]byte, error) {
	h := sha256.New()
	for _, e := range exprs {
		b, err := expr.Marshal(byte(f), e)
		if err != nil {
			return nil, fmt.Errorf("nft: encode %T: %w", e, err)
		}
		h.Write(b)
	}
	return h.Sum(nil)[:8], nil
}

func ruleUserData(tag string, d []byte) []byte {
	ud := udataAppend(nil, udataTypeComment, append([]byte(tag), 0))
	return udataAppend(ud, udataTypeDigest, d)
}

// AddRule adds r at the end (or, with r.Head, the start) of ch.
func (b *Batch) AddRule(ch Chain, r Rule) {
	b.ops = append(b.ops, func(c *nftables.Conn) error {
		if err := validateTag(r.Tag); err != nil {
			return err
		}
		d, err := digest(ch.Table.Family, r.Exprs)
		if err != nil {
			return err
		}
		lr := &nftables.Rule{Table: ch.Table.lib(), Chain: ch.lib(), Exprs: r.Exprs, UserData: ruleUserData(r.Tag, d)}
		if r.Head {
			c.InsertRule(lr)
		} else {
			c.AddRule(lr)
		}
		return nil
	})
}

// DeleteRule deletes the rule with handle h from ch.
func (b *Batch) DeleteRule(ch Chain, h uint64) {
	b.ops = append(b.ops, func(c *nftables.Conn) error {
		return c.DelRule(&nftables.Rule{Table: ch.Table.lib(), Chain: ch.lib(), Handle: h})
	})
}

// Rules lists the rules of ch, in order, with their tags and counters.
func (c *Conn) Rules(ch Chain) (_ []RuleInfo, err error) {
	defer recovered("list rules", &err)
	lc, err := c.lib()
	if err != nil {
		return nil, err
	}
	rules, err := lc.GetRules(ch.Table.lib(), ch.lib())
	if err != nil {
		return nil, fmt.Errorf("nft: list rules of %s: %w", ch, err)
	}
	out := make([]RuleInfo, 0, len(rules))
	for _, r := range rules {
		ri := RuleInfo{Handle: r.Handle, Exprs: r.Exprs}
		ri.Tag, _ = udataComment(r.UserData)
		ri.digest = udataRecord(r.UserData, udataTypeDigest)
		for _, e := range r.Exprs {
			if ct, ok := e.(*expr.Counter); ok {
				ri.Packets += ct.Packets
				ri.Bytes += ct.Bytes
			}
		}
		out = append(out, ri)
	}
	return out, nil
}

// Tagged returns the rules of ch whose tag match accepts.
func (c *Conn) Tagged(ch Chain, match func(tag string) bool) ([]RuleInfo, error) {
	rules, err := c.Rules(ch)
	if err != nil {
		return nil, err
	}
	var out []RuleInfo
	for _, r := range rules {
		if r.Tag != "" && match(r.Tag) {
			out = append(out, r)
		}
	}
	return out, nil
}

// EnsureRules makes ch hold each rule of want, identified by its tag: a
// rule already there with the same tag and expressions is kept as it is
// (same handle, counters running on); one with the same tag and other
// expressions is replaced; a missing one is added. Rules with other tags,
// or none, are not touched. All changes are one transaction; it returns
// how many rules it added.
func (c *Conn) EnsureRules(ch Chain, want []Rule) (added int, err error) {
	seen := map[string]bool{}
	for _, r := range want {
		if err := validateTag(r.Tag); err != nil {
			return 0, err
		}
		if seen[r.Tag] {
			return 0, fmt.Errorf("nft: two rules tagged %q for %s", r.Tag, ch)
		}
		seen[r.Tag] = true
	}
	have, err := c.Rules(ch)
	if err != nil {
		return 0, err
	}
	b := c.Begin()
	for _, r := range want {
		d, err := digest(ch.Table.Family, r.Exprs)
		if err != nil {
			return 0, err
		}
		keep := false
		for _, h := range have {
			if h.Tag != r.Tag {
				continue
			}
			if !keep && bytes.Equal(h.digest, d) {
				keep = true
				continue
			}
			b.DeleteRule(ch, h.Handle) // stale or duplicate
		}
		if !keep {
			b.AddRule(ch, r)
			added++
		}
	}
	if err := b.Commit(); err != nil {
		return 0, err
	}
	return added, nil
}

// DeleteTagged deletes the rules of ch whose tag match accepts, in one
// transaction, and returns how many it deleted. A chain or table that does
// not exist holds no such rules.
func (c *Conn) DeleteTagged(ch Chain, match func(tag string) bool) (int, error) {
	exists, err := c.Chain(ch.Table, ch.Name)
	if err != nil || exists == nil {
		return 0, err
	}
	rules, err := c.Tagged(ch, match)
	if err != nil {
		return 0, err
	}
	b := c.Begin()
	for _, r := range rules {
		b.DeleteRule(ch, r.Handle)
	}
	if err := b.Commit(); err != nil {
		return 0, err
	}
	return len(rules), nil
}

// TagIs returns a match for exactly tag.
func TagIs(tag string) func(string) bool { return func(t string) bool { return t == tag } }

// TagPrefix returns a match for tags starting with prefix.
func TagPrefix(prefix string) func(string) bool {
	return func(t string) bool { return strings.HasPrefix(t, prefix) }
}
