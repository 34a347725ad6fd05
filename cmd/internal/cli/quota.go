package cli

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/wechatconf/wechatconf/core"
)

// The WeChat paths quota names.
const (
	pathToken       = "/cgi-bin/token"
	pathStableToken = "/cgi-bin/stable_token"
	pathClearQuota  = "/cgi-bin/clear_quota"
	pathClearV2     = "/cgi-bin/clear_quota/v2"
)

// QuotaView is what quota prints about one API's daily quota at WeChat,
// as text or as one JSON object (--json).
type QuotaView struct {
	// AppID is the account asked about.
	AppID string `json:"appid"`
	// CGIPath is the API whose quota it is, e.g. /cgi-bin/token.
	CGIPath string `json:"cgi_path"`
	// DailyLimit, Used and Remain are WeChat's daily_limit, used and
	// remain: calls a day, calls made today, calls left today (the day
	// ends at midnight Beijing time).
	DailyLimit int `json:"daily_limit"`
	Used       int `json:"used"`
	Remain     int `json:"remain"`
}

// ClearView is what quota reset prints once WeChat cleared the counts.
type ClearView struct {
	// AppID is the account whose daily counts were cleared.
	AppID string `json:"appid"`
	// Cleared is true: an error prints no ClearView.
	Cleared bool `json:"cleared"`
	// Via is the call that cleared them: /cgi-bin/clear_quota (with the
	// fleet's access_token) or /cgi-bin/clear_quota/v2 (with the
	// AppSecret, when no access_token could be had: its quota used up).
	Via string `json:"via"`
}

// clearCost says what quota reset spends.
var clearCost = fmt.Sprintf("WeChat allows clear_quota %d times a month per account (clear_quota and clear_quota/v2 together), and this spends one",
	core.ClearQuotaMonthlyLimit)

// quotaCommand: wechatconf quota APPID [--path /cgi-bin/token] | quota reset APPID --yes
func (e *env) quotaCommand() *cobra.Command {
	var path string
	cmd := &cobra.Command{
		Use:   "quota APPID [--path /cgi-bin/token] | quota reset APPID --yes",
		Short: "ask WeChat for an API's daily quota (limit, used, remaining); reset clears it",
		Long: `quota asks WeChat itself (POST /cgi-bin/openapi/quota/get) how many calls a day the account
may make to the API at --path (default /cgi-bin/token, the classic access_token call: 2,000
a day), how many it made today and how many remain; the counts reset at midnight Beijing
time. A fleet on stable_token (the default of refresh and force) counts against
--path /cgi-bin/stable_token. The call carries the fleet's access_token, got as any worker
of the fleet gets it (core.Conf: the stored one, or one normal token call through the
store's lock when none is valid). When the token quota itself is used up (45009) and no
valid token is stored, WeChat cannot be asked: quota reset can still clear it.

quota reset APPID --yes clears the account's daily counts (POST /cgi-bin/clear_quota with
the fleet's access_token), so that a fleet stopped by 45009 can fetch tokens again. ` + clearCost + `;
past that WeChat answers 48006 (exit 4). Without --yes it makes no call. When no
access_token can be had because the token quota is used up (45009), it clears with
/cgi-bin/clear_quota/v2, which takes the AppSecret instead of a token (one chance spent
either way, never two). A clear is made once, never retried: a clear that took effect but
whose reply was lost would spend another chance (quota shows whether it did).

WECHAT_APPSECRET comes from the environment only.`,
		Example: `  WECHAT_APPSECRET=… wechatconf quota wx0123456789abcdef
  WECHAT_APPSECRET=… wechatconf quota wx0123456789abcdef --path /cgi-bin/stable_token --json
  WECHAT_APPSECRET=… wechatconf quota reset wx0123456789abcdef --yes`,
		Args: appIDArg,
		RunE: func(cmd *cobra.Command, args []string) error {
			return e.quota(cmd.Context(), args[0], path)
		},
	}
	cmd.Flags().StringVar(&path, "path", pathToken, "the API whose quota to show (WeChat's cgi_path: the path alone, with its leading /)")
	cmd.AddCommand(e.quotaResetCommand())
	return cmd
}

// quotaResetCommand: wechatconf quota reset APPID --yes
func (e *env) quotaResetCommand() *cobra.Command {
	var yes bool
	cmd := &cobra.Command{
		Use:   "reset APPID --yes",
		Short: fmt.Sprintf("clear the account's daily API counts (clear_quota): WeChat allows it %d times a month", core.ClearQuotaMonthlyLimit),
		Long: `reset clears the account's daily API counts at WeChat (POST /cgi-bin/clear_quota with the
fleet's access_token; /cgi-bin/clear_quota/v2 with the AppSecret when the token quota is
used up and no token can be had). ` + clearCost + `. It wants --yes; without it, no call
is made.

WECHAT_APPSECRET comes from the environment only.`,
		Example: `  WECHAT_APPSECRET=… wechatconf quota reset wx0123456789abcdef --yes`,
		Args:    appIDArg,
		RunE: func(cmd *cobra.Command, args []string) error {
			return e.quotaReset(cmd.Context(), args[0], yes)
		},
	}
	cmd.Flags().BoolVar(&yes, "yes", false, fmt.Sprintf("confirm: spend one of WeChat's %d clear_quota calls a month", core.ClearQuotaMonthlyLimit))
	return cmd
}

func (e *env) quota(ctx context.Context, appID, path string) error {
	if !strings.HasPrefix(path, "/") {
		return usagef("quota: --path %q: give the API path alone, with its leading / (e.g. %s)", path, pathToken)
	}
	s, err := e.openAccessToken(ctx, appID)
	if err != nil {
		return err
	}
	defer s.done()
	q, err := s.conf.Quota(s.ctx, path)
	if err != nil {
		if tokenQuotaUsedUp(err) {
			return wrapf(err, "quota %s: no access_token to ask WeChat with: %s\n"+
				"  The token quota is used up and no valid token is stored. `%s quota reset %s --yes` clears it without a token (clear_quota/v2): %s",
				appID, errText(err), name, appID, clearCost)
		}
		return wrapf(err, "quota %s %s: %s", appID, path, errText(err))
	}
	v := QuotaView{AppID: appID, CGIPath: path, DailyLimit: q.DailyLimit, Used: q.Used, Remain: q.Remain}
	if e.g.json {
		e.printJSON(v)
		return nil
	}
	fmt.Fprintf(e.stdout, "%s  %s  limit=%d used=%d remaining=%d\n", v.AppID, v.CGIPath, v.DailyLimit, v.Used, v.Remain)
	return nil
}

func (e *env) quotaReset(ctx context.Context, appID string, yes bool) error {
	if !yes {
		return usagef("quota reset: this clears the daily API counts of %s at WeChat: %s. Nothing done, no call to WeChat. Add --yes", appID, clearCost)
	}
	s, err := e.openAccessToken(ctx, appID)
	if err != nil {
		return err
	}
	defer s.done()
	fmt.Fprintf(e.stderr, "%s: quota reset: clearing the daily API counts of %s: %s\n", name, appID, clearCost)
	via := pathClearQuota
	err = s.conf.ClearQuota(s.ctx)
	if tokenQuotaUsedUp(err) {
		// No token, so clear_quota was not called: nothing spent yet.
		fmt.Fprintf(e.stderr, "%s: quota reset: no access_token to call clear_quota with (the token quota is used up): clearing with clear_quota/v2 and the AppSecret instead\n", name)
		via = pathClearV2
		err = s.conf.ClearQuotaByAppSecret(s.ctx)
	}
	if err != nil {
		return wrapf(err, "quota reset %s: %s", appID, errText(err))
	}
	v := ClearView{AppID: appID, Cleared: true, Via: via}
	if e.g.json {
		e.printJSON(v)
		return nil
	}
	fmt.Fprintf(e.stdout, "%s  cleared  via=%s\n", v.AppID, v.Via)
	return nil
}

// wrappedError is an error with a text of its own that wraps err, for
// errors.As and the exit code: core's error in a sentence of the
// command's, without the "wechatconf: " core's own text begins with.
type wrappedError struct {
	msg string
	err error
}

func (w *wrappedError) Error() string { return w.msg }
func (w *wrappedError) Unwrap() error { return w.err }

// wrapf returns an error reading format (with errText(err) among its
// arguments, as the caller places it) and wrapping err.
func wrapf(err error, format string, a ...any) error {
	return &wrappedError{msg: fmt.Sprintf(format, a...), err: err}
}

// tokenQuotaUsedUp reports whether err is the token call's 45009: the
// access_token quota used up, so no call that needs a token was made.
func tokenQuotaUsedUp(err error) bool {
	var apiErr *core.APIError
	return errors.As(err, &apiErr) && apiErr.QuotaExceeded() && (apiErr.Path == pathToken || apiErr.Path == pathStableToken)
}
