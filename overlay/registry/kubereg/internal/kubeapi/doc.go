// Package kubeapi is overlaynet's own client of the Kubernetes API server:
// the little of it the node daemon uses, over net/http and encoding/json,
// without client-go or apimachinery. It owns
//
//   - the configuration: a kubeconfig file (Load) or a pod's service
//     account (InCluster), and the TLS and bearer-token credentials they
//     name (a token file re-read every minute: bound tokens rotate);
//   - the transport: one http.Client per Client, TLS 1.2 or later, HTTP/2
//     with pings that find a dead connection, JSON only, a user agent;
//   - the API's errors: a Status answer as a *StatusError, and which errors
//     are the server's being unavailable (Temporary);
//   - GET and PATCH (merge and strategic merge) of one object;
//   - the list and watch of Nodes (WatchNodes), as client-go's informer
//     does it: a paged list, a watch from its resourceVersion with
//     bookmarks, a re-watch after a dropped connection from the last
//     resourceVersion seen, a relist when that is too old (410 Gone), with
//     deletes of the Nodes gone meanwhile, and no request while idle.
//
// Nodes decode into Node: their metadata and podCIDRs, what overlaynet
// reads, nothing of their status.
package kubeapi
