package main

import (
	"errors"
	"fmt"

	"github.com/containernetworking/cni/pkg/types"
	"github.com/overlaynet/overlaynet/overlay"
	"github.com/overlaynet/overlaynet/overlay/ipam"
	"github.com/overlaynet/overlaynet/overlay/registry"
)

// Plugin-specific error codes (the CNI spec reserves 100 and up for them).
const (
	errNotCreated      uint = 100 // no overlay on this node
	errAddressTaken    uint = 101 // the address is another container's
	errAddressOutside  uint = 102 // outside the subnet, or reserved
	errNoAddress       uint = 103 // every block claimed, ours full
	errInterfaceExists uint = 104 // CNI_IFNAME exists, or ADD twice
	errRegistry        uint = 105 // the registry failed
	errDelegate        uint = 106 // the delegated IPAM plugin failed
	errCheckFailed     uint = 107 // CHECK found differences
	errNotReady        uint = 50  // STATUS: the spec's "plugin not available"
)

// cniError returns the spec's error object for err, choosing the code from
// what err wraps; msg says what was being done.
func cniError(msg string, err error) *types.Error {
	var te *types.Error
	if errors.As(err, &te) {
		return te
	}
	code := types.ErrInternal
	switch {
	case errors.Is(err, overlay.ErrNotCreated):
		code = errNotCreated
	case errors.Is(err, ipam.ErrOutside):
		code = errAddressOutside
	case errors.Is(err, registry.ErrConflict), errors.Is(err, ipam.ErrInUse):
		code = errAddressTaken
	case errors.Is(err, ipam.ErrExhausted):
		code = errNoAddress
	case errors.Is(err, overlay.ErrExists), errors.Is(err, overlay.ErrInterfaceExists):
		code = errInterfaceExists
	case errors.Is(err, overlay.ErrNetNSNotFound):
		code = types.ErrUnknownContainer
	case errors.Is(err, overlay.ErrOwnNetNS):
		code = types.ErrInvalidNetNS
	case errors.Is(err, registry.ErrUnavailable):
		code = types.ErrTryAgainLater
	}
	return types.NewError(code, fmt.Sprintf("overlaynet: %s: %v", msg, err), "")
}

// newError is a spec error with a formatted message.
func newError(code uint, format string, args ...any) *types.Error {
	return types.NewError(code, "overlaynet: "+fmt.Sprintf(format, args...), "")
}
