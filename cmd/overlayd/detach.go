package main

import (
	"context"
	"flag"
	"fmt"
)

func init() {
	register(&command{
		name:     "detach",
		summary:  "remove a container's veth pair (and the netns attach made) and its store records",
		synopsis: detachSynopsis,
		run:      runDetach,
	})
}

const detachSynopsis = "detach NAME"

const detachHelp = `
Undoes attach NAME: deletes the veth pair, the container namespace if attach
created it (an existing one is kept), the endpoint's state, and its IP -> MAC
and MAC -> VTEP records in --store (only while they still hold its values).
An attach of NAME killed half-way is undone (and detach succeeds), a detach
killed half-way finished.`

func runDetach(ctx context.Context, e *env, fs *flag.FlagSet, args []string) error {
	setUsage(fs, detachSynopsis, detachHelp)
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	name, err := oneName(pos)
	if err != nil {
		return err
	}
	n, done, err := e.node(ctx, true)
	if err != nil {
		return err
	}
	defer done()
	if err := n.Detach(ctx, name); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "detached %s\n", name)
	return nil
}
