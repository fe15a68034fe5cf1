package kubetest

import (
	"fmt"
	"os/exec"
	"strings"

	"github.com/overlaynet/overlaynet/internal/ociarchive"
)

// writeImages writes the archive every node imports: PauseImage (busybox
// sleeping, containerd's sandbox_image) and BusyboxImage (busybox-static
// with a link per applet, sh by default).
func writeImages(path string) error {
	out, err := exec.Command("/bin/busybox", "--list").Output()
	if err != nil {
		return fmt.Errorf("kubetest: busybox --list: %w", err)
	}
	busybox := []ociarchive.Entry{
		ociarchive.File("bin/busybox", "/bin/busybox", 0o755),
		ociarchive.Bytes("etc/passwd", []byte("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"), 0o644),
		ociarchive.Bytes("etc/group", []byte("root:x:0:\nnogroup:x:65534:\n"), 0o644),
		ociarchive.Dir("tmp", 0o1777),
		ociarchive.Dir("root", 0o700),
	}
	for _, applet := range strings.Fields(string(out)) {
		if applet != "busybox" {
			busybox = append(busybox, ociarchive.Symlink("bin/"+applet, "busybox"))
		}
	}
	env := []string{"PATH=/bin"}
	return ociarchive.WriteFile(path,
		ociarchive.Image{
			Name:   PauseImage,
			Config: ociarchive.Config{Entrypoint: []string{"/bin/busybox", "sleep", "infinity"}, Env: env},
			Layers: [][]ociarchive.Entry{{ociarchive.File("bin/busybox", "/bin/busybox", 0o755)}},
		},
		ociarchive.Image{
			Name:   BusyboxImage,
			Config: ociarchive.Config{Cmd: []string{"sh"}, Env: env},
			Layers: [][]ociarchive.Entry{busybox},
		})
}
