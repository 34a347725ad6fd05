package cli

import (
	"context"
	"time"

	"github.com/spf13/cobra"

	"github.com/wechatconf/wechatconf/core"
)

// watchCommand: wechatconf watch APPID [KIND] | --key KEY [--interval D] [--count N]
func (e *env) watchCommand() *cobra.Command {
	var rawKey string
	var interval time.Duration
	var count int
	cmd := &cobra.Command{
		Use:   "watch APPID [KIND] | --key KEY",
		Short: "print a line each time a key's value or expiry changes",
		Long: `watch reads one key every --interval and prints the state it starts from, then a line
each time its value (fingerprint) or expiry changes, until SIGINT or --count N changes
(the starting line is not counted). It never prints a value.`,
		Example: `  wechatconf watch wx0123456789abcdef --interval 5s
  wechatconf watch wx0123456789abcdef jsapi_ticket --count 1 --json`,
		Args:              positional(0, 2, "give an APPID and optionally a kind (or --key KEY)"),
		ValidArgsFunction: completeKind,
		RunE: func(cmd *cobra.Command, args []string) error {
			key, err := e.resolveKey("watch", rawKey, args)
			if err != nil {
				return err
			}
			if interval <= 0 || count < 0 {
				return usagef("watch: --interval must be positive and --count not negative")
			}
			st, closeStore, err := e.openStore(cmd.Context())
			if err != nil {
				return err
			}
			defer closeStore()
			return e.watch(cmd.Context(), st, key, interval, count)
		},
	}
	cmd.Flags().StringVar(&rawKey, "key", "", "watch this raw store key")
	cmd.Flags().DurationVar(&interval, "interval", 2*time.Second, "how often to read the key")
	cmd.Flags().IntVar(&count, "count", 0, "stop after this many changes (0: until SIGINT)")
	return cmd
}

// watch polls key every interval and prints each change, until ctx ends
// (exit 0) or count changes were printed.
func (e *env) watch(ctx context.Context, st core.TokenStore, key string, interval time.Duration, count int) error {
	var last string // fingerprint, expiry and status of the last line printed
	changes := -1   // the first line is the state watch starts from
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		pctx, cancel := e.withTimeout(ctx)
		v, err := read(pctx, st, key, false)
		cancel()
		if err != nil && ctx.Err() != nil {
			return nil
		}
		state := v.Status + " " + v.Fingerprint
		if v.Since != nil {
			state += " since " + v.Since.String()
		}
		if v.ExpiresAt != nil {
			state += " " + v.ExpiresAt.String()
		}
		if v.Status == StatusError || v.Status == StatusCorrupt {
			state = v.Status + " " + v.Error
		}
		if state != last {
			last = state
			now := time.Now().UTC()
			v.Time = &now
			v.Age = nil
			e.print(v)
			changes++
			if count > 0 && changes >= count {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}
