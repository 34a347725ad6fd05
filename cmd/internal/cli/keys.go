package cli

import (
	"strings"

	"github.com/wechatconf/wechatconf/core"
)

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

// Platforms of a parsed key (KeyInfo.Platform).
const (
	// PlatformOfficialAccount is an Official Account's or a Mini
	// Program's credential: they share one layout.
	PlatformOfficialAccount = "official_account"
	// PlatformWeCom is a WeCom app's (CorpID and AgentID) or a corp's
	// (CorpID alone: its jsapi_ticket).
	PlatformWeCom = "wecom"
	// PlatformOpenComponent is an Open Platform component's own.
	PlatformOpenComponent = "open_platform_component"
	// PlatformOpenAuthorizer is an Open Platform authorizer's (its
	// record, its tickets), under its component.
	PlatformOpenAuthorizer = "open_platform_authorizer"
	// PlatformWeComSuite is a WeCom vendor suite's own (its suite_ticket
	// and suite_access_token; core.PlatformWeComSuite).
	PlatformWeComSuite = string(core.PlatformWeComSuite)
	// PlatformWeComAuthCorp is a corp that installed a WeCom vendor's app:
	// its durable record under permanent_code, which holds its access
	// token (core.PlatformWeComAuthCorp). The corp's tickets keep WeCom's
	// layout and parse as PlatformWeCom (see KeyInfo).
	PlatformWeComAuthCorp = string(core.PlatformWeComAuthCorp)
	// PlatformWeComProvider is a WeCom vendor's provider_access_token
	// (core.PlatformWeComProvider).
	PlatformWeComProvider = string(core.PlatformWeComProvider)
	// PlatformOther is a key of no known layout (a credential of your
	// own, core.NewCredential).
	PlatformOther = "other"
)

// KeyInfo is what a store key says of its credential, by the layouts of
// README's "Credential kinds" table:
//
//	<prefix>/<AppID>/access_token|jsapi_ticket|wx_card_ticket           official_account
//	<prefix>/wecom/<CorpID>/<AgentID>/access_token|agent_config_ticket  wecom (app)
//	<prefix>/wecom/<CorpID>/jsapi_ticket                                wecom (corp)
//	<prefix>/open/<component>/component_access_token|component_verify_ticket
//	<prefix>/open/<component>/<AppID>/authorizer_refresh_token|jsapi_ticket|wx_card_ticket
//	<prefix>/wecomvendor/<SuiteID>/suite_ticket|suite_access_token     wecom_suite
//	<prefix>/wecomvendor/<SuiteID>/<CorpID>/permanent_code              wecom_auth_corp (the corp's record)
//	<prefix>/wecomvendor/provider/<CorpID>/provider_access_token        wecom_provider
//
// A corp that installed a WeCom vendor's app keeps its tickets in WeCom's
// layout — <prefix>/wecom/<CorpID>/jsapi_ticket and
// <prefix>/wecom/<CorpID>/<SuiteID>/agent_config_ticket — so they parse as
// PlatformWeCom, the SuiteID in AgentID: a key cannot tell a suite id from
// a self-built app's name (wecom.Config.App). The suite's code index,
// <prefix>/wecomvendor/<SuiteID>/authorization_code/<hash>, is no
// credential and parses as PlatformOther, as Open Platform's
// <prefix>/open/<component>/authorization_code/<hash> does. No suite id is
// "provider".
//
// A credential's fetch ledger (its key plus core.LedgerKeySuffix,
// "…/access_token/fetch_ledger") belongs to the credential's account: it
// parses as the credential's key does, its Kind the credential's kind plus
// the suffix ("access_token/fetch_ledger"), so that ls lists it beside the
// credential and an ACCOUNT filter keeps it (see IsLedger).
//
// A key is read from its end, so a prefix may hold "/". Where two layouts
// fit (wechatconf/wecom/corp/jsapi_ticket is also the jsapi_ticket of an
// AppID "corp" under the prefix wechatconf/wecom), the WeCom, Open
// Platform and WeCom vendor ones win: no AppID is "wecom", "open" or
// "wecomvendor".
type KeyInfo struct {
	// Key is the store key.
	Key string `json:"key"`
	// Prefix is the Config.KeyPrefix the key is under ("" for PlatformOther).
	Prefix string `json:"prefix,omitempty"`
	// Platform is one of the Platform constants.
	Platform string `json:"platform"`
	// AppID is an Official Account's, Mini Program's or authorizer's.
	AppID string `json:"appid,omitempty"`
	// CorpID and AgentID are a WeCom app's (AgentID "" for a corp's key).
	CorpID  string `json:"corp_id,omitempty"`
	AgentID string `json:"agent_id,omitempty"`
	// ComponentAppID is an Open Platform component's.
	ComponentAppID string `json:"component_appid,omitempty"`
	// SuiteID is a WeCom vendor suite's (PlatformWeComSuite, and the
	// suite a PlatformWeComAuthCorp corp installed); CorpID is then the
	// installing corp's, or for PlatformWeComProvider the vendor's own.
	SuiteID string `json:"suite_id,omitempty"`
	// Kind is the credential kind, the key's last segment (for
	// PlatformOther, the key after the prefix given to ls, if any); a
	// fetch ledger's is its credential's kind and "/fetch_ledger".
	Kind string `json:"kind"`
}

// IsLedger reports whether the key is a credential's fetch ledger (it ends
// in core.LedgerKeySuffix), which holds no token: see history.
func (k KeyInfo) IsLedger() bool { return strings.HasSuffix(k.Key, core.LedgerKeySuffix) }

// Account names the credential's owner as text: the AppID, CORPID/AGENTID
// (a corp's key: CORPID), COMPONENT or COMPONENT/AUTHORIZER, SUITE or
// SUITE/CORPID (a WeCom vendor's suite, an installing corp), the provider's
// CORPID; "-" if none.
func (k KeyInfo) Account() string {
	switch k.Platform {
	case PlatformOfficialAccount:
		return k.AppID
	case PlatformWeCom:
		if k.AgentID == "" {
			return k.CorpID
		}
		return k.CorpID + "/" + k.AgentID
	case PlatformOpenComponent:
		return k.ComponentAppID
	case PlatformOpenAuthorizer:
		return k.ComponentAppID + "/" + k.AppID
	case PlatformWeComSuite:
		return k.SuiteID
	case PlatformWeComAuthCorp:
		return k.SuiteID + "/" + k.CorpID
	case PlatformWeComProvider:
		return k.CorpID
	}
	return "-"
}

// ParseKey reads the credential a store key names. A key of no known
// layout is PlatformOther, its Kind the whole key. A fetch ledger's key
// parses as its credential's, with Key the ledger's and
// core.LedgerKeySuffix added to Kind.
func ParseKey(key string) KeyInfo {
	if base, ok := strings.CutSuffix(key, core.LedgerKeySuffix); ok {
		if info := parseCredentialKey(base); info.Platform != PlatformOther {
			info.Key, info.Kind = key, info.Kind+core.LedgerKeySuffix
			return info
		}
	}
	return parseCredentialKey(key)
}

// parseCredentialKey is ParseKey for the key of a credential.
func parseCredentialKey(key string) KeyInfo {
	s := strings.Split(key, "/")
	n := len(s)
	info := KeyInfo{Key: key, Platform: PlatformOther, Kind: key}
	for _, seg := range s {
		if seg == "" {
			return info // no layout has an empty segment
		}
	}
	kind := s[n-1]
	prefix := func(i int) string { return strings.Join(s[:i], "/") }
	switch {
	case n >= 4 && s[n-3] == "open" && (kind == "component_access_token" || kind == "component_verify_ticket"):
		return KeyInfo{Key: key, Prefix: prefix(n - 3), Platform: PlatformOpenComponent, ComponentAppID: s[n-2], Kind: kind}
	case n >= 5 && s[n-4] == "open" && (kind == "authorizer_refresh_token" || kind == "jsapi_ticket" || kind == "wx_card_ticket"):
		return KeyInfo{Key: key, Prefix: prefix(n - 4), Platform: PlatformOpenAuthorizer, ComponentAppID: s[n-3], AppID: s[n-2], Kind: kind}
	case n >= 4 && s[n-3] == "wecomvendor" && s[n-2] != "provider" && (kind == "suite_ticket" || kind == "suite_access_token"):
		return KeyInfo{Key: key, Prefix: prefix(n - 3), Platform: PlatformWeComSuite, SuiteID: s[n-2], Kind: kind}
	case n >= 5 && s[n-4] == "wecomvendor" && s[n-3] != "provider" && kind == "permanent_code":
		return KeyInfo{Key: key, Prefix: prefix(n - 4), Platform: PlatformWeComAuthCorp, SuiteID: s[n-3], CorpID: s[n-2], Kind: kind}
	case n >= 5 && s[n-4] == "wecomvendor" && s[n-3] == "provider" && kind == "provider_access_token":
		return KeyInfo{Key: key, Prefix: prefix(n - 4), Platform: PlatformWeComProvider, CorpID: s[n-2], Kind: kind}
	case n >= 5 && s[n-4] == "wecom" && (kind == "access_token" || kind == "agent_config_ticket"):
		return KeyInfo{Key: key, Prefix: prefix(n - 4), Platform: PlatformWeCom, CorpID: s[n-3], AgentID: s[n-2], Kind: kind}
	case n >= 4 && s[n-3] == "wecom" && kind == "jsapi_ticket":
		return KeyInfo{Key: key, Prefix: prefix(n - 3), Platform: PlatformWeCom, CorpID: s[n-2], Kind: kind}
	case n >= 3 && (kind == "access_token" || kind == "jsapi_ticket" || kind == "wx_card_ticket"):
		return KeyInfo{Key: key, Prefix: prefix(n - 2), Platform: PlatformOfficialAccount, AppID: s[n-2], Kind: kind}
	}
	return info
}
