// Package ociarchive writes container images without a container engine: one
// tar archive holding an OCI image layout (oci-layout, index.json,
// blobs/sha256/...) that also carries Docker's manifest.json, the form
// `docker save` writes since Docker 25. containerd's `ctr images import`
// reads it as an OCI layout and names each image from the index's
// io.containerd.image.name annotation; `podman load` reads it as a Docker
// archive and names each image from its RepoTags. Layers are uncompressed
// tars built from a list of entries, with every owner root and every time
// the image's creation time, so the same input gives the same bytes.
package ociarchive

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"time"
)

// Media types of what the archive holds.
const (
	MediaTypeIndex    = "application/vnd.oci.image.index.v1+json"
	MediaTypeManifest = "application/vnd.oci.image.manifest.v1+json"
	MediaTypeConfig   = "application/vnd.oci.image.config.v1+json"
	MediaTypeLayer    = "application/vnd.oci.image.layer.v1.tar"
)

// Annotations on the index's manifest descriptors.
const (
	// AnnotationImageName is containerd's: the image's full reference.
	AnnotationImageName = "io.containerd.image.name"
	// AnnotationRefName is the OCI layout's: the reference's tag.
	AnnotationRefName = "org.opencontainers.image.ref.name"
)

// Entry is one file system object of a layer.
type Entry struct {
	// Path is where the object is in the image ("bin/busybox" or
	// "/bin/busybox"); missing parent directories are added (0755).
	Path string
	// Mode holds the permission bits and the type: 0 type bits for a
	// regular file, fs.ModeDir or fs.ModeSymlink.
	Mode fs.FileMode
	// Source is a host file whose content a regular file takes; Data is
	// used when Source is empty.
	Source string
	// Data is a regular file's content.
	Data []byte
	// Target is a symbolic link's target.
	Target string
}

// File is a regular file at path with the content of the host file source.
func File(path, source string, perm fs.FileMode) Entry {
	return Entry{Path: path, Mode: perm.Perm(), Source: source}
}

// Bytes is a regular file at path holding data.
func Bytes(path string, data []byte, perm fs.FileMode) Entry {
	return Entry{Path: path, Mode: perm.Perm(), Data: data}
}

// Dir is a directory at path.
func Dir(path string, perm fs.FileMode) Entry {
	return Entry{Path: path, Mode: fs.ModeDir | perm.Perm()}
}

// Symlink is a symbolic link at path pointing to target.
func Symlink(path, target string) Entry {
	return Entry{Path: path, Mode: fs.ModeSymlink | 0o777, Target: target}
}

// Config is what the image's config says about running it.
type Config struct {
	Entrypoint []string          `json:"Entrypoint,omitempty"`
	Cmd        []string          `json:"Cmd,omitempty"`
	Env        []string          `json:"Env,omitempty"`
	WorkingDir string            `json:"WorkingDir,omitempty"`
	User       string            `json:"User,omitempty"`
	Labels     map[string]string `json:"Labels,omitempty"`
}

// Image is one image of an archive.
type Image struct {
	// Name is its reference; a short name is completed as Docker does
	// (Normalize): "busybox" is docker.io/library/busybox:latest.
	Name string
	// Config is its run configuration.
	Config Config
	// Layers are its layers, bottom first.
	Layers [][]Entry
	// Arch is its GOARCH (default: runtime.GOARCH); its OS is linux.
	Arch string
	// Created is its creation time and every entry's modification time
	// (default: the Unix epoch).
	Created time.Time
}

// WriteFile writes the images to path as one archive, atomically (a
// temporary file renamed over path).
func WriteFile(path string, images ...Image) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("ociarchive: %w", err)
	}
	defer os.Remove(f.Name())
	if err := Write(f, images...); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("ociarchive: %w", err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("ociarchive: %w", err)
	}
	return nil
}

// descriptor is an OCI content descriptor.
type descriptor struct {
	MediaType   string            `json:"mediaType"`
	Digest      string            `json:"digest"`
	Size        int64             `json:"size"`
	Annotations map[string]string `json:"annotations,omitempty"`
	Platform    *platform         `json:"platform,omitempty"`
}

type platform struct {
	Architecture string `json:"architecture"`
	OS           string `json:"os"`
}

// dockerManifest is one entry of Docker's manifest.json.
type dockerManifest struct {
	Config   string
	RepoTags []string
	Layers   []string
}

// blob is content of the archive, stored once under blobs/sha256.
type blob struct {
	digest string // sha256:HEX
	data   []byte
}

func newBlob(data []byte) blob {
	sum := sha256.Sum256(data)
	return blob{digest: "sha256:" + hex.EncodeToString(sum[:]), data: data}
}

func (b blob) path() string { return "blobs/sha256/" + strings.TrimPrefix(b.digest, "sha256:") }

func (b blob) descriptor(mediaType string) descriptor {
	return descriptor{MediaType: mediaType, Digest: b.digest, Size: int64(len(b.data))}
}

// Write writes the images to w as one archive.
func Write(w io.Writer, images ...Image) error {
	if len(images) == 0 {
		return fmt.Errorf("ociarchive: no image to write")
	}
	var blobs []blob
	var index []descriptor
	var docker []dockerManifest
	for _, img := range images {
		name, err := Normalize(img.Name)
		if err != nil {
			return err
		}
		imgBlobs, mdesc, dm, err := build(img)
		if err != nil {
			return fmt.Errorf("ociarchive: image %s: %w", name, err)
		}
		blobs = append(blobs, imgBlobs...)
		mdesc.Annotations = map[string]string{AnnotationImageName: name}
		if tag := tagOf(name); tag != "" {
			mdesc.Annotations[AnnotationRefName] = tag
		}
		index = append(index, mdesc)
		dm.RepoTags = []string{name}
		docker = append(docker, dm)
	}
	indexJSON, _ := json.Marshal(map[string]any{"schemaVersion": 2, "mediaType": MediaTypeIndex, "manifests": index})
	dockerJSON, _ := json.Marshal(docker)

	tw := tar.NewWriter(w)
	files := []struct {
		name string
		data []byte
	}{
		{"oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`)},
		{"index.json", indexJSON},
		{"manifest.json", dockerJSON},
	}
	if err := writeDir(tw, "blobs/"); err != nil {
		return err
	}
	if err := writeDir(tw, "blobs/sha256/"); err != nil {
		return err
	}
	seen := map[string]bool{}
	for _, b := range blobs {
		if !seen[b.digest] {
			seen[b.digest] = true
			files = append(files, struct {
				name string
				data []byte
			}{b.path(), b.data})
		}
	}
	for _, f := range files {
		hdr := &tar.Header{Typeflag: tar.TypeReg, Name: f.name, Mode: 0o644, Size: int64(len(f.data)), ModTime: time.Unix(0, 0)}
		if err := tw.WriteHeader(hdr); err != nil {
			return fmt.Errorf("ociarchive: %w", err)
		}
		if _, err := tw.Write(f.data); err != nil {
			return fmt.Errorf("ociarchive: %w", err)
		}
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("ociarchive: %w", err)
	}
	return nil
}

func writeDir(tw *tar.Writer, name string) error {
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: name, Mode: 0o755, ModTime: time.Unix(0, 0)}); err != nil {
		return fmt.Errorf("ociarchive: %w", err)
	}
	return nil
}

// build returns an image's blobs (layers, config, manifest), its manifest's
// descriptor and its Docker manifest entry.
func build(img Image) ([]blob, descriptor, dockerManifest, error) {
	created := img.Created
	if created.IsZero() {
		created = time.Unix(0, 0)
	}
	arch := img.Arch
	if arch == "" {
		arch = runtime.GOARCH
	}
	var blobs []blob
	var layers []descriptor
	var diffIDs []string
	var history []map[string]any
	dm := dockerManifest{}
	for i, entries := range img.Layers {
		data, err := layerTar(entries, created)
		if err != nil {
			return nil, descriptor{}, dm, fmt.Errorf("layer %d: %w", i, err)
		}
		b := newBlob(data)
		blobs = append(blobs, b)
		layers = append(layers, b.descriptor(MediaTypeLayer))
		diffIDs = append(diffIDs, b.digest)
		history = append(history, map[string]any{"created": created.UTC().Format(time.RFC3339), "created_by": "ociarchive"})
		dm.Layers = append(dm.Layers, b.path())
	}
	config, err := json.Marshal(map[string]any{
		"created":      created.UTC().Format(time.RFC3339),
		"architecture": arch,
		"os":           "linux",
		"config":       img.Config,
		"rootfs":       map[string]any{"type": "layers", "diff_ids": nonNil(diffIDs)},
		"history":      history,
	})
	if err != nil {
		return nil, descriptor{}, dm, err
	}
	cb := newBlob(config)
	blobs = append(blobs, cb)
	dm.Config = cb.path()
	manifest, _ := json.Marshal(map[string]any{
		"schemaVersion": 2,
		"mediaType":     MediaTypeManifest,
		"config":        cb.descriptor(MediaTypeConfig),
		"layers":        nonNilDesc(layers),
	})
	mb := newBlob(manifest)
	blobs = append(blobs, mb)
	md := mb.descriptor(MediaTypeManifest)
	md.Platform = &platform{Architecture: arch, OS: "linux"}
	return blobs, md, dm, nil
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func nonNilDesc(s []descriptor) []descriptor {
	if s == nil {
		return []descriptor{}
	}
	return s
}

// layerTar returns the tar of a layer's entries, parents first, sorted.
func layerTar(entries []Entry, mtime time.Time) ([]byte, error) {
	byPath := map[string]Entry{}
	for _, e := range entries {
		p, err := cleanPath(e.Path)
		if err != nil {
			return nil, err
		}
		if _, dup := byPath[p]; dup {
			return nil, fmt.Errorf("%s: listed twice", p)
		}
		e.Path = p
		byPath[p] = e
	}
	for p := range byPath {
		for d := path.Dir(p); d != "."; d = path.Dir(d) {
			if e, ok := byPath[d]; ok {
				if !e.Mode.IsDir() {
					return nil, fmt.Errorf("%s: parent %s is not a directory", p, d)
				}
				continue
			}
			byPath[d] = Dir(d, 0o755)
		}
	}
	paths := make([]string, 0, len(byPath))
	for p := range byPath {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, p := range paths {
		if err := writeEntry(tw, byPath[p], mtime); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// cleanPath returns an entry's path relative to the image's root, or an
// error for a path that names the root or has a ".." element.
func cleanPath(p string) (string, error) {
	for _, elem := range strings.Split(p, "/") {
		if elem == ".." {
			return "", fmt.Errorf("entry path %q: leaves the image's root", p)
		}
	}
	c := strings.TrimPrefix(path.Clean("/"+p), "/")
	if c == "" {
		return "", fmt.Errorf("entry path %q: names the root", p)
	}
	return c, nil
}

func writeEntry(tw *tar.Writer, e Entry, mtime time.Time) error {
	hdr := &tar.Header{Name: e.Path, Mode: int64(e.Mode.Perm()), ModTime: mtime}
	var data []byte
	switch {
	case e.Mode.IsDir():
		hdr.Typeflag, hdr.Name = tar.TypeDir, e.Path+"/"
	case e.Mode&fs.ModeSymlink != 0:
		if e.Target == "" {
			return fmt.Errorf("%s: symbolic link without a target", e.Path)
		}
		hdr.Typeflag, hdr.Linkname = tar.TypeSymlink, e.Target
	case e.Mode.IsRegular():
		hdr.Typeflag = tar.TypeReg
		data = e.Data
		if e.Source != "" {
			var err error
			if data, err = os.ReadFile(e.Source); err != nil {
				return err
			}
		}
		hdr.Size = int64(len(data))
	default:
		return fmt.Errorf("%s: unsupported mode %v", e.Path, e.Mode)
	}
	if err := tw.WriteHeader(hdr); err != nil {
		return fmt.Errorf("%s: %w", e.Path, err)
	}
	if _, err := tw.Write(data); err != nil {
		return fmt.Errorf("%s: %w", e.Path, err)
	}
	return nil
}
