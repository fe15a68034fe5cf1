package main

import (
	"context"
	"log/slog"
	"os"
	"time"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/overlaynet/overlaynet/overlay"
	"github.com/overlaynet/overlaynet/overlay/registry"
)

// opTimeout bounds one plugin invocation.
const opTimeout = 60 * time.Second

// invocation is one run of the plugin: the network's config, a logger, the
// invocation's deadline and, once opened, this node with its store.
type invocation struct {
	conf   *netConf
	log    *slog.Logger
	ctx    context.Context
	cancel context.CancelFunc
	node   *overlay.Node
	reg    registry.Registry
	close  func()
}

// start reads the config of args and starts the invocation's deadline. Its
// error is the plugin's answer; end releases what the call holds.
func start(args *skel.CmdArgs) (*invocation, error) {
	c, err := loadConf(args)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	return &invocation{conf: c, log: c.logger(os.Stderr), ctx: ctx, cancel: cancel}, nil
}

// open opens this node and its store (netConf.node).
func (cl *invocation) open() (err error) {
	cl.node, cl.reg, cl.close, err = cl.conf.node(cl.ctx, cl.log)
	return err
}

// begin is start, then check (if set) on the config before anything is
// opened, then open: the preamble of ADD, CHECK, DEL and GC.
func begin(args *skel.CmdArgs, check func(*netConf) error) (*invocation, error) {
	cl, err := start(args)
	if err != nil {
		return nil, err
	}
	if check != nil {
		err = check(cl.conf)
	}
	if err == nil {
		err = cl.open()
	}
	if err != nil {
		cl.end()
		return nil, err
	}
	return cl, nil
}

// end closes the store (if opened) and ends the deadline.
func (cl *invocation) end() {
	if cl.close != nil {
		cl.close()
	}
	cl.cancel()
}
