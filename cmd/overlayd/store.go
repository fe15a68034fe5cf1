package main

import daemonlib "github.com/overlaynet/overlaynet/overlay/daemon"

// storeURL returns --store with, for an etcd URL that names no vni, the VNI
// of the overlay recorded in stateDir (daemon.StoreURL).
func storeURL(store, stateDir string) string { return daemonlib.StoreURL(store, stateDir) }

// storeURLVNI returns --store with vni added if it is an etcd URL naming no
// vni (daemon.StoreURLVNI).
func storeURLVNI(store string, vni uint32) string { return daemonlib.StoreURLVNI(store, vni) }
