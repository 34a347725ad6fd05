//go:build unix

package tokenfile_test

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/wechatconf/wechatconf/core"
	"github.com/wechatconf/wechatconf/core/tokenfile"
)

// TestFileModeWhateverTheUmask tests that the file is 0600 under a umask
// that would make it 0400 (0277) and under one that would leave it group-
// and world-readable if the writer asked for 0644 (0), replacing a
// world-readable file, and that no temporary file is left behind. The
// umask is the process's: the test does not run in parallel.
func TestFileModeWhateverTheUmask(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "t.json")
	if err := os.WriteFile(path, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	os.Chmod(path, 0o644)
	a := &tokenfile.Agent{Path: path, Kind: "access_token", AppID: testAppID, Now: fixedClock(epoch)}
	for _, mask := range []int{0o277, 0} {
		old := syscall.Umask(mask)
		_, err := a.Write(core.Token{Value: "V", ExpiresAt: epoch.Add(time.Hour)})
		syscall.Umask(old)
		if err != nil {
			t.Fatalf("umask %04o: %v", mask, err)
		}
		checkMode(t, path)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("the directory holds %d entries after the writes, want 1 (no temporary file left)", len(entries))
	}
}
