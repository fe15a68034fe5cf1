//go:build !linux

package rtnl

// DialMonitor fails with ErrNotSupported: netlink sockets need Linux.
// NewMonitor over a Transport works here.
func DialMonitor(MonitorConfig) (*Monitor, error) { return nil, notSupported() }
