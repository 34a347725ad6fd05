package cli

import (
	"fmt"

	"github.com/spf13/cobra"
)

// getCommand: wechatconf get APPID [KIND] | --key KEY [--reveal]
func (e *env) getCommand() *cobra.Command {
	var rawKey string
	var reveal bool
	cmd := &cobra.Command{
		Use:   "get APPID [access_token|jsapi_ticket|wx_card_ticket] | --key KEY",
		Short: "read one key from the store (no WeChat call, no lock)",
		Long: `get reads one key from the store, with no WeChat call and no lock: the key, the masked
value (its length and fingerprint; the value itself with --reveal), expires_at, the time
left and the age estimated from WeChat's 2-hour lifetime. --key reads any raw key. An
authorizer's record (a key ending in /authorizer_refresh_token) and a WeCom vendor corp's
(…/wecomvendor/SUITE_ID/CORPID/permanent_code) are shown by their state; a corp's
permanent_code is never printed, with --reveal neither (its fingerprint and length only).

Exit: 0 found and valid, 1 found but expired, 3 absent (with where it looked and the
keys nearby) or a withdrawn authorization (a cancelled install).`,
		Example: `  wechatconf get wx0123456789abcdef
  wechatconf get wx0123456789abcdef jsapi_ticket --json
  wechatconf get --key wechatconf/open/wxcomponent/wxauthorizer/authorizer_refresh_token`,
		Args:              positional(0, 2, "give an APPID and optionally a kind (or --key KEY)"),
		ValidArgsFunction: completeKind,
		RunE: func(cmd *cobra.Command, args []string) error {
			key, err := e.resolveKey("get", rawKey, args)
			if err != nil {
				return err
			}
			st, closeStore, err := e.openStore(cmd.Context())
			if err != nil {
				return err
			}
			defer closeStore()
			ctx, cancel := e.withTimeout(cmd.Context())
			defer cancel()
			v, err := read(ctx, st, key, reveal)
			if err != nil {
				return err
			}
			e.print(v)
			switch v.Status {
			case StatusAbsent:
				return e.notFound(cmd.Context(), st, []string{key}, key+": not found")
			case StatusWithdrawn, StatusCancelled:
				return exitCodeError{ExitNotFound, withdrawnError(v)}
			case StatusCorrupt:
				return fmt.Errorf("%s: %s", key, v.Error)
			case StatusExpired:
				return exitCodeError{ExitExpired, nil}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&rawKey, "key", "", "read this raw store key")
	cmd.Flags().BoolVar(&reveal, "reveal", false, "print the value itself")
	return cmd
}

// completeKind completes get's and watch's second argument, the kind.
func completeKind(_ *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
	if len(args) == 1 {
		return kinds, cobra.ShellCompDirectiveNoFileComp
	}
	return nil, cobra.ShellCompDirectiveNoFileComp
}
