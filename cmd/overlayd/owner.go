package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/overlaynet/overlaynet/overlay/registry/kubenode"
)

// Uninstall: a DaemonSet's pods cannot run anything once their DaemonSet
// is deleted, so the daemon decides as it stops (SIGTERM) whether it stops
// for good. It reads its DaemonSet at start (its UID) and again when told
// to stop: gone, being deleted, replaced by another of the same name, or
// no longer readable with its credentials (the manifest's ServiceAccount
// and bindings are deleted with it) means an uninstall, and the daemon
// removes what the DaemonSet installed on the node. Unchanged means a
// restart or an update: everything stays. An answer it cannot get (the API
// server unreachable) leaves everything in place.

// ownerWatch is the DaemonSet that runs this daemon, as read at start.
type ownerWatch struct {
	kubeconfig, node, namespace, name string
	uid                               string
}

// watchOwner reads the DaemonSet spec names ("NAMESPACE/NAME"; nil for
// ""), retrying for a few seconds; if it cannot be read, cleanup on
// uninstall is off (logged).
func watchOwner(ctx context.Context, e *env, spec string, log *slog.Logger) (*ownerWatch, error) {
	if spec == "" {
		return nil, nil
	}
	ns, name, ok := strings.Cut(spec, "/")
	if !ok || ns == "" || name == "" || strings.Contains(name, "/") {
		return nil, fmt.Errorf("%w: --owner-daemonset %q: want NAMESPACE/NAME", errUsage, spec)
	}
	path, ok := strings.CutPrefix(e.global.store, "kube:")
	if !ok {
		return nil, fmt.Errorf("%w: --owner-daemonset needs a kube: --store", errUsage)
	}
	w := &ownerWatch{kubeconfig: path, node: e.global.nodeName, namespace: ns, name: name}
	var err error
	for try := range 5 {
		var o kubeOwner
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		o, err = readDaemonSet(rctx, w.kubeconfig, w.node, ns, name)
		cancel()
		if err == nil {
			w.uid = o.uid
			log.Info("cleanup when the DaemonSet is deleted", "daemonset", spec, "uid", o.uid)
			return w, nil
		}
		if try < 4 {
			time.Sleep(time.Second)
		}
	}
	log.Warn("cannot read this daemon's DaemonSet: it will not clean up when the DaemonSet is deleted", "daemonset", spec, "err", err)
	return nil, nil
}

// deleted says, as the daemon stops, whether its DaemonSet is being
// deleted (see above).
func (w *ownerWatch) deleted(log *slog.Logger) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	o, err := readDaemonSet(ctx, w.kubeconfig, w.node, w.namespace, w.name)
	switch {
	case errors.Is(err, errOwnerGone), errors.Is(err, errOwnerDenied):
		log.Info("this daemon's DaemonSet is deleted: uninstalling from this node", "why", err)
		return true
	case err != nil:
		log.Warn("cannot tell whether this daemon's DaemonSet is deleted: leaving everything in place", "err", err)
		return false
	case o.deleting || o.uid != w.uid:
		log.Info("this daemon's DaemonSet is being deleted or was replaced: uninstalling from this node", "deleting", o.deleting, "uid", o.uid, "was", w.uid)
		return true
	}
	log.Info("this daemon's DaemonSet is still there: stopping, everything stays")
	return false
}

// endpointsGrace is how long an uninstall waits for the runtime to take
// the pods being deleted off the network (CNI DEL) before it removes the
// plugin: a pod whose sandbox the runtime stops after that fails its
// teardown for want of the plugin.
const endpointsGrace = 15 * time.Second

// uninstall removes from this node what the DaemonSet installed, once the
// pods being deleted with it are off the network (at most endpointsGrace;
// those left are logged): the CNI conflist and plugin install-cni recorded
// (the runtime gives no more pods this network), the overlay with its
// endpoints, rules and state (reset), the node's Kubernetes state, then
// overlaynet's annotations on its Node (if the credentials still allow
// it).
func uninstall(e *env, log *slog.Logger) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second+endpointsGrace)
	defer cancel()
	n, done, err := e.node(ctx, true)
	if err != nil {
		return err
	}
	defer done()
	deadline := time.Now().Add(endpointsGrace)
	for {
		eps, err := n.Endpoints()
		if err != nil || len(eps) == 0 {
			break
		}
		if time.Now().After(deadline) {
			var names []string
			for _, ep := range eps {
				names = append(names, ep.ContainerID)
			}
			log.Warn("pods still on the network: removing it anyway (their sandboxes' teardown will fail: delete them before uninstalling)", "containers", names)
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	var errs []error
	if err := removeInstalled(e.global.stateDir, log); err != nil {
		errs = append(errs, fmt.Errorf("remove the CNI files: %w", err))
	}
	if err := n.Reset(ctx); err != nil {
		errs = append(errs, fmt.Errorf("reset: %w", err))
	}
	if err := kubenode.Remove(e.global.stateDir); err != nil {
		errs = append(errs, err)
	}
	if len(errs) == 0 {
		removeStateDir(e.global.stateDir, log)
	}
	path, _ := strings.CutPrefix(e.global.store, "kube:")
	if err := unannotate(ctx, path, e.global.nodeName); err != nil {
		log.Info("overlaynet's annotations stay on this node's Node (the credentials are gone with the DaemonSet)", "err", err)
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	log.Info("uninstalled from this node")
	return nil
}

// removeStateDir removes the state directory once reset emptied it (it is
// left, logged, if anything else is there).
func removeStateDir(dir string, log *slog.Logger) {
	os.Remove(filepath.Join(dir, "run.lock"))
	if err := os.Remove(dir); err != nil && !errors.Is(err, os.ErrNotExist) {
		log.Info("the state directory stays", "dir", dir, "err", err)
	}
}
