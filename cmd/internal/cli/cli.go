package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime/debug"
	"strings"
	"time"

	"github.com/redis/go-redis/v9/logging"
	"github.com/spf13/cobra"

	"github.com/wechatconf/wechatconf/cmd/storeurl"
	"github.com/wechatconf/wechatconf/core"
)

const name = "wechatconf"

// Exit codes, for scripts (see the package documentation).
const (
	// ExitOK: done; get: found and not expired; inspect: a key present;
	// ls: a credential listed; refresh of a healthy token: nothing to do.
	ExitOK = 0
	// ExitExpired: get found the key, expired.
	ExitExpired = 1
	// ExitError: a usage error, or any failure.
	ExitError = 2
	// ExitNotFound: nothing found, or nothing usable.
	ExitNotFound = 3
	// ExitLimited: held back by a limit, core's or WeChat's: retry later.
	ExitLimited = 4
)

// defaultPrefix is core's default Config.KeyPrefix.
const defaultPrefix = "wechatconf"

// wechatLifetime is the lifetime WeChat gives access_tokens and tickets,
// used only to estimate a token's age from its expiry.
const wechatLifetime = 2 * time.Hour

// go-redis logs its pool's failures (every failed dial) to the process's
// stderr, ahead of the error the command prints, which says the same
// once. Its logger is global to the process, and setting it while a
// client's goroutines may read it is a data race, so it is set here,
// before any goroutine of the command exists: this package is the
// wechatconf command's whole process (and its tests').
func init() { logging.Disable() }

// Run runs the wechatconf command line args (without the program name)
// and returns its exit code (ExitOK … ExitLimited). Results go to stdout,
// diagnostics to stderr; getenv reads the environment (os.Getenv). ctx
// ending (SIGINT) stops watch with ExitOK and any other command with an
// error.
func Run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	return run(ctx, args, getenv, stdout, stderr, nil)
}

// opener opens the store a parsed URL names, as storeurl.Spec.Open does.
type opener func(ctx context.Context, spec storeurl.Spec) (core.TokenStore, func() error, error)

// run is Run with the store opened by open (nil: spec.Open), for tests.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer, open opener) int {
	e := &env{getenv: getenv, stdout: stdout, stderr: stderr, open: open}
	root := e.rootCommand()
	if args == nil {
		args = []string{} // cobra reads os.Args for nil
	}
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	return e.fail(root.ExecuteContext(ctx))
}

// globals are the flags every command takes.
type globals struct {
	store, prefix, baseURL string
	classic, json          bool
	timeout                time.Duration
}

// env is one run's surroundings.
type env struct {
	g      globals
	getenv func(string) string
	stdout io.Writer
	stderr io.Writer
	open   opener
	spec   storeurl.Spec // the store's, once openStore parsed it
}

const usageTemplateTail = `
exit codes: 0 ok, 1 expired, 2 usage or other error (a corrupt record too), 3 not found or withdrawn,
  4 held back by a limit (core's or WeChat's quota): retry later
`

// rootCommand builds the command tree, one command per file.
func (e *env) rootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:   name,
		Short: "the operator's view of the WeChat credentials a fleet keeps in its store",
		Long: `wechatconf reads, lists, refreshes, rotates and watches the WeChat credentials a fleet
keeps in its shared store (file, Redis, PostgreSQL, etcd), by AppID or raw key. No value
is printed without --reveal; nothing that spends one of WeChat's forced refreshes or stops
the fleet's token working runs without --yes.`,
		Args:                       cobra.ArbitraryArgs,
		SuggestionsMinimumDistance: 2,
		SilenceErrors:              true,
		SilenceUsage:               true,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return usagef("no command")
			}
			msg := fmt.Sprintf("unknown command %q", args[0])
			if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
				msg += fmt.Sprintf(": did you mean %s?", strings.Join(s, " or "))
			}
			return usageError{msg}
		},
		PersistentPreRunE: func(*cobra.Command, []string) error {
			if e.g.prefix == "" {
				e.g.prefix = defaultPrefix // core's default, as an empty KeyPrefix is
			}
			if e.g.timeout <= 0 {
				return usagef("--timeout must be positive")
			}
			return nil
		},
	}
	pf := root.PersistentFlags()
	pf.StringVar(&e.g.store, "store", "", "the store URL, without a password (env WECHATCONF_STORE): "+storeurl.Schemes)
	pf.StringVar(&e.g.prefix, "prefix", defaultPrefix, "the fleet's Config.KeyPrefix (the store's own prefix is the URL's ?prefix=)")
	pf.StringVar(&e.g.baseURL, "base-url", "", "the WeChat API (env WECHAT_BASE_URL; default https://api.weixin.qq.com)")
	pf.BoolVar(&e.g.classic, "classic", false, "fetch with the classic /cgi-bin/token instead of stable_token")
	pf.DurationVar(&e.g.timeout, "timeout", 30*time.Second, "how long the command may take (watch: each poll)")
	pf.BoolVar(&e.g.json, "json", false, "print JSON, one object per line, with the text's fields")
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error {
		if !cmd.HasParent() { // the root: fail prints the command's name already
			return usageError{err.Error()}
		}
		return usageError{cmd.Name() + ": " + err.Error()}
	})
	root.Version = version()
	root.SetUsageTemplate(root.UsageTemplate() + usageTemplateTail)
	root.AddCommand(
		e.agentCommand(),
		e.getCommand(),
		e.lsCommand(),
		e.inspectCommand(),
		e.watchCommand(),
		e.refreshCommand(),
		e.forceCommand(),
		e.quotaCommand(),
		e.historyCommand(),
	)
	return root
}

// version is the module version the binary was built from (v0.1.0 when
// installed with go install …@v0.1.0; "(devel)" in a workspace build), for
// --version.
func version() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "(devel)"
}

// usageError is a mistake in the command line: exit code 2, with a
// pointer to the help.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, a ...any) error { return usageError{fmt.Sprintf(format, a...)} }

// exitCodeError carries an exit code other than 2 out of a command; a nil
// err prints nothing.
type exitCodeError struct {
	code int
	err  error
}

func (e exitCodeError) Error() string {
	if e.err == nil {
		return ""
	}
	return e.err.Error()
}

// fail prints err (if any) and returns its exit code.
func (e *env) fail(err error) int {
	if err == nil {
		return ExitOK
	}
	var ue usageError
	var ce exitCodeError
	var le *core.LimitError
	switch {
	case errors.As(err, &ue):
		fmt.Fprintf(e.stderr, "%s: %s\n(%s --help: usage)\n", name, ue.msg, name)
		return ExitError
	case errors.As(err, &ce):
		if ce.err != nil && ce.err.Error() != "" {
			fmt.Fprintf(e.stderr, "%s: %s\n", name, errText(ce.err))
		}
		return ce.code
	case errors.As(err, &le), core.IsQuotaExceeded(err), core.IsTemporary(err):
		fmt.Fprintf(e.stderr, "%s: %s\n", name, errText(err))
		return ExitLimited
	}
	fmt.Fprintf(e.stderr, "%s: %s\n", name, errText(err))
	return ExitError
}

// errText is err's text without the "wechatconf: " that core's errors
// begin with: the command prints its own name first.
func errText(err error) string {
	return strings.TrimPrefix(err.Error(), name+": ")
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
	open := e.open
	if open == nil {
		open = func(ctx context.Context, spec storeurl.Spec) (core.TokenStore, func() error, error) {
			return spec.Open(ctx)
		}
	}
	st, closeFn, err := open(openCtx, spec)
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

// conf builds the Conf refresh and force use, with the AppSecret from the
// environment. It is an operator's tool (core.Config.Operator): its fetches
// are recorded in the fleet's fetch ledger with reason "operator", by the
// instance cliInstance names.
func (e *env) conf(st core.TokenStore, appID string) (*core.Conf, error) {
	secret := core.NewSecret(e.getenv("WECHAT_APPSECRET"))
	if secret.IsZero() {
		return nil, errNoSecret
	}
	return core.New(core.Config{
		AppID: appID, AppSecret: secret, BaseURL: e.baseURL(), Store: st, KeyPrefix: e.g.prefix, TokenAPI: e.tokenAPI(),
		Operator: true, Instance: cliInstance(),
		Logger: slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
}

// cliInstance names this command's process in the fetch ledger:
// "wechatconf-cli@HOST/PID", so that history tells an operator's fetch
// from the fleet's by its instance as well as its reason.
func cliInstance() string { return name + "-cli@" + core.DefaultInstance() }

var errNoSecret = usageError{"set WECHAT_APPSECRET in the environment (it is never taken from a flag)"}

func (e *env) baseURL() string {
	if e.g.baseURL != "" {
		return e.g.baseURL
	}
	return e.getenv("WECHAT_BASE_URL")
}

func (e *env) tokenAPI() core.TokenAPI {
	if e.g.classic {
		return core.ClassicToken
	}
	return core.StableToken
}

// withTimeout bounds one command's store and WeChat calls by --timeout.
func (e *env) withTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, e.g.timeout)
}

// positional returns a cobra.PositionalArgs accepting between min and max
// arguments, whose refusal is a usage error saying what the command wants.
// appIDArg is positional(1, 1, …) for a command whose one argument is an
// AppID of an Official Account or Mini Program (refresh, force): it
// refuses one holding "/" (a key such as wecom/CORP/AGENT, which these
// commands would resolve to another platform's key and fetch from the
// wrong API) or a character outside printable ASCII.
func appIDArg(cmd *cobra.Command, args []string) error {
	if err := positional(1, 1, "give exactly one APPID")(cmd, args); err != nil {
		return err
	}
	for _, r := range args[0] {
		if r == '/' || r <= ' ' || r > '~' {
			return usagef("%s: %q is not an AppID (wx… of an Official Account or Mini Program; for a key use get/inspect/watch --key)", cmd.Name(), args[0])
		}
	}
	return nil
}

func positional(min, max int, want string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		switch {
		case len(args) > max:
			return usagef("%s: too many arguments %q: %s", cmd.Name(), args, want)
		case len(args) < min:
			return usagef("%s: %s", cmd.Name(), want)
		}
		return nil
	}
}
