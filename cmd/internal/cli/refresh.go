package cli

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/wechatconf/wechatconf/core"
	redisstore "github.com/wechatconf/wechatconf/store/redis"
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
call). A valid one is left alone, with no call to WeChat, and refresh says so. One that
is absent or expired under --prefix while a valid access_token of the AppID is stored under
another key prefix, or on Redis another store prefix (?prefix=), is the fleet's under a
prefix mistaken: refresh does nothing and exits 3 with where it is, unless --yes (a
classic fetch here would stop the fleet's token working).

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
		Args: appIDArg,
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

// storedAccessToken is what refresh and force start from: the store
// opened, the AppID's Conf over it, ctx bounded by --timeout, and the
// access_token the store holds (found false when there is none). done
// ends the deadline and closes the store.
type storedAccessToken struct {
	ctx   context.Context
	st    core.TokenStore
	conf  *core.Conf
	key   string
	old   core.Token
	found bool
	done  func()
}

// openAccessToken opens what refresh and force work on; a store error
// other than not found is returned, with nothing left open.
func (e *env) openAccessToken(ctx context.Context, appID string) (*storedAccessToken, error) {
	if e.getenv("WECHAT_APPSECRET") == "" {
		return nil, errNoSecret
	}
	st, closeStore, err := e.openStore(ctx)
	if err != nil {
		return nil, err
	}
	conf, err := e.conf(st, appID)
	if err != nil {
		closeStore()
		return nil, err
	}
	ctx, cancel := e.withTimeout(ctx)
	s := &storedAccessToken{ctx: ctx, st: st, conf: conf, key: e.keyOf(appID, "access_token"),
		done: func() {
			// The fetch's record goes to the fleet's ledger in the
			// background: wait for it, or this process's exit loses it.
			if err := conf.FlushLedger(ctx); err != nil {
				fmt.Fprintf(e.stderr, "%s: the fetch ledger (history) could not record this command's fetch: %v\n", name, err)
			}
			cancel()
			closeStore()
		}}
	s.old, err = st.Get(ctx, s.key)
	if err != nil && !errors.Is(err, core.ErrNotFound) {
		s.done()
		return nil, err
	}
	s.found = err == nil
	return s, nil
}

func (e *env) refresh(ctx context.Context, appID string, reveal, yes bool) error {
	s, err := e.openAccessToken(ctx, appID)
	if err != nil {
		return err
	}
	defer s.done()
	ctx, st, conf, key, old := s.ctx, s.st, s.conf, s.key, s.old
	now := time.Now()
	healthy := s.found && (old.ExpiresAt.IsZero() || now.Before(old.ExpiresAt))
	if healthy && !yes {
		e.printReplaced(key, old, old, false)
		left := "no expiry stored"
		if !old.ExpiresAt.IsZero() {
			left = "expires in " + old.ExpiresAt.Sub(now).Round(time.Second).String()
		}
		fmt.Fprintf(e.stderr, "%s: refresh: the access_token of %s is valid (%s): nothing done, no call to WeChat.\n"+
			"  To replace it anyway (WeChat rejects it: 40001, 42001) add --yes: %s.\n", name, appID, left, e.replaceCost())
		return nil
	}
	if !healthy && !yes {
		// Absent or expired here, but the fleet may keep the AppID's token
		// under another key prefix or Redis store prefix (--prefix or
		// ?prefix= mistaken): a classic call would stop it working, a
		// stable_token one would store a token the fleet never reads.
		if where := e.validElsewhere(ctx, st, appID, key); len(where) > 0 {
			state := "absent"
			if s.found {
				state = "expired"
			}
			return e.notFound(ctx, st, []string{key}, fmt.Sprintf(
				"refresh: the access_token of %s is %s under key prefix %q, but a valid one is stored %s: nothing done, no call to WeChat.\n"+
					"  A fetch here %s. Fix --prefix or the store URL's ?prefix=, or add --yes to fetch under key prefix %q all the same",
				appID, state, e.g.prefix, strings.Join(where, " and "), e.elsewhereCost(), e.g.prefix))
		}
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

// elsewhereCost says what fetching the access_token under the wrong
// prefix costs the fleet that keeps it under another.
func (e *env) elsewhereCost() string {
	if e.g.classic {
		return "would be a classic /cgi-bin/token call: the token stored elsewhere, the fleet's, would stop working ~5 minutes later"
	}
	return "would store a token where the fleet does not read it"
}

// validElsewhere returns where, other than key, the store holds a valid
// access_token of appID: under another key prefix (core.KeyLister) or, on
// Redis, under another store prefix (the not-found hint's SCAN), each as
// text; nil when it holds none, or cannot tell.
func (e *env) validElsewhere(ctx context.Context, st core.TokenStore, appID, key string) []string {
	now := time.Now()
	valid := func(t core.Token) bool { return t.ExpiresAt.IsZero() || now.Before(t.ExpiresAt) }
	var where []string
	if kl, ok := st.(core.KeyLister); ok {
		if keys, err := kl.ListKeys(ctx, ""); err == nil {
			for _, k := range keys {
				info := ParseKey(k)
				if k == key || info.Platform != PlatformOfficialAccount || info.AppID != appID || info.Kind != "access_token" {
					continue
				}
				if t, err := st.Get(ctx, k); err == nil && valid(t) {
					where = append(where, fmt.Sprintf("under key prefix %q (%s)", info.Prefix, k))
				}
			}
		}
	}
	if client := e.spec.NewRedisClient(); client != nil {
		defer client.Close()
		own := e.spec.Prefix
		if own == "" {
			own = redisstore.DefaultPrefix
		}
		found, _, err := scanStorePrefixes(ctx, client, own)
		if err == nil {
			prefixes := make([]string, 0, len(found))
			for p := range found {
				prefixes = append(prefixes, p)
			}
			sort.Strings(prefixes)
			for _, p := range prefixes {
				other, err := redisstore.New(client, redisstore.WithPrefix(p))
				if err != nil {
					continue
				}
				if t, err := other.Get(ctx, key); err == nil && valid(t) {
					where = append(where, fmt.Sprintf("under Redis store prefix %q (%s)", p, prefixAdvice(p)))
				}
			}
		}
	}
	return where
}

// printReplaced prints the token tok that replaced (or kept) old.
func (e *env) printReplaced(key string, old, tok core.Token, reveal bool) {
	v := viewOf(key, tok, reveal, time.Now())
	v.Previous = Fingerprint(old.Value)
	replaced := tok.Value != old.Value
	v.Replaced = &replaced
	e.print(v)
}
