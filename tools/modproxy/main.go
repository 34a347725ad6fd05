// Command modproxy writes a file-based Go module proxy (GOPROXY=file://DIR)
// holding modules of this repository at one version, built from a Git
// revision: for each module, DIR/<module>/@v/list, <version>.info,
// <version>.mod and <version>.zip, the layout of the GOPROXY protocol
// (https://go.dev/ref/mod#goproxy-protocol). The zip is made by
// golang.org/x/mod/zip from the revision's tree, exactly as the go command
// and proxy.golang.org would make it from a tag, so a consumer resolving
// the module through this proxy sees what it would see after a release.
//
// scripts/consumer-check uses it to prove that every public module can be
// fetched with go get outside the workspace:
//
//	go run . -repo ../.. -rev HEAD -version v0.1.0 -out /tmp/proxy core store/file ...
//
// Each argument is a module's directory relative to the repository root.
// It is a module of its own so that golang.org/x/mod stays out of the
// public modules; it is not part of go.work.
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/mod/modfile"
	"golang.org/x/mod/module"
	"golang.org/x/mod/semver"
	"golang.org/x/mod/zip"
)

func main() {
	repo := flag.String("repo", ".", "root of the Git repository")
	rev := flag.String("rev", "HEAD", "Git revision the modules are taken from")
	version := flag.String("version", "v0.1.0", "version every module is published at")
	out := flag.String("out", "", "directory of the proxy (created)")
	flag.Parse()
	if *out == "" || flag.NArg() == 0 {
		log.Fatal("usage: modproxy -out DIR [-repo ROOT] [-rev REV] [-version vX.Y.Z] moduledir...")
	}
	for _, dir := range flag.Args() {
		p, err := publish(*repo, *rev, dir, *version, *out)
		if err != nil {
			log.Fatalf("modproxy: %s: %v", dir, err)
		}
		fmt.Printf("%s@%s\n", p, *version)
	}
}

// publish writes the module in directory dir of the repository at rev,
// at version, into the proxy at out, and returns its module path.
func publish(repo, rev, dir, version, out string) (string, error) {
	if !semver.IsValid(version) || semver.Canonical(version) != version {
		return "", fmt.Errorf("version %q is not a canonical semantic version", version)
	}
	dir = path.Clean(filepath.ToSlash(dir))
	gomod, err := gitShow(repo, rev, path.Join(dir, "go.mod"))
	if err != nil {
		return "", err
	}
	modPath := modfile.ModulePath(gomod)
	if modPath == "" {
		return "", fmt.Errorf("%s/go.mod at %s names no module", dir, rev)
	}
	mv := module.Version{Path: modPath, Version: version}
	if err := module.Check(mv.Path, mv.Version); err != nil {
		return "", err
	}
	esc, err := module.EscapePath(modPath)
	if err != nil {
		return "", err
	}
	vdir := filepath.Join(out, filepath.FromSlash(esc), "@v")
	if err := os.MkdirAll(vdir, 0o755); err != nil {
		return "", err
	}
	zf, err := os.Create(filepath.Join(vdir, version+".zip"))
	if err != nil {
		return "", err
	}
	subdir := dir
	if subdir == "." {
		subdir = ""
	}
	if err := zip.CreateFromVCS(zf, mv, repo, rev, subdir); err != nil {
		zf.Close()
		return "", fmt.Errorf("zipping %s at %s: %w", mv, rev, err)
	}
	if err := zf.Close(); err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(vdir, version+".mod"), gomod, 0o644); err != nil {
		return "", err
	}
	info, err := json.Marshal(struct {
		Version string
		Time    time.Time
	}{version, commitTime(repo, rev)})
	if err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(vdir, version+".info"), info, 0o644); err != nil {
		return "", err
	}
	return modPath, addToList(filepath.Join(vdir, "list"), version)
}

// addToList adds version to the proxy's list of versions of a module.
func addToList(file, version string) error {
	old, err := os.ReadFile(file)
	if err != nil && !os.IsNotExist(err) {
		return err
	}
	for _, v := range strings.Fields(string(old)) {
		if v == version {
			return nil
		}
	}
	return os.WriteFile(file, append(old, version+"\n"...), 0o644)
}

func gitShow(repo, rev, file string) ([]byte, error) {
	cmd := exec.Command("git", "-C", repo, "show", rev+":"+file)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	b, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("git show %s:%s: %v: %s", rev, file, err, bytes.TrimSpace(stderr.Bytes()))
	}
	return b, nil
}

// commitTime is rev's commit time, or now if Git cannot tell.
func commitTime(repo, rev string) time.Time {
	b, err := exec.Command("git", "-C", repo, "show", "-s", "--format=%cI", rev).Output()
	if err != nil {
		return time.Now().UTC()
	}
	t, err := time.Parse(time.RFC3339, strings.TrimSpace(string(b)))
	if err != nil {
		return time.Now().UTC()
	}
	return t.UTC()
}
