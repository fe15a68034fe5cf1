package kubetest

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/overlaynet/overlaynet/internal/etcdtest"
)

// writePKI writes the cluster's CA, the API server's serving and kubelet
// client certificates, the service-account keys, the admin's token and the
// control plane's kubeconfigs.
func (c *Cluster) writePKI() error {
	var err error
	if c.ca, err = newCA(); err != nil {
		return err
	}
	c.CA = c.ca.certPEM
	c.CAFile = filepath.Join(c.Dir, "ca.crt")
	files := map[string][]byte{"ca.crt": c.ca.certPEM, "ca.key": c.ca.keyPEM}
	serving, servingKey, err := c.ca.issue(certSpec{
		cn: "kube-apiserver", server: true,
		ips: []net.IP{net.ParseIP(APIServerIP), net.ParseIP(KubernetesServiceIP), net.ParseIP("127.0.0.1")},
		dns: []string{"kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local", "localhost"},
	})
	if err != nil {
		return err
	}
	files["apiserver.crt"], files["apiserver.key"] = serving, servingKey
	kc, kcKey, err := c.ca.issue(certSpec{cn: "kube-apiserver-kubelet-client", orgs: []string{"system:masters"}})
	if err != nil {
		return err
	}
	files["apiserver-kubelet-client.crt"], files["apiserver-kubelet-client.key"] = kc, kcKey
	if files["sa.key"], files["sa.pub"], err = serviceAccountKeys(); err != nil {
		return err
	}
	c.AdminToken = randomToken()
	files["tokens.csv"] = []byte(c.AdminToken + ",admin,admin-uid,system:masters\n")
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(c.Dir, name), b, 0o600); err != nil {
			return fmt.Errorf("kubetest: %w", err)
		}
	}
	c.AdminKubeconfig = filepath.Join(c.Dir, "admin.kubeconfig")
	if err := writeKubeconfig(c.AdminKubeconfig, c.Server, c.CA, credentials{token: c.AdminToken}); err != nil {
		return err
	}
	for file, cn := range map[string]string{
		"controller-manager.kubeconfig": "system:kube-controller-manager",
		"scheduler.kubeconfig":          "system:kube-scheduler",
		"kube-proxy.kubeconfig":         "system:kube-proxy",
	} {
		if err := c.certKubeconfig(filepath.Join(c.Dir, file), certSpec{cn: cn}); err != nil {
			return err
		}
	}
	return nil
}

// certKubeconfig writes a kubeconfig whose user is a client certificate
// the CA issues.
func (c *Cluster) certKubeconfig(path string, s certSpec) error {
	cert, key, err := c.ca.issue(s)
	if err != nil {
		return err
	}
	return writeKubeconfig(path, c.Server, c.CA, credentials{certPEM: cert, keyPEM: key})
}

func randomToken() string {
	b := make([]byte, 16)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// inControlPlane returns argv run in the control plane's network namespace.
func (c *Cluster) inControlPlane(argv ...string) []string {
	return append([]string{"nsenter", "--net=" + c.NetNSPath, "--"}, argv...)
}

// startControlPlane starts etcd and the API server, waits until the API
// server is ready, then starts the controller manager and the scheduler.
func (c *Cluster) startControlPlane(t testing.TB) error {
	t.Helper()
	c.etcd = etcdtest.Start(t, etcdtest.Options{NetNS: c.NetNSPath, Host: "127.0.0.1"})
	d := func(name string) string { return filepath.Join(c.Dir, name) }
	args := []string{filepath.Join(c.Bin, "kube-apiserver"),
		"--etcd-servers=http://" + c.etcd.Endpoint(),
		"--bind-address=0.0.0.0", "--secure-port=6443", "--advertise-address=" + APIServerIP,
		"--tls-cert-file=" + d("apiserver.crt"), "--tls-private-key-file=" + d("apiserver.key"),
		"--client-ca-file=" + c.CAFile,
		"--token-auth-file=" + d("tokens.csv"),
		"--authorization-mode=Node,RBAC",
		"--enable-admission-plugins=NodeRestriction",
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file=" + d("sa.pub"), "--service-account-signing-key-file=" + d("sa.key"),
		"--service-cluster-ip-range=" + ServiceCIDR,
		"--allow-privileged=true",
		"--kubelet-preferred-address-types=InternalIP",
		"--kubelet-client-certificate=" + d("apiserver-kubelet-client.crt"), "--kubelet-client-key=" + d("apiserver-kubelet-client.key"),
		"--cert-dir=" + d("apiserver-certs"),
		"--profiling=false",
	}
	var err error
	if c.apiserver, err = startProc("kube-apiserver", d("kube-apiserver.log"), c.inControlPlane(append(args, c.opts.APIServerArgs...)...)); err != nil {
		return err
	}
	t.Cleanup(func() { c.apiserver.stop(5 * time.Second) })
	began := time.Now()
	err = waitFor(60*time.Second, 50*time.Millisecond, func() (error, error) {
		if !c.apiserver.running() {
			return c.apiserver.exitErr(), nil
		}
		status, body, err := c.Request("GET", "/readyz", c.AdminToken, nil)
		if err != nil {
			return nil, err
		}
		if status != 200 {
			return nil, fmt.Errorf("readyz: %d: %s", status, body)
		}
		return nil, nil
	})
	if err != nil {
		return fmt.Errorf("kubetest: API server not ready: %w", err)
	}
	t.Logf("kubetest: API server ready in %v", time.Since(began).Round(time.Millisecond))

	kcm := []string{filepath.Join(c.Bin, "kube-controller-manager"),
		"--kubeconfig=" + d("controller-manager.kubeconfig"),
		"--leader-elect=false", "--secure-port=0",
		"--controllers=*",
		"--use-service-account-credentials=true",
		"--allocate-node-cidrs", "--cluster-cidr=" + ClusterCIDR, fmt.Sprintf("--node-cidr-mask-size=%d", NodeCIDRMaskSize),
		"--service-cluster-ip-range=" + ServiceCIDR,
		"--service-account-private-key-file=" + d("sa.key"),
		"--root-ca-file=" + c.CAFile,
		"--cluster-signing-cert-file=" + c.CAFile, "--cluster-signing-key-file=" + d("ca.key"),
	}
	if c.opts.NoPodCIDRs {
		kcm = append(kcm, "--allocate-node-cidrs=false")
	}
	if c.kcm, err = startProc("kube-controller-manager", d("kube-controller-manager.log"), c.inControlPlane(append(kcm, c.opts.ControllerManagerArgs...)...)); err != nil {
		return err
	}
	t.Cleanup(func() { c.kcm.stop(5 * time.Second) })
	sched := []string{filepath.Join(c.Bin, "kube-scheduler"),
		"--kubeconfig=" + d("scheduler.kubeconfig"), "--leader-elect=false", "--secure-port=0"}
	if c.scheduler, err = startProc("kube-scheduler", d("kube-scheduler.log"), c.inControlPlane(sched...)); err != nil {
		return err
	}
	t.Cleanup(func() { c.scheduler.stop(5 * time.Second) })
	return nil
}
