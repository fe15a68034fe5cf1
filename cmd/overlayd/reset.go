package main

import (
	"context"
	"flag"
	"fmt"
	"time"

	"github.com/overlaynet/overlaynet/overlay"
)

func init() {
	register(&command{
		name:     "reset",
		summary:  "remove everything overlayd created on this node, and this node's store records",
		synopsis: resetSynopsis,
		run:      runReset,
	})
}

const resetSynopsis = "reset"

const resetHelp = `
Removes this node's overlay, but only what overlayd made. It first stops the
node's 'overlayd run' if one runs (the process holding --state-dir's
run.lock: SIGTERM, then SIGKILL after 10 s). Then it finishes or undoes the
operations killed half-way, detaches every endpoint, deletes the vxlan, the
bridge (or just the gateway address on a bridge that existed before) and the
overlay namespace as far as create made them, removes every --store record
pointing at this node's VTEP, and forgets the state in --state-dir. Running
it again, or before create, does nothing.`

// daemonStopWait is how long reset waits for the daemon to exit after
// SIGTERM, and again after SIGKILL.
const daemonStopWait = 10 * time.Second

func runReset(ctx context.Context, e *env, fs *flag.FlagSet, args []string) error {
	setUsage(fs, resetSynopsis, resetHelp)
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return fmt.Errorf("%w: unexpected arguments %q", errUsage, pos)
	}
	pid, err := overlay.StopDaemon(e.global.stateDir, daemonStopWait)
	if err != nil {
		return err
	}
	if pid != 0 {
		fmt.Fprintf(e.stdout, "stopped overlayd run (pid %d)\n", pid)
	}
	n, done, err := e.node(ctx, true)
	if err != nil {
		return err
	}
	defer done()
	if err := n.Reset(ctx); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "reset done\n")
	return nil
}
