package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/mod/module"
	"golang.org/x/mod/zip"
)

// TestPublish builds a proxy from a Git repository holding a module with a
// nested module and an uncommitted file, and checks the layout and that
// the zip holds exactly the committed files of the module itself.
func TestPublish(t *testing.T) {
	repo := t.TempDir()
	write := func(name, content string) {
		t.Helper()
		p := filepath.Join(repo, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	git := func(args ...string) {
		t.Helper()
		cmd := exec.Command("git", append([]string{"-C", repo, "-c", "user.name=t", "-c", "user.email=t@t"}, args...)...)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v: %s", args, err, out)
		}
	}
	write("a/go.mod", "module example.com/r/a\n\ngo 1.25.0\n")
	write("a/a.go", "package a\n")
	write("a/nested/go.mod", "module example.com/r/a/nested\n\ngo 1.25.0\n")
	write("a/nested/n.go", "package nested\n")
	git("init", "-q")
	git("add", ".")
	git("commit", "-q", "-m", "init")
	write("a/uncommitted.go", "package a\n")

	out := t.TempDir()
	for range 2 { // publishing twice lists the version once
		p, err := publish(repo, "HEAD", "a", "v0.1.0", out)
		if err != nil || p != "example.com/r/a" {
			t.Fatalf("publish = %q, %v", p, err)
		}
	}
	vdir := filepath.Join(out, "example.com", "r", "a", "@v")
	if b, err := os.ReadFile(filepath.Join(vdir, "list")); err != nil || string(b) != "v0.1.0\n" {
		t.Errorf("list = %q, %v", b, err)
	}
	if b, err := os.ReadFile(filepath.Join(vdir, "v0.1.0.mod")); err != nil || !strings.HasPrefix(string(b), "module example.com/r/a\n") {
		t.Errorf(".mod = %q, %v", b, err)
	}
	if b, err := os.ReadFile(filepath.Join(vdir, "v0.1.0.info")); err != nil || !strings.Contains(string(b), `"Version":"v0.1.0"`) {
		t.Errorf(".info = %q, %v", b, err)
	}
	cf, err := zip.CheckZip(module.Version{Path: "example.com/r/a", Version: "v0.1.0"}, filepath.Join(vdir, "v0.1.0.zip"))
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(cf.Valid, ","); got != "example.com/r/a@v0.1.0/a.go,example.com/r/a@v0.1.0/go.mod" {
		t.Errorf("zip holds %s; want a.go and go.mod only (no nested module, nothing uncommitted)", got)
	}
	if _, err := publish(repo, "HEAD", "a", "0.1", out); err == nil {
		t.Error("publish of version 0.1: nil error")
	}
}
