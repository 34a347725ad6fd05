package cli

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/wechatconf/wechatconf/core"
)

// refreshCommand: wechatconf refresh APPID [--yes] [--reveal]
func (e *env) refreshCommand() *cobra.Command {
	var reveal, yes bool
	cmd := &cobra.Command{
		Use:   "refresh APPID [--yes]",
		Short: "fetch the access_token if absent or expired; replace a valid one only with --yes",
		Long: `refresh makes sure the store holds a valid access_token. One that is absent or expired
is fetched as any worker of the fleet would (core.Conf.AccessToken: one normal token call,
through the store's lock, so that a fleet asking together fetches once; never a forced
call). A valid one is left alone, with no call to WeChat, and refresh says so.

With --yes a valid token is replaced too, by the compare-and-refresh a worker makes when
WeChat rejects the token (core.Conf.RefreshAccessToken with the stored value as the
rejected one; a value another host already replaced is returned as it is). That stops the
token working on every host of the fleet, and costs one of WeChat's ~20 daily
force_refresh calls (stable_token hands a valid token back unchanged, and core then
escalates to force_refresh) or, with --classic, a /cgi-bin/token call that invalidates the
fleet's token after ~5 minutes. Give --yes when WeChat rejects the stored token (40001,
42001) and the fleet cannot replace it itself.

WECHAT_APPSECRET comes from the environment only.`,
		Example: `  WECHAT_APPSECRET=… wechatconf refresh wx0123456789abcdef
  WECHAT_APPSECRET=… wechatconf refresh wx0123456789abcdef --yes   # WeChat rejects the stored token`,
		Args: positional(1, 1, "give exactly one APPID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return e.refresh(cmd.Context(), args[0], reveal, yes)
		},
	}
	cmd.Flags().BoolVar(&yes, "yes", false, "replace a valid token too (a forced call; the fleet's token stops working)")
	cmd.Flags().BoolVar(&reveal, "reveal", false, "print the new value itself")
	return cmd
}

// replaceCost says what replacing a valid access_token costs with the
// token API the flags select: refresh --yes and force.
func (e *env) replaceCost() string {
	if e.g.classic {
		return "a classic /cgi-bin/token call issues a new token, and the one every host of the fleet holds stops working ~5 minutes later (WeChat allows ~2,000 token calls a day)"
	}
	return "it spends one of WeChat's ~20 daily forced refreshes (stable_token with force_refresh, 30 s apart), and the token every host of the fleet holds stops working at once"
}

func (e *env) refresh(ctx context.Context, appID string, reveal, yes bool) error {
	if e.getenv("WECHAT_APPSECRET") == "" {
		return errNoSecret
	}
	st, closeStore, err := e.openStore(ctx)
	if err != nil {
		return err
	}
	defer closeStore()
	conf, err := e.conf(st, appID)
	if err != nil {
		return err
	}
	ctx, cancel := e.withTimeout(ctx)
	defer cancel()
	key := e.keyOf(appID, "access_token")
	old, err := st.Get(ctx, key)
	if err != nil && !errors.Is(err, core.ErrNotFound) {
		return err
	}
	now := time.Now()
	healthy := err == nil && (old.ExpiresAt.IsZero() || now.Before(old.ExpiresAt))
	if healthy && !yes {
		v := viewOf(key, old, false, now)
		v.Previous = Fingerprint(old.Value)
		v.Replaced = new(bool)
		e.print(v)
		left := "no expiry stored"
		if !old.ExpiresAt.IsZero() {
			left = "expires in " + old.ExpiresAt.Sub(now).Round(time.Second).String()
		}
		fmt.Fprintf(e.stderr, "%s: refresh: the access_token of %s is valid (%s): nothing done, no call to WeChat.\n"+
			"  To replace it anyway (WeChat rejects it: 40001, 42001) add --yes: %s.\n", name, appID, left, e.replaceCost())
		return nil
	}
	var tok core.Token
	if healthy {
		fmt.Fprintf(e.stderr, "%s: refresh --yes: replacing the valid access_token of %s: %s\n", name, appID, e.replaceCost())
		tok, err = conf.RefreshAccessToken(ctx, old.Value)
	} else {
		// Absent or expired: what any worker of the fleet does, one
		// normal call through the store's lock, never a forced one
		// (RefreshAccessToken would escalate to force_refresh if WeChat
		// still held the token the store shows expired).
		tok, err = conf.AccessToken(ctx)
	}
	if err != nil {
		return err
	}
	e.printReplaced(key, old, tok, reveal)
	return nil
}

// printReplaced prints the token tok that replaced (or kept) old.
func (e *env) printReplaced(key string, old, tok core.Token, reveal bool) {
	v := viewOf(key, tok, reveal, time.Now())
	v.Previous = Fingerprint(old.Value)
	replaced := tok.Value != old.Value
	v.Replaced = &replaced
	e.print(v)
}
