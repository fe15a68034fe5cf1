// Command mkimage writes overlaynet's container image without a container
// engine (make image): one layer holding the static binaries overlayd and
// overlaynet in /bin, entrypoint /bin/overlayd, no shell; an archive that
// `ctr images import` and `podman load` accept (internal/ociarchive), for
// nodes that load images offline.
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/overlaynet/overlaynet/internal/ociarchive"
)

func main() {
	out := flag.String("o", "bin/overlaynet-image.tar", "the archive to write")
	name := flag.String("name", "docker.io/overlaynet/overlaynet:dev", "the image's reference")
	arch := flag.String("arch", "", "the image's GOARCH (default: this machine's)")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "Usage: mkimage [-o ARCHIVE] [-name REF] [-arch GOARCH] BINARY...\n\nEach BINARY goes to /bin; the entrypoint is /bin/overlayd.\n\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() == 0 {
		flag.Usage()
		os.Exit(2)
	}
	var layer []ociarchive.Entry
	for _, b := range flag.Args() {
		if _, err := os.Stat(b); err != nil {
			fmt.Fprintf(os.Stderr, "mkimage: %v\n", err)
			os.Exit(1)
		}
		layer = append(layer, ociarchive.File("bin/"+filepath.Base(b), b, 0o755))
	}
	img := ociarchive.Image{
		Name: *name,
		Arch: *arch,
		Config: ociarchive.Config{
			Entrypoint: []string{"/bin/overlayd"},
			Env:        []string{"PATH=/bin"},
			Labels:     map[string]string{"org.opencontainers.image.source": "https://github.com/overlaynet/overlaynet"},
		},
		Layers: [][]ociarchive.Entry{layer},
	}
	if err := ociarchive.WriteFile(*out, img); err != nil {
		fmt.Fprintf(os.Stderr, "mkimage: %v\n", err)
		os.Exit(1)
	}
	fmt.Printf("mkimage: %s (%s)\n", *out, *name)
}
