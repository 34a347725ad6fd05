// Command wechatconf is the operator's view of the credentials a fleet
// keeps in its store: read them, refresh or rotate one, inspect the keys
// of an account (there is no list command: nothing scans the store), watch
// one change. It opens any store by URL, with the same
// parser as wechatconf-tokenserver (package cmd/storeurl):
//
//	wechatconf [global flags] get     APPID [access_token|jsapi_ticket|wx_card_ticket] [--reveal]
//	wechatconf [global flags] get     --key KEY [--reveal]
//	wechatconf [global flags] refresh APPID                  (WECHAT_APPSECRET in the environment)
//	wechatconf [global flags] force   APPID --yes            (WECHAT_APPSECRET in the environment)
//	wechatconf [global flags] inspect APPID | --wecom CORPID/AGENTID | --component COMPONENT_APPID [APPID]
//	wechatconf [global flags] watch   APPID [KIND] | --key KEY [--interval 2s] [--count N]
//
// Global flags, accepted before or after the command:
//
//	--store URL     the store (env WECHATCONF_STORE; no default): memory:, file:///dir,
//	                redis://host:6379/0, postgres://user@host/db, etcd://host:2379.
//	                A URL holding a password is refused as a flag (the process
//	                list shows flags): put it in WECHATCONF_STORE.
//	--prefix P      the Config.KeyPrefix the fleet uses (default wechatconf)
//	--base-url URL  the WeChat API (default https://api.weixin.qq.com; env WECHAT_BASE_URL)
//	--classic       fetch with the classic /cgi-bin/token instead of stable_token
//	--timeout D     how long one command may take (default 30s; watch: each poll)
//	--json          one JSON object per line on stdout, with the same fields as the text
//
// Nothing of a token's value is printed unless --reveal is given: a value
// shows as its length and a fingerprint (the first 8 hex digits of its
// SHA-256), enough to tell two values apart and to compare what two hosts
// see, and nothing an attacker can use. The AppSecret is read from the
// environment only (WECHAT_APPSECRET) and never printed; errors show the
// store URL redacted.
//
// Commands:
//
//   - get reads one key from the store (no WeChat call, no lock): the key,
//     the masked value, expires_at, the time left, and the age estimated
//     from WeChat's 2-hour lifetime. --key reads any raw key.
//   - refresh is the compare-and-refresh a worker makes when WeChat rejects
//     the token (core.Conf.RefreshAccessToken with the stored value as the
//     rejected one): through the store's lock, so a fleet asking together
//     fetches once, and a value another host already replaced is returned
//     as it is. Note that stable_token hands a still-valid token back
//     unchanged, and core then escalates once to force_refresh, as for any
//     rejection.
//   - force rotates the access_token (core.Conf.ForceRefreshAccessToken):
//     the old token stops working at WeChat at once, on every host. It
//     wants --yes. WeChat allows about 20 a day, 30 s apart; core's limits
//     (ForceRefreshInterval, ForceRefreshDailyLimit) are kept per process,
//     so they bound a single run only: mind WeChat's limits yourself.
//   - inspect lists the keys of an Official Account (access_token,
//     jsapi_ticket, wx_card_ticket), a WeCom app (--wecom CORPID/AGENTID:
//     its access_token and agent_config_ticket, the corp's jsapi_ticket) or
//     an Open Platform component (--component: component_access_token and
//     component_verify_ticket; with an authorizer APPID its tickets and
//     its record under authorizer_refresh_token, which holds its access
//     token and refresh token together), each present or not with its
//     expiry. On Redis it also shows each key's refresh lock and the lease
//     left (one PTTL); the other stores cannot tell it cheaply (a flock, an
//     advisory lock, an etcd lease) and do not show it.
//   - An authorizer's record (any key ending in /authorizer_refresh_token,
//     in inspect, get --key and watch --key) is shown by what it says
//     (openplatform.ParseAuthorizationRecord): its state, authorized or
//     withdrawn, with since= when known; the fingerprint and length of
//     the refresh token alone, which change only with a new
//     authorization, so that a backup can be compared (the whole record
//     changes at every access-token refresh); and the access token's
//     expires_at and time left when it holds one. --reveal reveals the
//     refresh token, never the record. A value that does not parse is
//     status corrupt, with no value shown.
//   - watch polls one key every --interval and prints a line when its value
//     (fingerprint) or expiry changes, until SIGINT or --count N changes
//     (the starting line is not counted).
//
// Exit codes, for scripts:
//
//	0  done; get: found and not expired; inspect: at least one key present
//	1  get: found but expired
//	2  usage error, or any failure (store unreachable, WeChat error, an
//	   authorizer's record that does not parse, …)
//	3  not found or nothing usable: get: absent; inspect: none of the keys
//	   present; get and inspect: an authorizer's record says withdrawn
//	   (its tickets may still be stored, but nothing can renew them)
//	4  held back by a limit: core's (*core.LimitError: an interval or daily
//	   limit, a back-off) or WeChat's (a quota, core.IsQuotaExceeded: 45009;
//	   or, after core's retries, core.IsTemporary: 45011 minute quota, -1
//	   system busy): retry later, not at once
//
// The standard flag package parses the flags: the command has a handful of
// flags per subcommand, the token server already uses it, and it keeps the
// cmd module free of a CLI framework's dependencies. A small loop lets
// flags follow the positional arguments (wechatconf get wx… --reveal).
package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/wechatconf/wechatconf/cmd/storeurl"
	"github.com/wechatconf/wechatconf/core"
	"github.com/wechatconf/wechatconf/core/openplatform"
)

const name = "wechatconf"

// Exit codes.
const (
	exitOK       = 0
	exitExpired  = 1
	exitError    = 2
	exitNotFound = 3
	exitLimited  = 4
)

// wechatLifetime is the lifetime WeChat gives access_tokens and tickets,
// used only to estimate a token's age from its expiry.
const wechatLifetime = 2 * time.Hour

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

const usage = `usage: wechatconf [global flags] COMMAND [arguments]

commands:
  get     APPID [access_token|jsapi_ticket|wx_card_ticket] [--reveal]   read a key
  get     --key KEY [--reveal]                                         read any raw key
  refresh APPID            compare-and-refresh the access_token (WECHAT_APPSECRET in the environment)
  force   APPID --yes      rotate the access_token: the old one stops working at once
  inspect APPID | --wecom CORPID/AGENTID | --component COMPONENT_APPID [APPID]
  watch   APPID [KIND] | --key KEY [--interval 2s] [--count N]

global flags (before or after the command):
  --store URL  --prefix P  --base-url URL  --classic  --timeout D  --json

exit codes: 0 ok, 1 expired, 2 usage or other error (a corrupt record too), 3 not found or withdrawn, 4 held back by a limit (core's or WeChat's quota)
`

// globals are the flags every command takes.
type globals struct {
	store, prefix, baseURL string
	classic, json          bool
	timeout                time.Duration
}

// register defines the global flags on fs with g's current values as
// defaults, so that they can be given before and after the command.
func (g *globals) register(fs *flag.FlagSet) {
	fs.StringVar(&g.store, "store", g.store, "store URL without a password (env WECHATCONF_STORE): "+storeurl.Schemes)
	fs.StringVar(&g.prefix, "prefix", g.prefix, "the fleet's Config.KeyPrefix")
	fs.StringVar(&g.baseURL, "base-url", g.baseURL, "the WeChat API (env WECHAT_BASE_URL)")
	fs.BoolVar(&g.classic, "classic", g.classic, "fetch with the classic /cgi-bin/token instead of stable_token")
	fs.BoolVar(&g.json, "json", g.json, "print JSON, one object per line")
	fs.DurationVar(&g.timeout, "timeout", g.timeout, "how long the command may take (watch: each poll)")
}

// usageError is a mistake in the command line: exit code 2 with the usage.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, a ...any) error { return usageError{fmt.Sprintf(format, a...)} }

// exitError carries an exit code other than 2 out of a command.
type exitCodeError struct {
	code int
	err  error
}

func (e exitCodeError) Error() string { return e.err.Error() }

// env is one run's surroundings.
type env struct {
	g      globals
	getenv func(string) string
	stdout io.Writer
	stderr io.Writer
	spec   storeurl.Spec
}

// run runs the command line args and returns the exit code. Results go to
// stdout, diagnostics to stderr.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	e := &env{getenv: getenv, stdout: stdout, stderr: stderr}
	e.g = globals{prefix: "wechatconf", timeout: 30 * time.Second}
	top := flag.NewFlagSet(name, flag.ContinueOnError)
	top.SetOutput(io.Discard)
	e.g.register(top)
	if err := top.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return e.fail(err)
		}
		return e.fail(usageError{err.Error()})
	}
	if e.g.prefix == "" {
		e.g.prefix = "wechatconf" // core's default
	}
	if top.NArg() == 0 {
		return e.fail(usagef("no command"))
	}
	cmd, rest := top.Arg(0), top.Args()[1:]
	var f func(ctx context.Context, args []string) error
	switch cmd {
	case "get":
		f = e.get
	case "refresh":
		f = e.refresh
	case "force":
		f = e.force
	case "inspect":
		f = e.inspect
	case "watch":
		f = e.watch
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return exitOK
	default:
		return e.fail(usagef("unknown command %q", cmd))
	}
	return e.fail(f(ctx, rest))
}

// fail prints err (if any) and returns its exit code.
func (e *env) fail(err error) int {
	if err == nil {
		return exitOK
	}
	var ue usageError
	var ce exitCodeError
	var le *core.LimitError
	switch {
	case errors.Is(err, flag.ErrHelp):
		fmt.Fprint(e.stdout, usage)
		return exitOK
	case errors.As(err, &ue):
		fmt.Fprintf(e.stderr, "%s: %s\n(wechatconf help: usage)\n", name, ue.msg)
		return exitError
	case errors.As(err, &ce):
		if ce.err != nil && ce.err.Error() != "" {
			fmt.Fprintf(e.stderr, "%s: %s\n", name, errText(ce.err))
		}
		return ce.code
	case errors.As(err, &le), core.IsQuotaExceeded(err), core.IsTemporary(err):
		fmt.Fprintf(e.stderr, "%s: %s\n", name, errText(err))
		return exitLimited
	}
	fmt.Fprintf(e.stderr, "%s: %s\n", name, errText(err))
	return exitError
}

// errText is err's text without the "wechatconf: " that core's errors
// begin with: the command prints its own name first.
func errText(err error) string {
	return strings.TrimPrefix(err.Error(), name+": ")
}

// parse parses a command's flags, which may come before, between and after
// its positional arguments, and returns the positional ones.
func (e *env) parse(fs *flag.FlagSet, args []string) ([]string, error) {
	fs.SetOutput(io.Discard)
	e.g.register(fs)
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, usageError{fs.Name() + ": " + err.Error()}
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

// openStore parses and opens the store the flags or the environment name.
func (e *env) openStore(ctx context.Context) (core.TokenStore, func(), error) {
	raw, fromFlag := e.g.store, e.g.store != ""
	if !fromFlag {
		raw = e.getenv("WECHATCONF_STORE")
	}
	if raw == "" {
		return nil, nil, usagef("no store: give --store URL or set WECHATCONF_STORE (%s)", storeurl.Schemes)
	}
	spec, err := storeurl.Parse(raw)
	if err != nil {
		return nil, nil, err
	}
	if fromFlag && spec.HasPassword() {
		return nil, nil, usagef("--store %s holds a password: pass it in WECHATCONF_STORE instead (the process list shows flags)", spec)
	}
	if spec.Kind == storeurl.Memory {
		return nil, nil, usagef("--store memory: is this process's own memory: name the fleet's shared store")
	}
	if spec.Kind == storeurl.File {
		// The fleet's store exists: a mistyped directory must not become
		// a new, empty store (filestore.New creates it), where get says
		// "not found" and refresh fetches a token the fleet never sees.
		if fi, err := os.Stat(spec.Dir); err != nil || !fi.IsDir() {
			return nil, nil, fmt.Errorf("store %s: no such directory: the fleet's file store is a directory that exists", spec)
		}
	}
	openCtx, cancel := context.WithTimeout(ctx, e.g.timeout)
	defer cancel()
	st, closeFn, err := spec.Open(openCtx)
	if err != nil {
		return nil, nil, err
	}
	e.spec = spec
	return st, func() {
		if err := closeFn(); err != nil {
			fmt.Fprintf(e.stderr, "%s: closing the store: %v\n", name, err)
		}
	}, nil
}

// kinds of an Official Account's credentials, in inspect's order.
var kinds = []string{"access_token", "jsapi_ticket", "wx_card_ticket"}

// keyOf returns the store key of an AppID's credential kind.
func (e *env) keyOf(appID, kind string) string { return e.g.prefix + "/" + appID + "/" + kind }

// resolveKey turns get's and watch's arguments into a store key.
func (e *env) resolveKey(cmd, rawKey string, pos []string) (string, error) {
	if rawKey != "" {
		if len(pos) > 0 {
			return "", usagef("%s: --key names the key: no APPID or kind with it", cmd)
		}
		return rawKey, nil
	}
	switch len(pos) {
	case 0:
		return "", usagef("%s: give an APPID (or --key KEY)", cmd)
	case 1:
		return e.keyOf(pos[0], "access_token"), nil
	case 2:
		for _, k := range kinds {
			if pos[1] == k {
				return e.keyOf(pos[0], k), nil
			}
		}
		return "", usagef("%s: unknown kind %q: want one of %s (or --key KEY)", cmd, pos[1], strings.Join(kinds, ", "))
	}
	return "", usagef("%s: too many arguments %q", cmd, pos)
}

// view is what is printed about one key.
//
// An authorizer's record (a key ending in recordSuffix) is shown by what
// it says rather than as one opaque value: Status is the authorization
// state (authorized, withdrawn) or corrupt, Since when that state was set,
// Value (--reveal), Fingerprint and Length are the refresh token's alone —
// the whole record changes at every access-token refresh, the refresh
// token only with a new authorization, so its fingerprint is what a backup
// is compared with — and ExpiresAt, ExpiresIn and Age are the held access
// token's.
type view struct {
	Key         string     `json:"key"`
	Status      string     `json:"status"` // valid, expired, absent, error; a record: authorized, withdrawn, corrupt
	Since       *time.Time `json:"since,omitempty"`
	Value       string     `json:"value,omitempty"`
	Fingerprint string     `json:"fingerprint,omitempty"`
	Length      int        `json:"length,omitempty"`
	ExpiresAt   *time.Time `json:"expires_at,omitempty"`
	ExpiresIn   *float64   `json:"expires_in_seconds,omitempty"` // negative once expired
	Age         *float64   `json:"age_seconds,omitempty"`        // estimated from a 2-hour lifetime
	Error       string     `json:"error,omitempty"`
	// Lock is the key's refresh lock, where the store can tell it (Redis).
	Lock *lockView `json:"lock,omitempty"`
	// Previous is the fingerprint of the value refresh or force replaced.
	Previous string `json:"previous_fingerprint,omitempty"`
	Replaced *bool  `json:"replaced,omitempty"`
	// Time is when watch saw the change.
	Time *time.Time `json:"time,omitempty"`
}

type lockView struct {
	Held  bool     `json:"held"`
	Lease *float64 `json:"lease_seconds,omitempty"`
}

// fingerprint names a value without revealing it.
func fingerprint(v string) string {
	if v == "" {
		return ""
	}
	sum := sha256.Sum256([]byte(v))
	return "sha256:" + hex.EncodeToString(sum[:4])
}

// recordSuffix ends the key of an Open Platform authorizer's durable
// record (openplatform's Component.AuthorizationKey): one value holding the
// authorization state, the refresh token and the current access token.
const recordSuffix = "/authorizer_refresh_token"

// Statuses of a view beyond valid, expired, absent and error: an
// authorizer's record's state, or a record that does not parse.
const (
	statusAuthorized = "authorized"
	statusWithdrawn  = "withdrawn"
	statusCorrupt    = "corrupt"
)

// viewOf describes token t stored under key.
func viewOf(key string, t core.Token, reveal bool, now time.Time) view {
	if strings.HasSuffix(key, recordSuffix) {
		return recordViewOf(key, t, reveal, now)
	}
	v := view{Key: key, Status: "valid", Fingerprint: fingerprint(t.Value), Length: len(t.Value)}
	if reveal {
		v.Value = t.Value
	}
	v.setExpiry(t.ExpiresAt, now)
	return v
}

// setExpiry sets v's expiry fields from exp, if not zero, and marks v
// expired once exp has passed.
func (v *view) setExpiry(exp time.Time, now time.Time) {
	if exp.IsZero() {
		return
	}
	at := exp.UTC()
	left := exp.Sub(now).Round(time.Second)
	in := left.Seconds()
	v.ExpiresAt, v.ExpiresIn = &at, &in
	if left <= 0 {
		v.Status = "expired"
	}
	if left <= wechatLifetime {
		age := (wechatLifetime - left).Seconds()
		v.Age = &age
	}
}

// recordViewOf describes an authorizer's record t stored under key: its
// state, the refresh token (revealed with reveal, never the record
// itself) and the access token's expiry. A value that does not parse is
// status corrupt, with no value, fingerprint or length.
func recordViewOf(key string, t core.Token, reveal bool, now time.Time) view {
	rec, err := openplatform.ParseAuthorizationRecord(t)
	if err != nil {
		return view{Key: key, Status: statusCorrupt, Error: err.Error()}
	}
	v := view{Key: key, Status: statusAuthorized}
	if rec.Withdrawn {
		v.Status = statusWithdrawn
	}
	if !rec.Since.IsZero() {
		since := rec.Since.UTC()
		v.Since = &since
	}
	if refresh := rec.RefreshToken.Reveal(); refresh != "" {
		v.Fingerprint, v.Length = fingerprint(refresh), len(refresh)
		if reveal {
			v.Value = refresh
		}
	}
	if !rec.AccessToken.IsZero() {
		v.setExpiry(rec.ExpiresAt, now)
		v.Status = statusAuthorized // an expired access token is fetched again: the record is not expired
	}
	return v
}

// read gets key from st and describes it; a missing key is status absent.
func read(ctx context.Context, st core.TokenStore, key string, reveal bool) (view, error) {
	t, err := st.Get(ctx, key)
	switch {
	case errors.Is(err, core.ErrNotFound):
		return view{Key: key, Status: "absent"}, nil
	case err != nil:
		return view{Key: key, Status: "error", Error: err.Error()}, err
	}
	return viewOf(key, t, reveal, time.Now()), nil
}

// print writes v as text or JSON.
func (e *env) print(v view) {
	if e.g.json {
		b, _ := json.Marshal(v)
		fmt.Fprintf(e.stdout, "%s\n", b)
		return
	}
	var b strings.Builder
	if v.Time != nil {
		fmt.Fprintf(&b, "%s  ", v.Time.Format(time.RFC3339))
	}
	fmt.Fprintf(&b, "%s  %s", v.Key, v.Status)
	if v.Since != nil {
		fmt.Fprintf(&b, " since=%s", v.Since.Format(time.RFC3339))
	}
	record := strings.HasSuffix(v.Key, recordSuffix)
	switch {
	case v.Status == "absent" || v.Status == "error" || v.Status == statusCorrupt:
		if v.Error != "" {
			fmt.Fprintf(&b, "  error=%s", v.Error)
		}
	case record && v.Status == statusWithdrawn:
		// No token: nothing more to show.
	default:
		if record {
			b.WriteString("  refresh_token:") // the value, fingerprint and length are the refresh token's
		}
		if v.Value != "" {
			fmt.Fprintf(&b, "  value=%s", v.Value)
		}
		fmt.Fprintf(&b, "  fingerprint=%s length=%d", v.Fingerprint, v.Length)
		if v.Previous != "" {
			fmt.Fprintf(&b, " previous=%s", v.Previous)
		}
		if v.Replaced != nil {
			fmt.Fprintf(&b, " replaced=%t", *v.Replaced)
		}
		if record && v.ExpiresAt != nil {
			b.WriteString("  access_token:")
		}
		if v.ExpiresAt != nil {
			fmt.Fprintf(&b, "  expires_at=%s left=%s", v.ExpiresAt.Format(time.RFC3339), time.Duration(*v.ExpiresIn*float64(time.Second)))
		}
		if v.Age != nil {
			fmt.Fprintf(&b, " age≈%s", time.Duration(*v.Age*float64(time.Second)))
		}
	}
	if v.Lock != nil {
		if v.Lock.Held {
			fmt.Fprintf(&b, "  lock=held lease=%s", time.Duration(*v.Lock.Lease*float64(time.Second)).Round(time.Millisecond))
		} else {
			b.WriteString("  lock=free")
		}
	}
	fmt.Fprintln(e.stdout, b.String())
}

// get: wechatconf get APPID [KIND] | --key KEY [--reveal]
func (e *env) get(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("get", flag.ContinueOnError)
	rawKey := fs.String("key", "", "read this raw store key")
	reveal := fs.Bool("reveal", false, "print the value itself")
	pos, err := e.parse(fs, args)
	if err != nil {
		return err
	}
	key, err := e.resolveKey("get", *rawKey, pos)
	if err != nil {
		return err
	}
	st, closeStore, err := e.openStore(ctx)
	if err != nil {
		return err
	}
	defer closeStore()
	ctx, cancel := context.WithTimeout(ctx, e.g.timeout)
	defer cancel()
	v, err := read(ctx, st, key, *reveal)
	if err != nil {
		return err
	}
	e.print(v)
	switch v.Status {
	case "absent":
		return exitCodeError{exitNotFound, fmt.Errorf("%s: not found in %s", key, e.spec)}
	case statusWithdrawn:
		return exitCodeError{exitNotFound, withdrawnError(v)}
	case statusCorrupt:
		return fmt.Errorf("%s: %s", key, v.Error)
	case "expired":
		return exitCodeError{exitExpired, nil}
	}
	return nil
}

// withdrawnError says that the record v shows withdrawn holds nothing
// usable: exit code 3, as for a key that is absent.
func withdrawnError(v view) error {
	since := ""
	if v.Since != nil {
		since = " on " + v.Since.Format(time.RFC3339)
	}
	return fmt.Errorf("%s: the merchant withdrew the authorization%s: no refresh token, nothing usable until it authorizes again", v.Key, since)
}

// conf builds the Conf refresh and force use, with the AppSecret from the
// environment.
func (e *env) conf(st core.TokenStore, appID string) (*core.Conf, error) {
	secret := core.NewSecret(e.getenv("WECHAT_APPSECRET"))
	if secret.IsZero() {
		return nil, usagef("set WECHAT_APPSECRET in the environment (it is never taken from a flag)")
	}
	base := e.g.baseURL
	if base == "" {
		base = e.getenv("WECHAT_BASE_URL")
	}
	api := core.StableToken
	if e.g.classic {
		api = core.ClassicToken
	}
	return core.New(core.Config{
		AppID: appID, AppSecret: secret, BaseURL: base, Store: st, KeyPrefix: e.g.prefix, TokenAPI: api,
		Logger: slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
}

// refresh: wechatconf refresh APPID
func (e *env) refresh(ctx context.Context, args []string) error {
	return e.replace(ctx, "refresh", args)
}

// force: wechatconf force APPID --yes
func (e *env) force(ctx context.Context, args []string) error {
	return e.replace(ctx, "force", args)
}

// replace is refresh and force: both replace the stored access_token.
func (e *env) replace(ctx context.Context, cmd string, args []string) error {
	fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
	reveal := fs.Bool("reveal", false, "print the new value itself")
	var yes *bool
	if cmd == "force" {
		yes = fs.Bool("yes", false, "confirm: the current access_token stops working at once, on every host")
	}
	pos, err := e.parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("%s: give exactly one APPID", cmd)
	}
	appID := pos[0]
	if yes != nil && !*yes {
		return usagef("force: this invalidates the current access_token of %s at WeChat at once, on every host of the fleet, and WeChat allows about 20 a day: add --yes", appID)
	}
	if e.getenv("WECHAT_APPSECRET") == "" {
		return usagef("set WECHAT_APPSECRET in the environment (it is never taken from a flag)")
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
	ctx, cancel := context.WithTimeout(ctx, e.g.timeout)
	defer cancel()
	key := e.keyOf(appID, "access_token")
	old, err := st.Get(ctx, key)
	if err != nil && !errors.Is(err, core.ErrNotFound) {
		return err
	}
	var tok core.Token
	if cmd == "force" {
		fmt.Fprintf(e.stderr, "%s: force: rotating the access_token of %s: the current one stops working at WeChat now\n", name, appID)
		tok, err = conf.ForceRefreshAccessToken(ctx, old.Value) // "": fetch one, then rotate it
	} else {
		tok, err = conf.RefreshAccessToken(ctx, old.Value)
	}
	if err != nil {
		return err
	}
	v := viewOf(key, tok, *reveal, time.Now())
	v.Previous = fingerprint(old.Value)
	replaced := tok.Value != old.Value
	v.Replaced = &replaced
	e.print(v)
	return nil
}

// inspect: wechatconf inspect APPID | --wecom CORPID/AGENTID | --component C [APPID]
func (e *env) inspect(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("inspect", flag.ContinueOnError)
	wecom := fs.String("wecom", "", "a WeCom app: CORPID/AGENTID")
	component := fs.String("component", "", "an Open Platform component AppID (with an authorizer APPID: its keys)")
	pos, err := e.parse(fs, args)
	if err != nil {
		return err
	}
	var keys []string
	p := e.g.prefix
	switch {
	case *wecom != "" && *component != "":
		return usagef("inspect: --wecom or --component, not both")
	case *wecom != "":
		corp, agent, ok := strings.Cut(*wecom, "/")
		if !ok || corp == "" || agent == "" || strings.Contains(agent, "/") || len(pos) > 0 {
			return usagef("inspect: --wecom CORPID/AGENTID, and no APPID")
		}
		base := p + "/wecom/" + corp
		keys = []string{base + "/" + agent + "/access_token", base + "/" + agent + "/agent_config_ticket", base + "/jsapi_ticket"}
	case *component != "":
		base := p + "/open/" + *component
		switch len(pos) {
		case 0:
			keys = []string{base + "/component_access_token", base + "/component_verify_ticket"}
		case 1:
			// The authorizer's access token lives in its durable record,
			// under authorizer_refresh_token (openplatform's
			// AuthorizationKey), beside its tickets.
			for _, k := range append(kinds[1:len(kinds):len(kinds)], "authorizer_refresh_token") {
				keys = append(keys, base+"/"+pos[0]+"/"+k)
			}
		default:
			return usagef("inspect: --component COMPONENT_APPID [AUTHORIZER_APPID]")
		}
	default:
		if len(pos) != 1 {
			return usagef("inspect: give one APPID, --wecom CORPID/AGENTID or --component COMPONENT_APPID")
		}
		for _, k := range kinds {
			keys = append(keys, e.keyOf(pos[0], k))
		}
	}
	st, closeStore, err := e.openStore(ctx)
	if err != nil {
		return err
	}
	defer closeStore()
	ctx, cancel := context.WithTimeout(ctx, e.g.timeout)
	defer cancel()
	locks := newLockReader(e.spec, st)
	defer locks.close()
	present := 0
	var firstErr, withdrawn error
	for _, k := range keys {
		v, err := read(ctx, st, k, false)
		if err != nil && firstErr == nil {
			firstErr = err
		}
		switch v.Status {
		case "valid", "expired", statusAuthorized:
			present++
		case statusWithdrawn:
			withdrawn = withdrawnError(v)
		case statusCorrupt:
			if firstErr == nil {
				firstErr = fmt.Errorf("%s: %s", k, v.Error)
			}
		}
		v.Lock = locks.read(ctx, k)
		e.print(v)
	}
	if firstErr != nil {
		return firstErr
	}
	if withdrawn != nil {
		// The authorizer's tickets may still be stored, but nothing can
		// renew them: nothing usable, as when no key is present.
		return exitCodeError{exitNotFound, withdrawn}
	}
	if present == 0 {
		return exitCodeError{exitNotFound, fmt.Errorf("none of the %d keys is in %s", len(keys), e.spec)}
	}
	return nil
}

// watch: wechatconf watch APPID [KIND] | --key KEY [--interval D] [--count N]
func (e *env) watch(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("watch", flag.ContinueOnError)
	rawKey := fs.String("key", "", "watch this raw store key")
	interval := fs.Duration("interval", 2*time.Second, "how often to read the key")
	count := fs.Int("count", 0, "stop after this many changes (0: until SIGINT)")
	pos, err := e.parse(fs, args)
	if err != nil {
		return err
	}
	key, err := e.resolveKey("watch", *rawKey, pos)
	if err != nil {
		return err
	}
	if *interval <= 0 || *count < 0 {
		return usagef("watch: --interval must be positive and --count not negative")
	}
	st, closeStore, err := e.openStore(ctx)
	if err != nil {
		return err
	}
	defer closeStore()
	var last string // fingerprint, expiry and status of the last line printed
	changes := -1   // the first line is the state watch starts from
	tick := time.NewTicker(*interval)
	defer tick.Stop()
	for {
		pctx, cancel := context.WithTimeout(ctx, e.g.timeout)
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
		if v.Status == "error" || v.Status == statusCorrupt {
			state = v.Status + " " + v.Error
		}
		if state != last {
			last = state
			now := time.Now().UTC()
			v.Time = &now
			v.Age = nil
			e.print(v)
			changes++
			if *count > 0 && changes >= *count {
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
