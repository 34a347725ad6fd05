// Package cli is the wechatconf command (cmd/wechatconf), the operator's
// view of the credentials a fleet keeps in its store: Run takes a command
// line and returns its exit code. Its commands, one file each:
//
//	wechatconf agent   APPID --out PATH [--kind KIND] [--interval 10s]   (WECHAT_APPSECRET in the environment)
//	wechatconf get     APPID [access_token|jsapi_ticket|wx_card_ticket] | --key KEY [--reveal]
//	wechatconf ls      [ACCOUNT] [--all-prefixes]
//	wechatconf inspect APPID | --wecom CORPID/AGENTID | --component COMPONENT_APPID [APPID]
//	                   | --suite SUITE_ID [CORPID] | --provider CORPID
//	wechatconf watch   APPID [KIND] | --key KEY [--interval 2s] [--count N]
//	wechatconf refresh APPID [--yes] [--reveal]     (WECHAT_APPSECRET in the environment)
//	wechatconf force   APPID --yes [--reveal]       (WECHAT_APPSECRET in the environment)
//	wechatconf quota   APPID [--path /cgi-bin/token] (WECHAT_APPSECRET in the environment)
//	wechatconf quota reset APPID --yes              (WECHAT_APPSECRET in the environment)
//	wechatconf history APPID [KIND] | --key KEY      (the fleet's fetch ledger)
//	wechatconf completion bash|zsh|fish|powershell
//	wechatconf help [COMMAND]                       (or COMMAND --help)
//
// Global flags, before or after the command: --store URL (env
// WECHATCONF_STORE; a URL holding a password is refused as a flag, which
// the process list shows), --prefix (the fleet's Config.KeyPrefix,
// default wechatconf), --base-url (env WECHAT_BASE_URL), --classic (the
// classic /cgi-bin/token), --timeout (default 30s; watch: each poll),
// --json (one object per line).
//
// # Safety
//
// No value is printed without --reveal: a value shows as its length and a
// fingerprint (Fingerprint). A WeCom vendor corp's permanent_code and the
// access token held with it are never printed, with --reveal neither
// (wecomvendor's Suite.PermanentCode reads the code for a backup). The AppSecret is read from WECHAT_APPSECRET
// only and never printed; errors show the store URL redacted (storeurl).
// Nothing that spends one of WeChat's ~20 daily forced refreshes or stops
// the fleet's token working runs without --yes, nor does quota reset,
// which spends one of WeChat's 10 clear_quota calls a month (without
// --yes it makes no call): force always; refresh
// when the stored access_token is still valid (without --yes a refresh of
// a valid token makes no call to WeChat and says so; an absent or expired
// one is fetched by one normal call, which invalidates nothing the fleet
// holds — unless the store holds a valid access_token of the AppID under
// another key prefix or Redis store prefix: a prefix mistaken, where a
// classic fetch would stop the fleet's token working, so refresh exits 3
// with where it is, and fetches only with --yes).
//
// When a key is not found (exit 3) the error says where the command
// looked — the store, its own prefix (a Redis or etcd URL's ?prefix=), the
// key prefix (--prefix), the full keys — and what is nearby: the same
// account's keys under other key prefixes (when the store implements
// core.KeyLister) and, on Redis, credentials under other store prefixes.
//
// # The fetch ledger
//
// history prints a credential's fetch ledger (core.ReadLedger): the
// fleet's last fetches, who made them and why, the outside fetches named,
// and the counts per Beijing day against WeChat's daily limits. ls lists a
// ledger (KIND/fetch_ledger, status ledger) beside its credential, as the
// same account's; inspect shows each credential's last fetch and today's
// count. refresh and force are an operator's fetches: their Conf sets
// core.Config.Operator and the instance "wechatconf-cli@HOST/PID", and
// waits, before the command exits, for the record to reach the ledger.
//
// # Exit codes
//
//	0  done; get: found and not expired; inspect: a key present; ls: a
//	   credential listed; refresh: fetched, or a valid token left alone
//	1  get: found but expired
//	2  usage error, or any failure (store unreachable or unable to list,
//	   WeChat error, an authorizer's or a corp's record that does not parse, …)
//	3  not found or nothing usable: get: absent; inspect: none of the keys
//	   present; ls: nothing listed; history: no ledger; refresh: absent or expired here but
//	   valid under another prefix (nothing done); get and inspect: an authorizer's record
//	   says withdrawn, or a WeCom vendor corp's record cancelled (its tickets may
//	   still be stored, but nothing can renew them)
//	4  held back by a limit: core's (*core.LimitError: an interval or daily
//	   limit, a back-off) or WeChat's (a quota, core.IsQuotaExceeded: 45009,
//	   or 48006 when quota reset finds the month's 10 clears spent;
//	   or, after core's retries, core.IsTemporary: 45011 minute quota, -1
//	   system busy): retry later, not at once
//
// # Decisions
//
// The commands run on github.com/spf13/cobra (with spf13/pflag), as
// kubectl's and etcdctl's do: help for every command, shell completion
// (the kinds of get and watch complete), one flag syntax (--flag, -h; the
// single-dash long flags of the standard flag package, -reveal, are no
// longer accepted), flags before, between and after the arguments.
//
// go-redis logs its connection pool's failures to the process's stderr
// ahead of the command's own error, which says the same once; its logger
// is process-global, so this package silences it (logging.Disable) when it
// is initialised, before any client exists.
//
// The package is internal so that the tests that need real servers can
// live in the test-only module cmd/containertest (importing cmd/internal/…
// is allowed under cmd/) and stay out of the cmd module's graph; the test
// helpers both use are in package clitest.
package cli
