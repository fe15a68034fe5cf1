package ociarchive

import (
	"fmt"
	"strings"
)

// Normalize completes an image reference as Docker, containerd and podman
// do: a name without a registry is on docker.io, a one-element name on
// docker.io is in library/, and a name without a tag or digest is
// :latest. "busybox" is "docker.io/library/busybox:latest".
func Normalize(ref string) (string, error) {
	if ref == "" {
		return "", fmt.Errorf("ociarchive: image without a name")
	}
	repo, suffix := splitRef(ref)
	switch {
	case strings.ContainsAny(ref, " \t\r\n"):
		return "", fmt.Errorf("ociarchive: image name %q: contains white space", ref)
	case repo == "" || strings.HasPrefix(repo, "/") || strings.HasSuffix(repo, "/") || strings.Contains(repo, "//"):
		return "", fmt.Errorf("ociarchive: image name %q: empty path element", ref)
	case repo != strings.ToLower(repo):
		return "", fmt.Errorf("ociarchive: image name %q: repository names are lower case", ref)
	case suffix == ":" || suffix == "@":
		return "", fmt.Errorf("ociarchive: image name %q: empty tag or digest", ref)
	}
	if i := strings.IndexByte(repo, '/'); i < 0 {
		repo = "docker.io/library/" + repo
	} else if first := repo[:i]; !strings.ContainsAny(first, ".:") && first != "localhost" {
		repo = "docker.io/" + repo
	}
	if suffix == "" {
		suffix = ":latest"
	}
	return repo + suffix, nil
}

// splitRef splits a reference into its repository and its ":TAG" or
// "@DIGEST" ("" when it has neither).
func splitRef(ref string) (repo, suffix string) {
	if i := strings.IndexByte(ref, '@'); i >= 0 {
		return ref[:i], ref[i:]
	}
	if i := strings.LastIndexByte(ref, ':'); i > strings.LastIndexByte(ref, '/') {
		return ref[:i], ref[i:]
	}
	return ref, ""
}

// tagOf returns a normalized reference's tag ("" for a digest reference).
func tagOf(ref string) string {
	if _, suffix := splitRef(ref); strings.HasPrefix(suffix, ":") {
		return suffix[1:]
	}
	return ""
}
