//go:build unix

package core_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/wechatconf/wechatconf/core"
)

// FileSecret honours ctx when the read blocks — a FIFO with no writer (an
// agent that has not started), a hung network mount: the fetch's ctx ends
// the wait, and the next read is not stuck behind it. Before, os.Open
// waited for a writer whatever ctx said, and the credential's load
// goroutine with it.
func TestFileSecretHonoursCtxWhenTheReadBlocks(t *testing.T) {
	path := filepath.Join(t.TempDir(), "appsecret")
	if err := syscall.Mkfifo(path, 0o600); err != nil {
		t.Skipf("no FIFO here: %v", err) // not a CI case: Linux runners have them
	}
	var unblocked atomic.Bool
	unblock := func() {
		if unblocked.Swap(true) {
			return
		}
		// A writer lets a blocked open (and the read) finish; O_RDWR
		// opens a FIFO without waiting for a reader (Linux).
		if f, err := os.OpenFile(path, os.O_RDWR, 0); err == nil {
			f.Write([]byte(appSecret + "\n"))
			f.Close()
		}
	}
	failsafe := time.AfterFunc(time.Minute, unblock)
	defer func() { failsafe.Stop(); unblock() }()
	// A ctx that ends once FileSecret has looked at it: the read is then
	// on its way to the FIFO.
	ctx := &checkedCtx{Context: context.Background(), checked: make(chan struct{}), done: make(chan struct{})}
	done := make(chan error, 1)
	src := core.FileSecret(path)
	go func() { _, err := src(ctx); done <- err }()
	<-ctx.checked
	close(ctx.done)
	err := <-done
	if unblocked.Load() {
		t.Fatal("FileSecret returned only when a writer opened the FIFO, not at its ctx's end")
	}
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("FileSecret with an ended ctx = %v; want context.Canceled", err)
	}
}

// checkedCtx is a ctx that reports its first Err call (on checked) and
// ends when done is closed.
type checkedCtx struct {
	context.Context
	once    atomic.Bool
	checked chan struct{}
	done    chan struct{}
}

func (c *checkedCtx) Done() <-chan struct{} { return c.done }

func (c *checkedCtx) Err() error {
	if !c.once.Swap(true) {
		close(c.checked)
		return nil
	}
	select {
	case <-c.done:
		return context.Canceled
	default:
		return nil
	}
}
