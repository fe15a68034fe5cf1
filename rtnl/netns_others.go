//go:build !linux

package rtnl

// Network namespaces are Linux's: here every function that would open,
// enter, create or delete one fails with ErrNotSupported.

// OpenNetNS fails with ErrNotSupported.
func OpenNetNS(string) (*NetNS, error) { return nil, notSupported() }

// CurrentNetNS fails with ErrNotSupported.
func CurrentNetNS() (*NetNS, error) { return nil, notSupported() }

// Close does nothing: no NetNS is ever opened here.
func (ns *NetNS) Close() error { return nil }

// Do fails with ErrNotSupported without calling fn.
func (ns *NetNS) Do(func() error) error { return notSupported() }

// CreateNetNS fails with ErrNotSupported.
func CreateNetNS(string, string) (*NetNS, error) { return nil, notSupported() }

// DeleteNetNS fails with ErrNotSupported.
func DeleteNetNS(string, string) error { return notSupported() }
