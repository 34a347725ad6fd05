package cli

import (
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"
)

// inspectCommand: wechatconf inspect APPID | --wecom CORPID/AGENTID | --component C [APPID]
func (e *env) inspectCommand() *cobra.Command {
	var wecom, component string
	cmd := &cobra.Command{
		Use:   "inspect APPID | --wecom CORPID/AGENTID | --component COMPONENT_APPID [APPID]",
		Short: "show the known keys of one account, present or not, with expiry and lock",
		Long: `inspect shows the keys of an Official Account (access_token, jsapi_ticket,
wx_card_ticket), a WeCom app (--wecom CORPID/AGENTID: its access_token and
agent_config_ticket, the corp's jsapi_ticket) or an Open Platform component (--component:
component_access_token and component_verify_ticket; with an authorizer APPID its tickets
and its record under authorizer_refresh_token, which holds its access token and refresh
token together), each present or not with its expiry. On Redis it also shows each key's
refresh lock and the lease left (one PTTL); the other stores cannot tell it cheaply (a
flock, an advisory lock, an etcd lease) and do not show it. A credential whose fleet keeps
a fetch ledger (core's default) shows its last fetch — when, by which instance, why — and
the fleet's fetches today (Beijing day); wechatconf history shows the whole ledger.

Exit: 0 a key present, 3 none (with where it looked and the keys nearby) or an
authorizer's record that says withdrawn.`,
		Example: `  wechatconf inspect wx0123456789abcdef
  wechatconf inspect --wecom ww0123456789abcdef/1000002
  wechatconf inspect --component wxcomponent0000001 wxauthorizer000001`,
		Args: positional(0, 1, "give one APPID, --wecom CORPID/AGENTID or --component COMPONENT_APPID [APPID]"),
		RunE: func(cmd *cobra.Command, args []string) error {
			keys, err := e.inspectKeys(wecom, component, args)
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
				case StatusValid, StatusExpired, StatusAuthorized:
					present++
				case StatusWithdrawn:
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
				// The authorizer's tickets may still be stored, but nothing
				// can renew them: nothing usable, as when no key is present.
				return exitCodeError{ExitNotFound, withdrawn}
			case present == 0:
				return e.notFound(cmd.Context(), st, keys, fmt.Sprintf("none of the %d keys is in %s", len(keys), e.spec))
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&wecom, "wecom", "", "a WeCom app: CORPID/AGENTID")
	cmd.Flags().StringVar(&component, "component", "", "an Open Platform component AppID (with an authorizer APPID: its keys)")
	return cmd
}

// inspectKeys returns the keys inspect reads, in its order.
func (e *env) inspectKeys(wecom, component string, pos []string) ([]string, error) {
	p := e.g.prefix
	var keys []string
	switch {
	case wecom != "" && component != "":
		return nil, usagef("inspect: --wecom or --component, not both")
	case wecom != "":
		corp, agent, ok := strings.Cut(wecom, "/")
		if !ok || corp == "" || agent == "" || strings.Contains(agent, "/") || len(pos) > 0 {
			return nil, usagef("inspect: --wecom CORPID/AGENTID, and no APPID")
		}
		base := p + "/wecom/" + corp
		keys = []string{base + "/" + agent + "/access_token", base + "/" + agent + "/agent_config_ticket", base + "/jsapi_ticket"}
	case component != "":
		base := p + "/open/" + component
		if len(pos) == 0 {
			return []string{base + "/component_access_token", base + "/component_verify_ticket"}, nil
		}
		// The authorizer's access token lives in its durable record,
		// under authorizer_refresh_token (openplatform's
		// AuthorizationKey), beside its tickets.
		for _, k := range []string{"jsapi_ticket", "wx_card_ticket", "authorizer_refresh_token"} {
			keys = append(keys, base+"/"+pos[0]+"/"+k)
		}
	default:
		if len(pos) != 1 {
			return nil, usagef("inspect: give one APPID, --wecom CORPID/AGENTID or --component COMPONENT_APPID")
		}
		for _, k := range kinds {
			keys = append(keys, e.keyOf(pos[0], k))
		}
	}
	return keys, nil
}
