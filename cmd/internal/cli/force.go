package cli

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"
)

// forceCommand: wechatconf force APPID --yes [--reveal]
func (e *env) forceCommand() *cobra.Command {
	var reveal, yes bool
	cmd := &cobra.Command{
		Use:   "force APPID --yes",
		Short: "rotate the access_token: the current one stops working at once, on every host",
		Long: `force rotates the access_token (core.Conf.ForceRefreshAccessToken): stable_token with
force_refresh (with --classic, a /cgi-bin/token call), so that the old token stops working
at WeChat at once, on every host of the fleet; for a token that leaked. It wants --yes.
WeChat allows about 20 forced calls a day, 30 s apart; core's limits
(ForceRefreshInterval, ForceRefreshDailyLimit) are kept per process, so they bound one run
only: mind WeChat's limits yourself. With nothing stored, a token is fetched, then rotated.

WECHAT_APPSECRET comes from the environment only.`,
		Example: `  WECHAT_APPSECRET=… wechatconf force wx0123456789abcdef --yes`,
		Args:    appIDArg,
		RunE: func(cmd *cobra.Command, args []string) error {
			return e.force(cmd.Context(), args[0], reveal, yes)
		},
	}
	cmd.Flags().BoolVar(&yes, "yes", false, "confirm: the current access_token stops working at once, on every host")
	cmd.Flags().BoolVar(&reveal, "reveal", false, "print the new value itself")
	return cmd
}

func (e *env) force(ctx context.Context, appID string, reveal, yes bool) error {
	if !yes {
		return usagef("force: this rotates the access_token of %s: %s. Add --yes", appID, e.replaceCost())
	}
	s, err := e.openAccessToken(ctx, appID)
	if err != nil {
		return err
	}
	defer s.done()
	fmt.Fprintf(e.stderr, "%s: force: rotating the access_token of %s: the current one stops working at WeChat now\n", name, appID)
	tok, err := s.conf.ForceRefreshAccessToken(s.ctx, s.old.Value) // "": fetch one, then rotate it
	if err != nil {
		return err
	}
	e.printReplaced(s.key, s.old, tok, reveal)
	return nil
}
