package main

import (
	"context"
	"flag"
	"fmt"

	"github.com/overlaynet/overlaynet/overlay/wireguard/userspace"
)

func init() {
	register(&command{
		name:     "wireguard",
		summary:  "encrypted overlay: the userspace WireGuard device process (started by create and run, not by hand)",
		synopsis: wireguardSynopsis,
		run:      runWireGuard,
	})
}

const wireguardSynopsis = "wireguard --name DEVICE --mtu MTU --dir STATE_DIR/wireguard"

const wireguardHelp = `
Runs an encrypted overlay's WireGuard device in userspace, on kernels without
WireGuard: a TUN device named --name, and its UAPI socket
/var/run/wireguard/DEVICE.sock (as wg(8) expects), until SIGTERM or until the
TUN device is deleted. It holds --dir's device.lock (with its pid) and logs to
standard error. 'overlayd create --encrypt' starts it in a session of its own,
with its output in --dir/device.log, and configures it over the socket;
'overlayd run' starts it again if it dies; 'overlayd reset' stops it. It
keeps no state of its own: a new one configured the same way is the same
device.`

func runWireGuard(ctx context.Context, e *env, fs *flag.FlagSet, args []string) error {
	var o userspace.Options
	var mtu uint64
	fs.StringVar(&o.Name, "name", "", "the device's name (and its UAPI socket's)")
	fs.Uint64Var(&mtu, "mtu", 1420, "the device's MTU")
	fs.StringVar(&o.Dir, "dir", "", "the node's WireGuard directory (its lock)")
	setUsage(fs, wireguardSynopsis, wireguardHelp)
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	switch {
	case len(pos) > 0:
		return fmt.Errorf("%w: unexpected arguments %q", errUsage, pos)
	case o.Name == "" || o.Dir == "":
		return fmt.Errorf("%w: --name and --dir are required", errUsage)
	case mtu < 576 || mtu > 65535:
		return fmt.Errorf("%w: --mtu %d out of range 576..65535", errUsage, mtu)
	}
	o.MTU = uint32(mtu)
	if o.Logger, err = e.global.logger(e.stderr); err != nil {
		return err
	}
	return userspace.Run(ctx, o, nil)
}
