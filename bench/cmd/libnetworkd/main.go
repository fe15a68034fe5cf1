// Command libnetworkd runs the benchmarks' libnetwork-way miss resolver
// (package bench/internal/libnetwork) in a process of its own, in the
// calling thread's network namespace (run it with nsenter --net=...):
//
//	libnetworkd STORE VXLAN SUBNET
//
// It answers the L3 misses of device VXLAN for addresses in SUBNET from the
// directory store at STORE, prints "ready" once subscribed, and runs until
// SIGTERM or SIGINT. It exits 0 then, or 1 with the error on standard error
// if a receive or a programming call failed (a benchmark fails on it).
package main

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"syscall"

	"github.com/overlaynet/overlaynet/bench/internal/libnetwork"
	"github.com/overlaynet/overlaynet/overlay/registry/dirstore"
)

// receiveBuffer is the socket's forced receive buffer, as the benchmarks'
// other resolvers get.
const receiveBuffer = 32 << 20

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "libnetworkd:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	if len(args) != 3 {
		return fmt.Errorf("usage: libnetworkd STORE VXLAN SUBNET")
	}
	reg, err := dirstore.New(args[0])
	if err != nil {
		return err
	}
	ifi, err := net.InterfaceByName(args[1])
	if err != nil {
		return err
	}
	subnet, err := netip.ParsePrefix(args[2])
	if err != nil {
		return err
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	p, err := libnetwork.Start("", ifi.Index, subnet, reg, receiveBuffer)
	if err != nil {
		return err
	}
	p.Run()
	fmt.Println("ready")
	select {
	case <-sig:
	case <-p.Done():
	}
	note, err := p.Stop()
	if note != "" {
		fmt.Fprintln(os.Stderr, "libnetworkd:", note)
	}
	return err
}
