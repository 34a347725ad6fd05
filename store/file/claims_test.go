package filestore_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wechatconf/wechatconf/core"
	filestore "github.com/wechatconf/wechatconf/store/file"
)

// Environment of TestClaimAcrossProcesses's child processes (this test
// binary started again): the store's directory, the child's number and how
// many goroutines it runs.
const (
	claimDirEnv   = "FILESTORE_TEST_CLAIM_DIR"
	claimChildEnv = "FILESTORE_TEST_CLAIM_CHILD"
	claimPerEnv   = "FILESTORE_TEST_CLAIM_PER"
)

// TestClaimAcrossProcesses starts 6 processes × 20 goroutines on one
// directory, released at once; each goroutine claims the keys push/0 to
// push/39 in turn, each time with a value of its own. For every key,
// exactly one caller gets its own value back, and every caller gets that
// value.
func TestClaimAcrossProcesses(t *testing.T) {
	if os.Getenv(claimChildEnv) != "" {
		claimChild(t)
		return
	}
	const procs, perProc = 6, 20
	dir := t.TempDir()
	type child struct {
		cmd   *exec.Cmd
		in    io.WriteCloser
		lines *bufio.Scanner
	}
	children := make([]child, procs)
	for i := range children {
		cmd := exec.Command(os.Args[0], "-test.run=^TestClaimAcrossProcesses$", "-test.count=1")
		cmd.Env = append(os.Environ(), claimDirEnv+"="+dir, claimChildEnv+"="+strconv.Itoa(i), claimPerEnv+"="+strconv.Itoa(perProc))
		cmd.Stderr = os.Stderr
		in, err := cmd.StdinPipe()
		if err != nil {
			t.Fatal(err)
		}
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		children[i] = child{cmd, in, bufio.NewScanner(out)}
	}
	// Every child has its store open and waits on stdin: release them all.
	for i, c := range children {
		if !scanTo(c.lines, "claim-ready") {
			t.Fatalf("child %d ended before it was ready", i)
		}
	}
	for _, c := range children {
		io.WriteString(c.in, "go\n")
		c.in.Close()
	}
	type outcome struct {
		results, winners int
		held             map[string]int
	}
	byKey := map[string]*outcome{}
	for i, c := range children {
		for c.lines.Scan() {
			f := strings.Fields(c.lines.Text())
			if len(f) != 4 || f[0] != "claim-result" {
				continue
			}
			o := byKey[f[1]]
			if o == nil {
				o = &outcome{held: map[string]int{}}
				byKey[f[1]] = o
			}
			o.results++
			o.held[f[3]]++
			if f[2] == "won" {
				o.winners++
			}
		}
		if err := c.cmd.Wait(); err != nil {
			t.Errorf("child %d: %v", i, err)
		}
	}
	if len(byKey) != claimRounds {
		t.Errorf("results for %d keys; want %d", len(byKey), claimRounds)
	}
	for k, o := range byKey {
		if o.results != procs*perProc || o.winners != 1 || len(o.held) != 1 {
			t.Errorf("%d claims of %s from %d processes: %d results, %d got their own value back, values returned %v; want %d results, exactly 1 winner whose value all get",
				procs*perProc, k, procs, o.results, o.winners, o.held, procs*perProc)
		}
	}
}

// claimRounds is how many keys each goroutine of TestClaimAcrossProcesses
// claims.
const claimRounds = 40

// scanTo reads lines until one equals want; false at the end of input.
func scanTo(s *bufio.Scanner, want string) bool {
	for s.Scan() {
		if s.Text() == want {
			return true
		}
	}
	return false
}

// claimChild is a child process of TestClaimAcrossProcesses: it opens the
// store, says it is ready, waits for a line on stdin, and claims.
func claimChild(t *testing.T) {
	s := newStore(t, os.Getenv(claimDirEnv))
	per, _ := strconv.Atoi(os.Getenv(claimPerEnv))
	id := os.Getenv(claimChildEnv)
	fmt.Println("claim-ready")
	if _, err := bufio.NewReader(os.Stdin).ReadString('\n'); err != nil {
		t.Fatalf("child %s: reading the start line: %v", id, err)
	}
	lines := make([][]string, per)
	var wg sync.WaitGroup
	for j := range per {
		wg.Go(func() {
			for r := range claimRounds {
				key, v := fmt.Sprint("push/", r), fmt.Sprintf("p%s-g%d", id, j)
				got, err := s.Claim(context.Background(), key, v, time.Minute)
				if err != nil {
					t.Errorf("child %s: Claim(%s, %q): %v", id, key, v, err)
					return
				}
				outcome := "lost"
				if got == v {
					outcome = "won"
				}
				lines[j] = append(lines[j], "claim-result "+key+" "+outcome+" "+got)
			}
		})
	}
	wg.Wait()
	for _, l := range lines {
		fmt.Println(strings.Join(l, "\n"))
	}
}

// passTTL waits until ttl has passed since at, on the clock the store
// judges claims by (expiry is the subject here, not synchronisation).
func passTTL(at time.Time, ttl time.Duration) {
	for d := time.Until(at.Add(ttl)); d >= 0; d = time.Until(at.Add(ttl)) {
		time.Sleep(d + time.Millisecond)
	}
}

// TestClaimLifecycle checks one key's claim through two Store values
// (two processes, as far as the store can tell): a live claim is kept, it
// expires with its ttl, and its former holder's late swap neither renews
// nor deletes it.
func TestClaimLifecycle(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	a, b := newStore(t, dir), newStore(t, dir)

	if got, err := a.Claim(ctx, "live", "a", time.Minute); err != nil || got != "a" {
		t.Fatalf("Claim(live, a) = %q, %v; want a", got, err)
	}
	if got, err := b.Claim(ctx, "live", "b", time.Minute); err != nil || got != "a" {
		t.Errorf("Claim(live, b) while a's claim is live = %q, %v; want a", got, err)
	}
	if ok, err := b.CompareAndSwapClaim(ctx, "live", "x", "b", time.Minute); err != nil || ok {
		t.Errorf("CompareAndSwapClaim(live, x → b) = %v, %v; want false, nil", ok, err)
	}
	if ok, err := a.CompareAndSwapClaim(ctx, "live", "a", "a2", time.Minute); err != nil || !ok {
		t.Errorf("CompareAndSwapClaim(live, a → a2) = %v, %v; want true", ok, err)
	}
	if got, err := b.Claim(ctx, "live", "b", time.Minute); err != nil || got != "a2" {
		t.Errorf("Claim(live, b) after the swap = %q, %v; want a2", got, err)
	}
	if ok, err := a.CompareAndSwapClaim(ctx, "live", "a2", "", 0); err != nil || !ok {
		t.Errorf("CompareAndSwapClaim(live, a2 → delete) = %v, %v; want true", ok, err)
	}
	if got, err := b.Claim(ctx, "live", "b", time.Minute); err != nil || got != "b" {
		t.Errorf("Claim(live, b) after the delete = %q, %v; want b", got, err)
	}

	const ttl = 20 * time.Millisecond
	if got, err := a.Claim(ctx, "short", "a", ttl); err != nil || got != "a" {
		t.Fatalf("Claim(short, a) = %q, %v; want a", got, err)
	}
	passTTL(time.Now(), ttl)
	if ok, err := a.CompareAndSwapClaim(ctx, "short", "a", "a-renewed", time.Minute); err != nil || ok {
		t.Errorf("late CompareAndSwapClaim(short, a → a-renewed) = %v, %v; want false, nil", ok, err)
	}
	if ok, err := a.CompareAndSwapClaim(ctx, "short", "a", "", 0); err != nil || ok {
		t.Errorf("late CompareAndSwapClaim(short, a → delete) = %v, %v; want false, nil", ok, err)
	}
	if got, err := b.Claim(ctx, "short", "b", time.Minute); err != nil || got != "b" {
		t.Errorf("Claim(short, b) after a's claim expired = %q, %v; want b", got, err)
	}
	if got, err := a.Claim(ctx, "short", "a", time.Minute); err != nil || got != "b" {
		t.Errorf("Claim(short, a) after b's claim = %q, %v; want b (nothing resurrected)", got, err)
	}
}

// claimFiles returns the names of the claim files under dir.
func claimFiles(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(dir, "claims"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".claim") {
			names = append(names, e.Name())
		}
	}
	return names
}

// TestClaimFilesCleanedUp checks that expired claim files are removed in
// bounded steps as claims go on: 200 claims expire, then 160 claims of
// another Store value (10 clean-up steps of 64 entries, one per 16
// claims, enough for a whole pass over the directory) leave only the 160
// live claim files.
func TestClaimFilesCleanedUp(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	a := newStore(t, dir)
	const expired, live, ttl = 200, 160, 10 * time.Millisecond
	for i := range expired {
		if _, err := a.Claim(ctx, fmt.Sprint("old/", i), "v", ttl); err != nil {
			t.Fatal(err)
		}
	}
	passTTL(time.Now(), ttl)
	b := newStore(t, dir)
	for i := range live {
		if got, err := b.Claim(ctx, fmt.Sprint("new/", i), "v", time.Hour); err != nil || got != "v" {
			t.Fatalf("Claim(new/%d) = %q, %v", i, got, err)
		}
	}
	files := claimFiles(t, dir)
	if len(files) != live {
		t.Errorf("%d claim files after %d expired and %d live claims; want %d (the expired ones removed)", len(files), expired, live, live)
	}
	for i := range live {
		if got, err := a.Claim(ctx, fmt.Sprint("new/", i), "other", time.Hour); err != nil || got != "v" {
			t.Errorf("Claim(new/%d) after the clean-up = %q, %v; want the live claim v", i, got, err)
		}
	}
}

// TestClaimFilesApart checks that claims live apart from tokens: a claim
// and a token under the same key share nothing, ListKeys never lists a
// claim, and hostile keys keep their claim files inside the claims
// directory.
func TestClaimFilesApart(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := newStore(t, dir)
	keys := []string{"shared", "../escape", "/abs", "a/../../b", strings.Repeat("k", 256), "键/🙂"}
	for _, k := range keys {
		if got, err := s.Claim(ctx, k, "claimed", time.Hour); err != nil || got != "claimed" {
			t.Fatalf("Claim(%q) = %q, %v", k, got, err)
		}
	}
	if _, err := s.Get(ctx, "shared"); !errors.Is(err, core.ErrNotFound) {
		t.Errorf("Get(shared) with only a claim under it: %v; want ErrNotFound", err)
	}
	if err := s.Set(ctx, "shared", tok("token")); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Claim(ctx, "shared", "other", time.Hour); err != nil || got != "claimed" {
		t.Errorf("Claim(shared) after Set(shared) = %q, %v; want claimed", got, err)
	}
	if got, err := s.ListKeys(ctx, ""); err != nil || !slices.Equal(got, []string{"shared"}) {
		t.Errorf("ListKeys(\"\") = %q, %v; want [shared] (claims never listed)", got, err)
	}
	if n := len(claimFiles(t, dir)); n != len(keys) {
		t.Errorf("%d claim files in claims/ for %d keys; want one each", n, len(keys))
	}
	err := filepath.WalkDir(filepath.Dir(dir), func(path string, d os.DirEntry, err error) error {
		if err == nil && strings.HasSuffix(path, ".claim") && filepath.Dir(path) != filepath.Join(dir, "claims") {
			t.Errorf("claim file %s outside %s", path, filepath.Join(dir, "claims"))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestClaimCorruptFile checks that a claim file that cannot be decoded
// counts as no claim: Claim replaces it, CompareAndSwapClaim swaps
// nothing.
func TestClaimCorruptFile(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := newStore(t, dir)
	if _, err := s.Claim(ctx, "k", "v", time.Hour); err != nil {
		t.Fatal(err)
	}
	files := claimFiles(t, dir)
	if len(files) != 1 {
		t.Fatalf("claim files %q; want one", files)
	}
	path := filepath.Join(dir, "claims", files[0])
	for _, bad := range []string{"", "garbage", "wechatconf-claim 1 99999999999999999999 1 1\nkv", "wechatconf-claim 1 4102444800000000000 1 5\nkv"} {
		if err := os.WriteFile(path, []byte(bad), 0o600); err != nil {
			t.Fatal(err)
		}
		if ok, err := s.CompareAndSwapClaim(ctx, "k", "v", "w", time.Hour); err != nil || ok {
			t.Errorf("CompareAndSwapClaim(k, v → w) over corrupt file %q = %v, %v; want false, nil", bad, ok, err)
		}
		if got, err := s.Claim(ctx, "k", "new", time.Hour); err != nil || got != "new" {
			t.Errorf("Claim(k, new) over corrupt file %q = %q, %v; want new", bad, got, err)
		}
	}
}

// TestClaimErrors checks the argument checks and an ended context: errors
// wrapped with the store's name, nothing written.
func TestClaimErrors(t *testing.T) {
	dir := t.TempDir()
	s := newStore(t, dir)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.Claim(ctx, "k", "v", time.Minute); !errors.Is(err, context.Canceled) || !strings.HasPrefix(err.Error(), "filestore: ") {
		t.Errorf("Claim with a cancelled context: %v; want context.Canceled, wrapped", err)
	}
	if _, err := s.CompareAndSwapClaim(ctx, "k", "v", "w", time.Minute); !errors.Is(err, context.Canceled) {
		t.Errorf("CompareAndSwapClaim with a cancelled context: %v; want context.Canceled", err)
	}
	for _, c := range []struct {
		key, value string
		ttl        time.Duration
	}{{"", "v", time.Minute}, {"k", "", time.Minute}, {"k", "v", 0}, {"k", "a\x00b", time.Minute}, {"k", strings.Repeat("v", 257), time.Minute}} {
		if _, err := s.Claim(context.Background(), c.key, c.value, c.ttl); err == nil {
			t.Errorf("Claim(%q, %q, %v) = nil error; want one", c.key, c.value, c.ttl)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "claims")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("claims directory after refused claims: %v; want none", err)
	}
}

// BenchmarkClaim measures a winning claim on a fresh key, one caller at a
// time.
func BenchmarkClaim(b *testing.B) {
	s, err := filestore.New(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	for i := 0; b.Loop(); i++ {
		if _, err := s.Claim(ctx, fmt.Sprint("push/", i), "v", time.Minute); err != nil {
			b.Fatal(err)
		}
	}
}
