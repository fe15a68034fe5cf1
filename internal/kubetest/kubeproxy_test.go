package kubetest

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/overlaynet/overlaynet/internal/nstest"
)

const webManifest = `apiVersion: v1
kind: Pod
metadata: {name: web, namespace: default, labels: {app: web}}
spec:
  nodeName: %s
  terminationGracePeriodSeconds: 0
  containers:
  - name: httpd
    image: ` + BusyboxImage + `
    imagePullPolicy: Never
    command: [sh, -c, 'mkdir -p /www && echo "hello from $(hostname)" > /www/index.html && exec httpd -f -p 8080 -h /www']
    readinessProbe:
      tcpSocket: {port: 8080}
      periodSeconds: 1
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec:
  selector: {app: web}
  ports:
  - {port: 80, targetPort: 8080}
---
apiVersion: v1
kind: Pod
metadata: {name: client, namespace: default}
spec:
  nodeName: %s
  terminationGracePeriodSeconds: 0
  containers:
  - name: c
    image: ` + BusyboxImage + `
    imagePullPolicy: Never
    command: [sleep, infinity]
`

// TestKubeProxy: kube-proxy in nftables mode programs a ClusterIP Service
// in each node's network namespace, and only there (the host's and the
// control plane's rulesets stay as they were); the node itself, and a pod
// on it, reach the Service's pod on the other node through it (the bridge
// plugin and routes between the nodes' podCIDRs are the pod network), and
// the node reaches the API server at the "kubernetes" Service's ClusterIP,
// as an in-cluster client does, with the cluster's CA.
func TestKubeProxy(t *testing.T) {
	Require(t)
	t.Parallel()
	hostRules := nstest.Run(t, "", "nft", "list", "ruleset")
	c := Start(t, Options{Nodes: 2, KubeProxy: true, BridgeCNI: true})
	c.WaitNodesReady(t)
	n1, n2 := c.Nodes[0], c.Nodes[1]
	c.Apply(t, fmt.Sprintf(webManifest, n2.Name, n1.Name))
	c.Kubectl(t, "wait", "--for=condition=Ready", "pod/web", "pod/client", "--timeout=90s")
	clusterIP := strings.TrimSpace(c.Kubectl(t, "get", "service", "web", "-o", "jsonpath={.spec.clusterIP}"))
	if ip := net.ParseIP(clusterIP); ip == nil {
		t.Fatalf("service web: ClusterIP %q", clusterIP)
	}

	for _, n := range c.Nodes {
		Poll(t, 30*time.Second, "kube-proxy's rules for "+clusterIP+" on "+n.Name, func() error {
			rules, err := n.Output("nft", "list", "ruleset")
			if err != nil {
				return err
			}
			if !strings.Contains(rules, "table ip kube-proxy {") || !strings.Contains(rules, clusterIP) {
				return fmt.Errorf("the node's ruleset lacks table ip kube-proxy or %s:\n%s", clusterIP, rules)
			}
			return nil
		})
	}
	// From the node itself (its own network namespace: the OUTPUT path).
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(c.CA)
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return nstest.DialContext(ctx, n1.NetNSPath, network, addr)
		},
		TLSClientConfig:   &tls.Config{RootCAs: pool, ServerName: "kubernetes.default.svc"},
		DisableKeepAlives: true,
	}}
	want := "hello from web"
	Poll(t, 30*time.Second, "node "+n1.Name+" reaches http://"+clusterIP, func() error {
		resp, err := hc.Get("http://" + clusterIP + "/")
		if err != nil {
			return err
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if strings.TrimSpace(string(body)) != want {
			return fmt.Errorf("got %d %q", resp.StatusCode, body)
		}
		return nil
	})
	// From a pod on the node (PREROUTING). busybox wget -T crashes:
	// timeout bounds it instead.
	if out := c.Kubectl(t, "exec", "client", "--", "timeout", "10", "wget", "-q", "-O", "-", "http://"+clusterIP+"/"); strings.TrimSpace(out) != want {
		t.Errorf("pod client on %s through %s: %q, want %q", n1.Name, clusterIP, out, want)
	}

	// The API server through the kubernetes Service, from the node, as an
	// in-cluster client (a hostNetwork DaemonSet's) reaches it.
	resp, err := hc.Get("https://" + KubernetesServiceIP + "/readyz")
	if err != nil {
		t.Fatalf("the API server at %s from %s: %v", KubernetesServiceIP, n1.Name, err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "ok" {
		t.Errorf("GET https://%s/readyz from %s: %d %q", KubernetesServiceIP, n1.Name, resp.StatusCode, body)
	}

	if after := nstest.Run(t, "", "nft", "list", "ruleset"); after != hostRules {
		t.Errorf("the host's ruleset changed:\n%s\n->\n%s", hostRules, after)
	}
	if out := nstest.Run(t, c.NetNS, "nft", "list", "ruleset"); strings.Contains(out, "kube-proxy") {
		t.Errorf("kube-proxy rules in the control plane's namespace:\n%s", out)
	}
}
