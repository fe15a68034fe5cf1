package main

import (
	"context"
	"flag"
	"fmt"

	"github.com/overlaynet/overlaynet/overlay"
)

func init() {
	register(&command{
		name:     "rekey",
		summary:  "encrypted overlay: replace this node's WireGuard key, without a gap longer than a handshake",
		synopsis: rekeySynopsis,
		run:      runRekey,
	})
}

const rekeySynopsis = "rekey [--settle 2s]"

const rekeyHelp = `
Replaces this node's WireGuard key (an overlay created with --encrypt): a new
key is made in --state-dir/wireguard (mode 0600) and published in --store as
the node's next key; every node's 'overlayd run' adds it as a peer; after
--settle the device switches to it and it is published as the node's key,
when the other nodes move this node's tunnel address to it and drop the old
one. Traffic pauses for about one handshake. A rekey killed half-way is
finished or undone by the next rekey or by 'overlayd run'.`

func runRekey(ctx context.Context, e *env, fs *flag.FlagSet, args []string) error {
	settle := fs.Duration("settle", overlay.DefaultRekeySettle, "wait between publishing the next key and switching to it (the other nodes add it meanwhile)")
	setUsage(fs, rekeySynopsis, rekeyHelp)
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return fmt.Errorf("%w: unexpected arguments %q", errUsage, pos)
	}
	if *settle < 0 {
		return fmt.Errorf("%w: --settle %v is negative", errUsage, *settle)
	}
	n, done, err := e.node(ctx, true)
	if err != nil {
		return err
	}
	defer done()
	old, next, err := n.Rekey(ctx, *settle)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "rekeyed: public key %s (was %s)\n", next, old)
	return nil
}
