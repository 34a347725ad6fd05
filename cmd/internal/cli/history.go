package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/wechatconf/wechatconf/core"
	"github.com/wechatconf/wechatconf/core/openplatform"
	"github.com/wechatconf/wechatconf/core/wecomvendor"
)

// History is what history prints: a credential's fetch ledger as core
// stores it (core.Ledger, whose fields it carries: entries, days, lost),
// with the key it was read from and the daily limits its counts are
// measured against (--json prints it as one object, which decodes into a
// core.Ledger too).
type History struct {
	// Key is the credential's store key (the ledger's is
	// core.LedgerKey(Key)).
	Key string `json:"key"`
	core.Ledger
	// DailyLimit is WeChat's daily limit on the credential's fetches that
	// the counts are shown against (core.ClassicTokenDailyLimit, 2,000, for
	// an Official Account's access_token fetched with the classic
	// /cgi-bin/token), 0 for none known.
	DailyLimit int `json:"daily_limit,omitempty"`
	// ForcedDailyLimit is the daily limit on forced fetches (stable_token's
	// force_refresh: 20), 0 for none.
	ForcedDailyLimit int `json:"forced_daily_limit,omitempty"`
}

// historyCommand: wechatconf history APPID [KIND] | --key KEY [--json]
func (e *env) historyCommand() *cobra.Command {
	var rawKey string
	cmd := &cobra.Command{
		Use:   "history APPID [access_token|jsapi_ticket|wx_card_ticket] | --key KEY",
		Short: "the fleet's fetch ledger of a credential: who fetched, when, why, and outside fetches",
		Long: `history prints the fleet's fetch ledger of one credential (core.ReadLedger: the store key
plus /fetch_ledger, written by every process of the fleet after each fetch): the last
fetches, oldest first, each with its time (UTC, and the Beijing day WeChat's quotas count),
the instance that made it (core.Config.Instance; "wechatconf-cli@HOST/PID" for this
command's refresh and force, reason operator), the reason (expiry, rejected, forced,
outage, operator), whether it forced a new token (stable_token's force_refresh), the
fingerprints of the token issued and of the one it replaced (core.Fingerprint: the first 12
hex digits of the token's SHA-256; never the token), WeChat's latency and the wait for the
store's lock. Under a fetch that replaced a token someone outside the fleet had killed, an
OUTSIDE FETCH line gives the evidence — the rejected token, which instance fetched it and
when, its age when WeChat rejected it, the API and errcode — and what to do. Then the
fleet's counts per Beijing day against WeChat's daily limits: for an access_token, 2,000
token calls (the classic /cgi-bin/token's limit; stable_token's own is larger) and 20
forced refreshes; for tickets no limit is known. No WeChat call, no lock.

Exit: 0 printed, 3 no ledger (no fetch recorded yet, the fleet runs with
core.Config.NoLedger, or the key is mistaken: with where it looked and the keys nearby),
2 a ledger that does not decode or a store failure.`,
		Example: `  wechatconf history wx0123456789abcdef
  wechatconf history wx0123456789abcdef jsapi_ticket
  wechatconf history wx0123456789abcdef --json | jq '.entries[] | select(.outside)'
  wechatconf history --key wechatconf/wecom/ww0123456789/1000002/access_token`,
		Args:              positional(0, 2, "give an APPID and optionally a kind (or --key KEY)"),
		ValidArgsFunction: completeKind,
		RunE: func(cmd *cobra.Command, args []string) error {
			key, err := e.resolveKey("history", strings.TrimSuffix(rawKey, core.LedgerKeySuffix), args)
			if err != nil {
				return err
			}
			return e.history(cmd.Context(), key)
		},
	}
	cmd.Flags().StringVar(&rawKey, "key", "", "the credential's raw store key (or its ledger's, …/fetch_ledger)")
	return cmd
}

func (e *env) history(ctx context.Context, key string) error {
	st, closeStore, err := e.openStore(ctx)
	if err != nil {
		return err
	}
	defer closeStore()
	rctx, cancel := e.withTimeout(ctx)
	defer cancel()
	l, err := core.ReadLedger(rctx, st, key)
	switch {
	case errors.Is(err, core.ErrNotFound):
		return e.notFound(ctx, st, []string{core.LedgerKey(key)}, fmt.Sprintf(
			"%s: no fetch ledger (no fetch recorded yet, the fleet runs with Config.NoLedger, or another key prefix)", core.LedgerKey(key)))
	case err != nil:
		return fmt.Errorf("history: %w", err)
	}
	h := History{Key: key, Ledger: l}
	h.DailyLimit, h.ForcedDailyLimit = ledgerLimits(ParseKey(key))
	if e.g.json {
		e.printJSON(h)
		return nil
	}
	var current *core.Token
	if t, err := st.Get(rctx, key); err == nil {
		if t = servedOf(ParseKey(key), t); t.Value != "" {
			current = &t // none for a record holding no token yet, or withdrawn
		}
	}
	e.printHistory(h, current, time.Now())
	return nil
}

// ledgerLimits returns WeChat's daily limits on the fetches and on the
// forced fetches of the credential info names, 0 for none known: an
// Official Account's (or Mini Program's) access_token has both, the
// classic /cgi-bin/token's 2,000 calls and stable_token's 20 forced
// refreshes — the ledger does not say which API the fleet calls, so both
// are shown.
func ledgerLimits(info KeyInfo) (fetches, forced int) {
	if info.Platform == PlatformOfficialAccount && strings.TrimSuffix(info.Kind, core.LedgerKeySuffix) == "access_token" {
		return core.ClassicTokenDailyLimit, core.DefaultForceRefreshDailyLimit
	}
	return 0, 0
}

// beijing is the time zone of WeChat's days (fixed: China keeps no DST).
var beijing = time.FixedZone("CST", 8*60*60)

// printHistory prints h as text: the records as a table, each outside
// fetch under its record, then the days' counts. current is the token
// stored now (nil if none).
func (e *env) printHistory(h History, current *core.Token, now time.Time) {
	w := e.stdout
	fmt.Fprintf(w, "%s: %d fetch(es) recorded", core.LedgerKey(h.Key), len(h.Entries))
	if h.Lost > 0 {
		fmt.Fprintf(w, ", %d lost (a process's queue overflowed while the store was down)", h.Lost)
	}
	fmt.Fprintln(w)
	if current != nil {
		fmt.Fprintf(w, "stored now: token %s", core.Fingerprint(current.Value))
		if !current.ExpiresAt.IsZero() {
			fmt.Fprintf(w, ", expires %s (in %s)", current.ExpiresAt.UTC().Format(time.RFC3339), current.ExpiresAt.Sub(now).Round(time.Second))
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintln(w)

	// The table is laid out apart, then its rows are printed with the
	// outside-fetch lines between them: a line without a tab would end
	// tabwriter's column block and misalign the rows after it.
	var tb bytes.Buffer
	tw := tabwriter.NewWriter(&tb, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "AT (UTC)\tBEIJING DAY\tINSTANCE\tREASON\tFORCED\tTOKEN\tREPLACED\tLATENCY\tLOCK WAIT")
	for _, r := range h.Entries {
		forced := "-"
		if r.Forced {
			forced = "yes"
		}
		fmt.Fprintln(tw, strings.Join([]string{r.At.UTC().Format(time.RFC3339), r.At.In(beijing).Format(time.DateOnly), cell(r.Instance),
			cell(r.Reason), forced, dash(r.Token), dash(r.Replaced), duration(r.Latency), duration(r.LockWait)}, "\t"))
	}
	tw.Flush()
	rows := strings.Split(strings.TrimSuffix(tb.String(), "\n"), "\n")
	fmt.Fprintln(w, rows[0])
	for i, r := range h.Entries {
		fmt.Fprintln(w, rows[i+1])
		if r.Outside != nil {
			fmt.Fprintln(w, outsideText(r.Outside))
		}
	}

	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "BEIJING DAY\tFETCHES\tOF DAILY LIMIT\tFORCED\tOF DAILY LIMIT\tOUTSIDE")
	for i := len(h.Days) - 1; i >= 0; i-- { // oldest first, as the records
		d := h.Days[i]
		fmt.Fprintf(tw, "%s\t%d\t%s\t%d\t%s\t%d\n", d.Day, d.Fetches, share(d.Fetches, h.DailyLimit), d.Forced, share(d.Forced, h.ForcedDailyLimit), d.Outside)
	}
	tw.Flush()
	if h.DailyLimit > 0 {
		fmt.Fprintf(w, "(limits: WeChat's %d classic /cgi-bin/token calls and %d forced stable_token refreshes per AppID a Beijing day; stable_token's own call quota is larger)\n",
			h.DailyLimit, h.ForcedDailyLimit)
	}
}

// outsideText is the OUTSIDE FETCH line of a record: the evidence and what
// to do.
func outsideText(o *core.OutsideFetch) string {
	var b strings.Builder
	fmt.Fprintf(&b, "  OUTSIDE FETCH: token %s, fetched by %s at %s, was rejected %s later",
		o.Rejected, cell(o.FetchedBy), o.FetchedAt.UTC().Format(time.RFC3339), age(o.Age))
	switch {
	case o.Path != "" && o.Code != 0:
		fmt.Fprintf(&b, " by %s (errcode %d)", cell(o.Path), o.Code)
	case o.Path != "":
		fmt.Fprintf(&b, " by %s", cell(o.Path))
	case o.Code != 0:
		fmt.Fprintf(&b, " (errcode %d)", o.Code)
	}
	if o.Forced {
		b.WriteString(", and the fleet fetched nothing since: someone outside it forced a new token (stable_token's force_refresh).\n" +
			"    Find who calls stable_token with force_refresh for this AppID (a script, another environment) and make it a worker of the token server.")
	} else {
		b.WriteString(", and the fleet fetched nothing since: someone outside it fetched a token for this AppID (another environment, an old deployment, a script).\n" +
			"    Use stable_token (core.Config.TokenAPI; it invalidates no one's token) or move the other environment to the token server.")
	}
	return b.String()
}

// share is n of limit as "12.5% of 2000", "-" for no limit.
func share(n, limit int) string {
	if limit <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f%% of %d", 100*float64(n)/float64(limit), limit)
}

// duration is d rounded for the table ("-" for none).
func duration(d time.Duration) string {
	switch {
	case d <= 0:
		return "-"
	case d < time.Millisecond:
		return d.Round(time.Microsecond).String()
	}
	return d.Round(time.Millisecond).String()
}

// age is a token's age rounded for the text: to the second, or the
// millisecond under a second.
func age(d time.Duration) time.Duration {
	if d < time.Second {
		return d.Round(time.Millisecond)
	}
	return d.Round(time.Second)
}

// dash is s, or "-" for "".
func dash(s string) string {
	if s == "" {
		return "-"
	}
	return cell(s)
}

// servedOf is the token a stored value serves: a durable record (an Open
// Platform authorizer's, a WeCom vendor corp's) holds its access token
// with the secret, and the ledger's TOKEN column fingerprints that token,
// not the record; any other value is its own token. A record that does
// not parse is shown as it is.
func servedOf(info KeyInfo, t core.Token) core.Token {
	switch {
	case info.Platform == PlatformOpenAuthorizer && info.Kind == "authorizer_refresh_token":
		if r, err := openplatform.ParseAuthorizationRecord(t); err == nil {
			return core.Token{Value: r.AccessToken.Reveal(), ExpiresAt: r.ExpiresAt}
		}
	case info.Platform == PlatformWeComAuthCorp && info.Kind == "permanent_code":
		if r, err := wecomvendor.ParseAuthorizationRecord(t); err == nil {
			return core.Token{Value: r.AccessToken.Reveal(), ExpiresAt: r.ExpiresAt}
		}
	}
	return t
}
