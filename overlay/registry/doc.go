// Package registry is the contract between the nodes of an overlay and the
// store they share: Registry (which MAC holds an overlay IP, which VTEP holds
// a MAC), Record, the neutral MAC type, the change feed of registries that
// can push changes (ChangeFeed, Change, ChangeKind), the registry errors,
// and OpenRegistry with the schemes implementations register (RegisterScheme).
// Implementations live in subpackages: dirstore (dir:PATH) and etcdreg
// (etcd:// and etcds://). It imports neither rtnl nor any implementation.
package registry
