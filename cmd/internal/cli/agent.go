package cli

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/wechatconf/wechatconf/core"
	"github.com/wechatconf/wechatconf/core/tokenfile"
)

// maxAgentInterval bounds agent --interval: a Conf refreshes ahead when it
// is asked, from 4m30s before expiry with stable_token (5 minutes with
// --classic), and the file must be rewritten well before a reader's
// one-minute margin.
const maxAgentInterval = time.Minute

// agentWritten, when set (by the tests), is called after each write of the
// agent's file.
var agentWritten func(tokenfile.Record)

// agentCommand: wechatconf agent APPID --out PATH [--kind KIND] [--interval D]
func (e *env) agentCommand() *cobra.Command {
	var out, kind string
	var interval time.Duration
	cmd := &cobra.Command{
		Use:   "agent APPID --out PATH [--kind KIND]",
		Short: "keep a credential in a file for the PHP, Python and Node processes of this host",
		Long: `agent keeps one credential of APPID (--kind: access_token, jsapi_ticket or wx_card_ticket)
valid in the file --out, for the processes of this host that read a file more easily than
they call a service. It is a member of the fleet like any worker (core.Conf on the store):
it asks for the credential every --interval, the Conf refreshes it ahead of expiry through
the store's lock or takes the one another member fetched, so the agent never makes a
token call the fleet would not make. Each time the credential changes the file is
replaced atomically (a temporary file in the same directory, mode 0600, fsync, rename,
fsync of the directory), with the value, expires_at (RFC 3339, UTC), expires_at_unix,
expires_in, the kind and the AppID, never the AppSecret; a token within a minute of its
expiry is never written. When no valid token can be had the file is left as it is:
readers judge expires_at. Run it as the readers' user: the file is 0600. Its fetches are
recorded in the fleet's fetch ledger (history) by instance wechatconf-agent@HOST/PID.

It runs until SIGTERM or SIGINT (exit 0) and logs to stderr what it writes and what fails,
never a value (--json: one JSON object per line). It exits 2 at once when it cannot write
the file at all. WECHAT_APPSECRET comes from the environment only, or
WECHAT_APPSECRET_FILE names a file holding it (a mounted secret), read again
when WeChat refuses it.`,
		Example: `  WECHAT_APPSECRET=… wechatconf agent wx0123456789abcdef --out /run/wechat/access_token.json
  WECHAT_APPSECRET=… wechatconf agent wx0123456789abcdef --kind jsapi_ticket --out /run/wechat/jsapi_ticket.json`,
		Args: appIDArg,
		RunE: func(cmd *cobra.Command, args []string) error {
			if out == "" {
				return usagef("agent: give --out PATH, the file to keep the credential in")
			}
			if interval <= 0 || interval > maxAgentInterval {
				return usagef("agent: --interval must be positive and at most %v (the Conf refreshes ahead only when asked)", maxAgentInterval)
			}
			return e.agent(cmd.Context(), args[0], kind, out, interval)
		},
	}
	cmd.Flags().StringVar(&out, "out", "", "the file to keep the credential in (its directory must exist)")
	cmd.Flags().StringVar(&kind, "kind", "access_token", "the credential: access_token, jsapi_ticket or wx_card_ticket")
	cmd.Flags().DurationVar(&interval, "interval", tokenfile.DefaultInterval, "how often to ask the Conf for the credential (at most 1m)")
	cmd.RegisterFlagCompletionFunc("kind", func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
		return kinds, cobra.ShellCompDirectiveNoFileComp
	})
	return cmd
}

// agentInstance names the agent's process in the fleet's fetch ledger:
// "wechatconf-agent@HOST/PID", so that history tells its fetches from the
// other members'.
func agentInstance() string { return name + "-agent@" + core.DefaultInstance() }

func (e *env) agent(ctx context.Context, appID, kind, out string, interval time.Duration) error {
	if kind != "access_token" && kind != "jsapi_ticket" && kind != "wx_card_ticket" {
		return usagef("agent: --kind %q: want access_token, jsapi_ticket or wx_card_ticket", kind)
	}
	// WECHAT_APPSECRET_FILE, as the token server's: a long-running agent
	// reads the AppSecret again when WeChat refuses it (a reset).
	var source core.SecretSource
	if path := e.getenv("WECHAT_APPSECRET_FILE"); path != "" {
		if e.getenv("WECHAT_APPSECRET") != "" {
			return usagef("agent: set WECHAT_APPSECRET or WECHAT_APPSECRET_FILE, not both")
		}
		source = core.FileSecret(path)
	} else if e.getenv("WECHAT_APPSECRET") == "" {
		return errNoSecret
	}
	if fi, err := os.Stat(filepath.Dir(out)); err != nil || !fi.IsDir() {
		return usagef("agent: --out %s: its directory %s does not exist", out, filepath.Dir(out))
	}
	var handler slog.Handler = slog.NewTextHandler(e.stderr, nil)
	if e.g.json {
		handler = slog.NewJSONHandler(e.stderr, nil)
	}
	log := slog.New(handler)
	st, closeStore, err := e.openStore(ctx)
	if err != nil {
		return err
	}
	defer closeStore()
	// A fleet member's Conf (not e.conf's operator's tool: its fetches are
	// the fleet's own, with their reasons), with its events at Info
	// (fetched, adopted) in the agent's log, next to what it writes.
	conf, err := core.New(core.Config{
		AppID: appID, AppSecret: core.NewSecret(e.getenv("WECHAT_APPSECRET")), AppSecretSource: source, BaseURL: e.baseURL(), Store: st,
		KeyPrefix: e.g.prefix, TokenAPI: e.tokenAPI(), Logger: log, Instance: agentInstance(),
	})
	if err != nil {
		return err
	}
	// Sync, not Get: the file's readers cannot tell the agent that WeChat
	// rejected its token, so each poll follows the store, where a member
	// that saw the rejection put the replacement (one store Get a poll, no
	// token call).
	get := conf.Credential(kind).Sync
	a := &tokenfile.Agent{
		Path: out, Kind: kind, AppID: appID, Interval: interval, Logger: log, OnWrite: agentWritten,
		Token: func(ctx context.Context) (core.Token, error) {
			ctx, cancel := e.withTimeout(ctx) // --timeout bounds each poll
			defer cancel()
			return get(ctx)
		},
	}
	log.Info("agent.start", "store", e.spec.String(), "key", e.keyOf(appID, kind), "interval", interval)
	err = a.Run(ctx)
	// Its fetch records (a ticket it fetched, a refresh it made) go to the
	// fleet's ledger before the process ends: written in the background,
	// they would be lost with it.
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if ferr := conf.FlushLedger(fctx); ferr != nil {
		log.Warn("agent.ledger", "error", ferr)
	}
	if err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	log.Info("agent.stop", "path", out)
	return nil
}
