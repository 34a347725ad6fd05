package cli

import (
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"
)

// inspectCommand: wechatconf inspect APPID | --wecom CORPID/AGENTID |
// --component C [APPID] | --suite SUITE_ID [CORPID] | --provider CORPID
func (e *env) inspectCommand() *cobra.Command {
	var f inspectFlags
	cmd := &cobra.Command{
		Use:   "inspect APPID | --wecom CORPID/AGENTID | --component COMPONENT_APPID [APPID] | --suite SUITE_ID [CORPID] | --provider CORPID",
		Short: "show the known keys of one account, present or not, with expiry and lock",
		Long: `inspect shows the keys of an Official Account (access_token, jsapi_ticket,
wx_card_ticket), a WeCom app (--wecom CORPID/AGENTID: its access_token and
agent_config_ticket, the corp's jsapi_ticket) or an Open Platform component (--component:
component_access_token and component_verify_ticket; with an authorizer APPID its tickets
and its record under authorizer_refresh_token, which holds its access token and refresh
token together), a WeCom vendor suite (--suite: suite_access_token and suite_ticket; with
an installing CORPID the corp's jsapi_ticket, the app's agent_config_ticket and the corp's
record under permanent_code: installed or cancelled, since when, the access token's
expiry, and that a permanent_code is held — its fingerprint, never its value) or a WeCom
vendor's provider_access_token (--provider CORPID), each present or not with its expiry. On Redis it also shows each key's
refresh lock and the lease left (one PTTL); the other stores cannot tell it cheaply (a
flock, an advisory lock, an etcd lease) and do not show it. A credential whose fleet keeps
a fetch ledger (core's default) shows its last fetch — when, by which instance, why — and
the fleet's fetches today (Beijing day); wechatconf history shows the whole ledger.

Exit: 0 a key present, 3 none (with where it looked and the keys nearby) or an
authorizer's record that says withdrawn (a corp's: cancelled).`,
		Example: `  wechatconf inspect wx0123456789abcdef
  wechatconf inspect --wecom ww0123456789abcdef/1000002
  wechatconf inspect --component wxcomponent0000001 wxauthorizer000001
  wechatconf inspect --suite ww0123456789suite wwcorp0123456789
  wechatconf inspect --provider wwprovider012345`,
		Args: positional(0, 1, "give one APPID, --wecom CORPID/AGENTID, --component COMPONENT_APPID [APPID], --suite SUITE_ID [CORPID] or --provider CORPID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			keys, err := e.inspectKeys(f, args)
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
				case StatusValid, StatusExpired, StatusAuthorized, StatusInstalled:
					present++
				case StatusWithdrawn, StatusCancelled:
					withdrawn = withdrawnError(v)
				case StatusCorrupt:
					if firstErr == nil {
						firstErr = fmt.Errorf("%s: %s", k, v.Error)
					}
				}
				v.Lock = locks.read(ctx, k)
				v.Ledger = readLedgerSummary(ctx, st, k, time.Now())
				e.print(v)
			}
			switch {
			case firstErr != nil:
				return firstErr
			case withdrawn != nil:
				// The authorizer's (the corp's) tickets may still be stored,
				// but nothing can renew them: nothing usable, as when no key
				// is present.
				return exitCodeError{ExitNotFound, withdrawn}
			case present == 0:
				return e.notFound(cmd.Context(), st, keys, fmt.Sprintf("none of the %d keys is in %s", len(keys), e.spec))
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&f.wecom, "wecom", "", "a WeCom app: CORPID/AGENTID")
	cmd.Flags().StringVar(&f.component, "component", "", "an Open Platform component AppID (with an authorizer APPID: its keys)")
	cmd.Flags().StringVar(&f.suite, "suite", "", "a WeCom vendor suite_id (with an installing CORPID: the corp's keys)")
	cmd.Flags().StringVar(&f.provider, "provider", "", "a WeCom vendor's own CORPID: its provider_access_token")
	return cmd
}

// inspectFlags are inspect's account flags, at most one of them set.
type inspectFlags struct{ wecom, component, suite, provider string }

// inspectKeys returns the keys inspect reads, in its order.
func (e *env) inspectKeys(f inspectFlags, pos []string) ([]string, error) {
	p := e.g.prefix
	var keys []string
	set := 0
	for _, v := range []string{f.wecom, f.component, f.suite, f.provider} {
		if v != "" {
			set++
		}
	}
	switch {
	case set > 1:
		return nil, usagef("inspect: one of --wecom, --component, --suite and --provider, not two")
	case f.wecom != "":
		corp, agent, ok := strings.Cut(f.wecom, "/")
		if !ok || corp == "" || agent == "" || strings.Contains(agent, "/") || len(pos) > 0 {
			return nil, usagef("inspect: --wecom CORPID/AGENTID, and no APPID")
		}
		base := p + "/wecom/" + corp
		keys = []string{base + "/" + agent + "/access_token", base + "/" + agent + "/agent_config_ticket", base + "/jsapi_ticket"}
	case f.component != "":
		base := p + "/open/" + f.component
		if len(pos) == 0 {
			return []string{base + "/component_access_token", base + "/component_verify_ticket"}, nil
		}
		// The authorizer's access token lives in its durable record,
		// under authorizer_refresh_token (openplatform's
		// AuthorizationKey), beside its tickets.
		for _, k := range []string{"jsapi_ticket", "wx_card_ticket", "authorizer_refresh_token"} {
			keys = append(keys, base+"/"+pos[0]+"/"+k)
		}
	case f.suite != "":
		if strings.Contains(f.suite, "/") || f.suite == "provider" || (len(pos) == 1 && strings.Contains(pos[0], "/")) {
			return nil, usagef("inspect: --suite SUITE_ID [CORPID], neither holding \"/\"")
		}
		base := p + "/wecomvendor/" + f.suite
		if len(pos) == 0 {
			return []string{base + "/suite_access_token", base + "/suite_ticket"}, nil
		}
		// The corp's tickets keep WeCom's layout, the suite id naming
		// the app; its access token lives in its durable record, under
		// permanent_code (wecomvendor's AuthorizationKey).
		corp := pos[0]
		keys = []string{p + "/wecom/" + corp + "/jsapi_ticket", p + "/wecom/" + corp + "/" + f.suite + "/agent_config_ticket", base + "/" + corp + "/permanent_code"}
	case f.provider != "":
		if len(pos) > 0 || strings.Contains(f.provider, "/") {
			return nil, usagef("inspect: --provider CORPID, and no APPID")
		}
		keys = []string{p + "/wecomvendor/provider/" + f.provider + "/provider_access_token"}
	default:
		if len(pos) != 1 {
			return nil, usagef("inspect: give one APPID, --wecom CORPID/AGENTID, --component COMPONENT_APPID, --suite SUITE_ID or --provider CORPID")
		}
		for _, k := range kinds {
			keys = append(keys, e.keyOf(pos[0], k))
		}
	}
	return keys, nil
}
