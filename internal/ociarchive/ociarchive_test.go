package ociarchive

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestNormalize(t *testing.T) {
	for _, tc := range []struct {
		in, want string
		err      string
	}{
		{in: "busybox", want: "docker.io/library/busybox:latest"},
		{in: "busybox:1.36", want: "docker.io/library/busybox:1.36"},
		{in: "overlaynet/overlaynet:v1", want: "docker.io/overlaynet/overlaynet:v1"},
		{in: "registry.k8s.io/pause:3.10", want: "registry.k8s.io/pause:3.10"},
		{in: "localhost/overlaynet", want: "localhost/overlaynet:latest"},
		{in: "host:5000/a/b", want: "host:5000/a/b:latest"},
		{in: "ghcr.io/a/b@sha256:" + strings.Repeat("0", 64), want: "ghcr.io/a/b@sha256:" + strings.Repeat("0", 64)},
		{in: "quay.io/x:Tag_1", want: "quay.io/x:Tag_1"},
		{in: "", err: "without a name"},
		{in: "Busybox", err: "lower case"},
		{in: "a b", err: "white space"},
		{in: "busybox:", err: "empty tag"},
		{in: "/busybox", err: "empty path element"},
		{in: "a//b", err: "empty path element"},
	} {
		got, err := Normalize(tc.in)
		switch {
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("Normalize(%q) = %q, %v; want an error about %q", tc.in, got, err, tc.err)
		case tc.err == "" && (err != nil || got != tc.want):
			t.Errorf("Normalize(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}

// testImage is busybox with a few applets, a file from bytes and a
// directory of its own.
func testImage(t *testing.T, name string) Image {
	t.Helper()
	if _, err := os.Stat("/bin/busybox"); err != nil {
		t.Skip("needs /bin/busybox (busybox-static)")
	}
	return Image{
		Name:   name,
		Config: Config{Entrypoint: []string{"/bin/sh", "-c"}, Cmd: []string{"cat /etc/greeting"}, Env: []string{"PATH=/bin"}},
		Layers: [][]Entry{
			{
				File("/bin/busybox", "/bin/busybox", 0o755),
				Symlink("bin/sh", "busybox"),
				Symlink("bin/cat", "busybox"),
				Dir("tmp", 0o1777),
			},
			{Bytes("etc/greeting", []byte("hello from the archive\n"), 0o644)},
		},
	}
}

// readArchive returns an archive's files by name.
func readArchive(t *testing.T, b []byte) map[string][]byte {
	t.Helper()
	files := map[string][]byte{}
	tr := tar.NewReader(bytes.NewReader(b))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return files
		}
		if err != nil {
			t.Fatal(err)
		}
		data, _ := io.ReadAll(tr)
		files[h.Name] = data
	}
}

func blobPath(digest string) string { return "blobs/sha256/" + strings.TrimPrefix(digest, "sha256:") }

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(s[:])
}

// TestWrite: the archive is an OCI layout whose every blob has the digest
// it is named by, whose index names the image for containerd, whose
// manifest.json (Docker's) names the same config and layers, whose config
// lists the layers' digests and the run configuration, and whose layers
// hold the entries with their parents, modes and link targets. The same
// input gives the same bytes.
func TestWrite(t *testing.T) {
	img := testImage(t, "overlaynet/test:v1")
	var a, b bytes.Buffer
	if err := Write(&a, img); err != nil {
		t.Fatal(err)
	}
	if err := Write(&b, img); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Error("two writes of the same image differ")
	}
	files := readArchive(t, a.Bytes())
	if string(files["oci-layout"]) != `{"imageLayoutVersion":"1.0.0"}` {
		t.Errorf("oci-layout: %s", files["oci-layout"])
	}
	for name, data := range files {
		if strings.HasPrefix(name, "blobs/sha256/") && !strings.HasSuffix(name, "/") && blobPath(sha(data)) != name {
			t.Errorf("blob %s has digest %s", name, sha(data))
		}
	}
	var index struct {
		MediaType string       `json:"mediaType"`
		Manifests []descriptor `json:"manifests"`
	}
	if err := json.Unmarshal(files["index.json"], &index); err != nil || index.MediaType != MediaTypeIndex || len(index.Manifests) != 1 {
		t.Fatalf("index.json: %v: %s", err, files["index.json"])
	}
	md := index.Manifests[0]
	if md.Annotations[AnnotationImageName] != "docker.io/overlaynet/test:v1" || md.Annotations[AnnotationRefName] != "v1" {
		t.Errorf("index annotations %v", md.Annotations)
	}
	var manifest struct {
		Config descriptor   `json:"config"`
		Layers []descriptor `json:"layers"`
	}
	mb := files[blobPath(md.Digest)]
	if err := json.Unmarshal(mb, &manifest); err != nil || int64(len(mb)) != md.Size || len(manifest.Layers) != 2 {
		t.Fatalf("manifest: %v (%d bytes, descriptor says %d): %s", err, len(mb), md.Size, mb)
	}
	var docker []dockerManifest
	if err := json.Unmarshal(files["manifest.json"], &docker); err != nil || len(docker) != 1 {
		t.Fatalf("manifest.json: %v: %s", err, files["manifest.json"])
	}
	if docker[0].Config != blobPath(manifest.Config.Digest) || len(docker[0].Layers) != 2 ||
		docker[0].Layers[0] != blobPath(manifest.Layers[0].Digest) || docker[0].RepoTags[0] != "docker.io/overlaynet/test:v1" {
		t.Errorf("manifest.json %+v does not match the OCI manifest %+v", docker[0], manifest)
	}
	var config struct {
		Architecture string `json:"architecture"`
		OS           string `json:"os"`
		Config       Config `json:"config"`
		RootFS       struct {
			DiffIDs []string `json:"diff_ids"`
		} `json:"rootfs"`
	}
	if err := json.Unmarshal(files[blobPath(manifest.Config.Digest)], &config); err != nil {
		t.Fatal(err)
	}
	if config.OS != "linux" || config.Architecture == "" || config.Config.Cmd[0] != "cat /etc/greeting" || config.Config.Entrypoint[0] != "/bin/sh" {
		t.Errorf("config %+v", config)
	}
	if len(config.RootFS.DiffIDs) != 2 || config.RootFS.DiffIDs[0] != manifest.Layers[0].Digest {
		t.Errorf("diff_ids %v, layers %v", config.RootFS.DiffIDs, manifest.Layers)
	}
	type entry struct {
		typ  byte
		mode int64
		link string
		size int64
	}
	got := map[string]entry{}
	tr := tar.NewReader(bytes.NewReader(files[blobPath(manifest.Layers[0].Digest)]))
	var order []string
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		got[h.Name] = entry{h.Typeflag, h.Mode, h.Linkname, h.Size}
		order = append(order, h.Name)
		if h.Uid != 0 || h.Gid != 0 || h.ModTime.Unix() != 0 {
			t.Errorf("%s: owner %d:%d, time %v", h.Name, h.Uid, h.Gid, h.ModTime)
		}
	}
	st, _ := os.Stat("/bin/busybox")
	want := map[string]entry{
		"bin/":        {tar.TypeDir, 0o755, "", 0},
		"bin/busybox": {tar.TypeReg, 0o755, "", st.Size()},
		"bin/cat":     {tar.TypeSymlink, 0o777, "busybox", 0},
		"bin/sh":      {tar.TypeSymlink, 0o777, "busybox", 0},
		"tmp/":        {tar.TypeDir, 0o1777 & 0o777, "", 0},
	}
	if len(got) != len(want) {
		t.Errorf("layer 0 holds %v, want %v", order, want)
	}
	for name, w := range want {
		if g, ok := got[name]; !ok || g.typ != w.typ || g.mode&0o777 != w.mode || g.link != w.link || g.size != w.size {
			t.Errorf("layer 0: %s = %+v (present %v), want %+v", name, g, ok, w)
		}
	}
	if order[0] != "bin/" {
		t.Errorf("layer 0 order %v: parents first", order)
	}
}

// TestWriteRefuses: bad entries and names are errors naming the problem,
// and WriteFile leaves no file behind.
func TestWriteRefuses(t *testing.T) {
	for _, tc := range []struct {
		name string
		img  Image
		err  string
	}{
		{"no name", Image{Layers: [][]Entry{{Bytes("a", nil, 0o644)}}}, "without a name"},
		{"dotdot", Image{Name: "x", Layers: [][]Entry{{Bytes("../etc/passwd", nil, 0o644)}}}, "leaves the image's root"},
		{"root", Image{Name: "x", Layers: [][]Entry{{Dir("/", 0o755)}}}, "names the root"},
		{"twice", Image{Name: "x", Layers: [][]Entry{{Bytes("a", nil, 0o644), Bytes("/a", nil, 0o644)}}}, "listed twice"},
		{"parent file", Image{Name: "x", Layers: [][]Entry{{Bytes("a", nil, 0o644), Bytes("a/b", nil, 0o644)}}}, "not a directory"},
		{"link", Image{Name: "x", Layers: [][]Entry{{{Path: "l", Mode: fs.ModeSymlink}}}}, "without a target"},
		{"device", Image{Name: "x", Layers: [][]Entry{{{Path: "d", Mode: fs.ModeDevice}}}}, "unsupported mode"},
		{"source", Image{Name: "x", Layers: [][]Entry{{File("a", "/nonexistent/file", 0o644)}}}, "no such file"},
	} {
		path := filepath.Join(t.TempDir(), "img.tar")
		err := WriteFile(path, tc.img)
		if err == nil || !strings.Contains(err.Error(), tc.err) || !strings.HasPrefix(err.Error(), "ociarchive: ") {
			t.Errorf("%s: %v, want an ociarchive error about %q", tc.name, err, tc.err)
		}
		if entries, _ := os.ReadDir(filepath.Dir(path)); len(entries) != 0 {
			t.Errorf("%s: left %v", tc.name, entries)
		}
	}
	if err := Write(io.Discard); err == nil {
		t.Error("Write of no image succeeded")
	}
}
