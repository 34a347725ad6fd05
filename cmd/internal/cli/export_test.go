package cli

import (
	"context"
	"io"

	"github.com/wechatconf/wechatconf/cmd/storeurl"
	"github.com/wechatconf/wechatconf/core"
)

// RunWithStore returns Run with st in place of the store the URL names
// (the URL is still parsed and checked: give a file:// directory that
// exists), for the tests of ls and of the not-found hint, which need a
// store that lists its keys (core.KeyLister) or one that cannot.
func RunWithStore(st core.TokenStore) func(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	open := func(context.Context, storeurl.Spec) (core.TokenStore, func() error, error) {
		return st, func() error { return nil }, nil
	}
	return func(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
		return run(ctx, args, getenv, stdout, stderr, open)
	}
}
