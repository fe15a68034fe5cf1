package main

import (
	"testing"

	"github.com/containernetworking/cni/pkg/skel"
)

// FuzzConf: the plugin's config and CNI_ARGS decoding never panics, on any
// stdin and any CNI_ARGS.
func FuzzConf(f *testing.F) {
	f.Add([]byte(`{"cniVersion":"1.0.0","name":"ovl","type":"overlaynet"}`), "IP=198.51.100.5")
	f.Add([]byte(`{"cniVersion":"1.1.0","name":"ovl","type":"overlaynet","blockBits":26,"runtimeConfig":{"ips":["198.51.100.7/24"]},"args":{"cni":{"ips":["x"]}}}`), "IgnoreUnknown=1;K8S_POD_NAME=a")
	f.Add([]byte(`{"cniVersion":"1.0.0","name":"ovl","type":"overlaynet","prevResult":{"cniVersion":"1.0.0","ips":[{"address":"198.51.100.2/24"}]}}`), "IP=::1")
	f.Add([]byte(`{"cniVersion":"0.3.1","name":"ovl","prevResult":{"ips":[{"version":"4","address":"bad"}]}}`), ";;=")
	f.Add([]byte(`{"cniVersion":"1.0.0","name":"ovl","type":"overlaynet","family":"ipv6","runtimeConfig":{"ips":["198.51.100.7/24","2001:db8:42::7/64","fe80::1%eth0"]}}`), "IP=2001:db8:42::9")
	f.Fuzz(func(t *testing.T, stdin []byte, cniArgs string) {
		c, err := loadConf(&skel.CmdArgs{StdinData: stdin})
		if err != nil {
			return
		}
		c.wantedIPs(cniArgs)
		endpointName(c.Name, cniArgs, "eth0")
	})
}
