// Package etcdv3 speaks the part of etcd's v3 API that etcdreg uses —
// ranges, puts, transactions (nested), leases (grant, revoke, time to
// live, keep-alive), watches and authentication — directly: gRPC framing
// over net/http's HTTP/2 client and hand-written protocol buffers of
// exactly those messages, so that overlayd links no gRPC or protobuf
// runtime. Its API follows etcd's clientv3 where etcdreg uses it.
//
// It owns the connection to the cluster: several endpoints, a call that
// cannot reach one moving to the next with backoff (100 ms growing by 1.6
// to 2 s, jittered), watches and keep-alives resumed there from where they
// were; HTTP/2 pings that notice a dead etcd; TLS with a CA and client
// certificate; a user's token, renewed when etcd rejects it; and etcd's
// errors by name (ErrCompacted, ErrLeaseNotFound, ...).
//
// Files by concern: transport.go (HTTP/2 and gRPC framing, streams),
// wire.go (protobuf encoding), client.go (connection, retries), kv.go,
// txn.go, lease.go, watch.go, auth.go (the calls and their messages),
// errors.go.
package etcdv3
