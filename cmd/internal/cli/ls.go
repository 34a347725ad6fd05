package cli

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/spf13/cobra"

	"github.com/wechatconf/wechatconf/core"
)

// Entry is one line of ls: a credential by its human key, its state and
// its holder, never its value (--json prints it as one object).
type Entry struct {
	KeyInfo
	// Status is a View's: valid, expired, absent (gone between the
	// listing and the read), error; for a record authorized, withdrawn (a
	// corp's: installed, cancelled) or corrupt; for a fetch ledger (KeyInfo.IsLedger) StatusLedger, or
	// corrupt.
	Status string `json:"status"`
	// Since is when a record's state was set, if known.
	Since *time.Time `json:"since,omitempty"`
	// ExpiresAt and ExpiresIn (seconds) are the value's expiry (a
	// record's: its access token's).
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
	ExpiresIn *float64   `json:"expires_in_seconds,omitempty"`
	// Lock is the key's refresh lock, on a store that can tell it (Redis).
	Lock *LockView `json:"lock,omitempty"`
	// RedisKey is the Redis name of the key's token hash, for redis-cli
	// (a Redis store's names are hashed: SCAN cannot find an AppID).
	RedisKey string `json:"redis_key,omitempty"`
	// Error says why Status is error or corrupt.
	Error string `json:"error,omitempty"`
}

// lsCommand: wechatconf ls [ACCOUNT] [--all-prefixes]
func (e *env) lsCommand() *cobra.Command {
	var all bool
	cmd := &cobra.Command{
		Use:   "ls [ACCOUNT]",
		Short: "list the credentials the store holds, by account, kind and platform (never values)",
		Long: `ls lists the credentials the store holds under the key prefix (--prefix; every prefix
with --all-prefixes), one line each, by what its key says (README's "Credential kinds"):
the platform (official_account, which Mini Programs share; wecom, an app's
CORPID/AGENTID or a corp's CORPID; open_platform_component; open_platform_authorizer,
COMPONENT/APPID; wecom_suite, a WeCom vendor's SUITE_ID; wecom_auth_corp, SUITE_ID/CORPID,
a corp's record that holds its permanent_code, status installed or cancelled; wecom_provider,
the vendor's CORPID; other, a key of no known layout), the account, the kind, the status and
expiry as get shows them (a credential's fetch ledger, KIND/fetch_ledger, is listed beside
it with status ledger: see history), and the refresh lock where the store can tell it (Redis: free,
or held with the lease left; "-" elsewhere). On Redis it also names each key's token hash,
for redis-cli. ACCOUNT keeps the keys of one AppID, CorpID, component or suite id. Values
are never printed.

The store must be able to list its keys (core.KeyLister); one that cannot is an error.
Exit: 0 listed, 2 a failure (a key that could not be read is listed with its error),
3 nothing listed (with where it looked and the key prefixes the store holds).`,
		Example: `  wechatconf ls
  wechatconf ls --all-prefixes --json
  wechatconf ls wx0123456789abcdef`,
		Args: positional(0, 1, "give at most one ACCOUNT (an AppID, CorpID, component AppID or suite id)"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return e.ls(cmd.Context(), args, all)
		},
	}
	cmd.Flags().BoolVarP(&all, "all-prefixes", "A", false, "list the keys under every key prefix, not only --prefix")
	return cmd
}

func (e *env) ls(ctx context.Context, args []string, all bool) error {
	st, closeStore, err := e.openStore(ctx)
	if err != nil {
		return err
	}
	defer closeStore()
	kl, ok := st.(core.KeyLister)
	if !ok {
		return fmt.Errorf("ls: the store %s cannot list its keys (its TokenStore, %T, does not implement core.KeyLister): inspect APPID reads the known keys of one account", e.spec, st)
	}
	lctx, cancel := e.withTimeout(ctx)
	defer cancel()
	listPrefix := e.g.prefix + "/"
	if all {
		listPrefix = ""
	}
	keys, err := kl.ListKeys(lctx, listPrefix)
	if err != nil {
		return fmt.Errorf("ls: listing the keys of %s: %w", e.spec, err)
	}
	if len(args) == 1 {
		keys = filterKeys(keys, "/"+args[0]+"/")
	}
	if len(keys) == 0 {
		return e.lsNotFound(ctx, kl, args, all)
	}
	locks := newLockReader(e.spec, st)
	defer locks.close()
	redisNames, _ := st.(redisNamer)
	var entries []Entry
	var readErrs []error
	for _, k := range keys {
		info := ParseKey(k)
		if info.Platform == PlatformOther && !all {
			info.Prefix, info.Kind = e.g.prefix, strings.TrimPrefix(k, e.g.prefix+"/")
		}
		var v View
		if info.IsLedger() {
			v, err = readLedgerEntry(lctx, st, k)
		} else {
			v, err = read(lctx, st, k, false)
		}
		if err != nil {
			readErrs = append(readErrs, err)
		}
		en := Entry{KeyInfo: info, Status: v.Status, Since: v.Since, ExpiresAt: v.ExpiresAt, ExpiresIn: v.ExpiresIn, Error: v.Error}
		en.Lock = locks.read(lctx, k)
		if redisNames != nil {
			en.RedisKey, _ = redisNames.RedisKeys(k)
		}
		entries = append(entries, en)
	}
	if e.g.json {
		for _, en := range entries {
			e.printJSON(en)
		}
	} else {
		e.printTable(entries, all, redisNames != nil)
	}
	if len(readErrs) > 0 {
		return fmt.Errorf("ls: %d of %d keys could not be read; the first: %w", len(readErrs), len(keys), readErrs[0])
	}
	return nil
}

// readLedgerEntry reads the fetch ledger stored under key (a key ending in
// core.LedgerKeySuffix) for ls: status ledger, or corrupt (with the error)
// when it does not decode; a store error is returned.
func readLedgerEntry(ctx context.Context, st core.TokenStore, key string) (View, error) {
	_, err := core.ReadLedger(ctx, st, strings.TrimSuffix(key, core.LedgerKeySuffix))
	switch {
	case err == nil:
		return View{Key: key, Status: StatusLedger}, nil
	case errors.Is(err, core.ErrNotFound):
		return View{Key: key, Status: StatusAbsent}, nil
	case errors.Is(err, core.ErrLedgerCorrupt):
		return View{Key: key, Status: StatusCorrupt, Error: errText(err)}, nil
	}
	return View{Key: key, Status: StatusError, Error: err.Error()}, err
}

// filterKeys returns the keys that contain s.
func filterKeys(keys []string, s string) []string {
	var out []string
	for _, k := range keys {
		if strings.Contains(k, s) {
			out = append(out, k)
		}
	}
	return out
}

// cell is s as a table cell: a key may hold any byte but NUL, so one with
// a control character, a non-UTF-8 byte or white space that would break
// the table (or forge a row) is shown quoted, Go-escaped, as --json's
// string would be unambiguous.
func cell(s string) string {
	for _, r := range s {
		if r == utf8.RuneError || unicode.IsControl(r) || (unicode.IsSpace(r)) {
			return strconv.Quote(s)
		}
	}
	return s
}

// printTable prints entries as an aligned table.
func (e *env) printTable(entries []Entry, prefixes, redis bool) {
	tw := tabwriter.NewWriter(e.stdout, 0, 8, 2, ' ', 0)
	row := func(cells ...string) {
		if !prefixes {
			cells = cells[1:]
		}
		if !redis {
			cells = cells[:len(cells)-1]
		}
		for i, c := range cells {
			cells[i] = cell(c)
		}
		fmt.Fprintln(tw, strings.Join(cells, "\t"))
	}
	row("PREFIX", "PLATFORM", "ACCOUNT", "KIND", "STATUS", "EXPIRES_AT", "LEFT", "LOCK", "REDIS_KEY")
	for _, en := range entries {
		prefix, exp, left := en.Prefix, "-", "-"
		if prefix == "" {
			prefix = "-"
		}
		if en.ExpiresAt != nil {
			exp = en.ExpiresAt.Format(time.RFC3339)
			left = seconds(*en.ExpiresIn).String()
		}
		status := en.Status
		if en.Error != "" {
			status += " (" + en.Error + ")"
		}
		row(prefix, en.Platform, en.Account(), en.Kind, status, exp, left, en.Lock.String(), en.RedisKey)
	}
	tw.Flush()
}

// lsNotFound is ls's exit 3: where it looked, and the key prefixes the
// store holds keys under.
func (e *env) lsNotFound(ctx context.Context, kl core.KeyLister, args []string, all bool) error {
	var b strings.Builder
	what := "no credential"
	if len(args) == 1 {
		what = "no credential of " + args[0]
	}
	if all {
		fmt.Fprintf(&b, "ls: %s in %s", what, e.spec)
	} else {
		fmt.Fprintf(&b, "ls: %s under key prefix %q in %s", what, e.g.prefix, e.spec)
	}
	fmt.Fprintf(&b, "\n  looked in: store %s%s", e.spec, storePrefixText(e.spec))
	if !all {
		fmt.Fprintf(&b, ", key prefix %q (--prefix)", e.g.prefix)
	}
	ctx, cancel := e.withTimeout(ctx)
	defer cancel()
	if !all {
		keys, err := kl.ListKeys(ctx, "")
		switch {
		case err != nil:
			fmt.Fprintf(&b, "\n  nearby: the store's keys could not be listed: %v", err)
		default:
			if len(args) == 1 {
				keys = filterKeys(keys, "/"+args[0]+"/")
			}
			counts := map[string]int{}
			for _, k := range keys {
				counts[ParseKey(k).Prefix]++
			}
			var ps []string
			for p := range counts {
				ps = append(ps, p)
			}
			sort.Strings(ps)
			if len(ps) == 0 {
				b.WriteString("\n  nearby: none under any other key prefix")
			}
			for _, p := range ps {
				if p == "" {
					fmt.Fprintf(&b, "\n  nearby: %d key(s) of no known layout (ls --all-prefixes)", counts[p])
					continue
				}
				fmt.Fprintf(&b, "\n  nearby: %d key(s) under key prefix %q: try --prefix %s", counts[p], p, p)
			}
		}
	}
	for _, line := range e.otherStorePrefixes(ctx, nil) {
		b.WriteString("\n  " + line)
	}
	return exitCodeError{ExitNotFound, errors.New(b.String())}
}
