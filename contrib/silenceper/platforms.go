package silenceper

import (
	"strconv"

	"github.com/silenceper/wechat/v2/cache"
	"github.com/silenceper/wechat/v2/miniprogram"
	mpconfig "github.com/silenceper/wechat/v2/miniprogram/config"
	"github.com/silenceper/wechat/v2/openplatform"
	opconfig "github.com/silenceper/wechat/v2/openplatform/config"
	opofficialaccount "github.com/silenceper/wechat/v2/openplatform/officialaccount"
	"github.com/silenceper/wechat/v2/work"
	workconfig "github.com/silenceper/wechat/v2/work/config"

	"github.com/wechatconf/wechatconf/core"
	coreopen "github.com/wechatconf/wechatconf/core/openplatform"
	"github.com/wechatconf/wechatconf/core/wecom"
)

// MiniProgram returns silenceper's Mini Program client for cfg with the
// credentials of conf, the Mini Program's Conf (core.New with its AppID
// and AppSecret): its access-token handle is New(conf), and conf's
// transport is installed on silenceper's HTTP client (Install). cfg may
// be nil; an empty cfg.AppID is conf.AppID(), a nil cfg.Cache an in-memory
// one (silenceper requires one; the access token does not use it).
// silenceper's login (GetAuth().Code2Session) needs cfg.AppSecret, and
// takes no access token: it is not the Conf's concern. Call it while
// setting up, before API calls start (see the package documentation).
func MiniProgram(conf *core.Conf, cfg *mpconfig.Config) *miniprogram.MiniProgram {
	h := New(conf)
	var c mpconfig.Config
	if cfg != nil {
		c = *cfg
	}
	if c.AppID == "" {
		c.AppID = conf.AppID()
	}
	if c.Cache == nil {
		c.Cache = cache.NewMemory()
	}
	mp := miniprogram.NewMiniProgram(&c)
	mp.SetAccessTokenContextHandle(h)
	Install(h)
	return mp
}

// Work returns silenceper's WeCom (企业微信) client for cfg with the
// credentials of app: its access-token handle is NewWeCom(app), and app's
// transport is installed on silenceper's HTTP client (Install), so that a
// call WeCom answers with 40014 or 42001 gets the app's token replaced
// once fleet-wide and is sent once more. cfg may be nil; an empty
// cfg.CorpID is app.CorpID(), an empty cfg.AgentID app.AgentID() in
// decimal (unless zero), a nil cfg.Cache an in-memory one (silenceper
// requires one). Call it while setting up, before API calls start.
//
// What stays silenceper's: the JS-SDK tickets of JsSdk() (silenceper's
// WorkJsTicket, in cfg.Cache, fetched with the app's token; for tickets
// shared by the fleet sign with app.JSSDKConfig and app.AgentConfig), and
// the clients of GetKF and GetMsgAudit, which silenceper builds with
// tokens of their own from cfg.CorpSecret (other secrets than the app's).
func Work(app *wecom.App, cfg *workconfig.Config) *work.Work {
	h := NewWeCom(app)
	var c workconfig.Config
	if cfg != nil {
		c = *cfg
	}
	if c.CorpID == "" {
		c.CorpID = app.CorpID()
	}
	if c.AgentID == "" && app.AgentID() != 0 {
		c.AgentID = strconv.FormatInt(app.AgentID(), 10)
	}
	if c.Cache == nil {
		c.Cache = cache.NewMemory()
	}
	wk := work.NewWork(&c)
	wk.GetContext().AccessTokenHandle = h
	Install(h)
	return wk
}

// AuthorizerOfficialAccount returns silenceper's Open Platform client of
// the merchant Official Account a (component.Authorizer(appid) of a
// wechatconf openplatform.Component), op.GetOfficialAccount(a.AppID()),
// with a's credentials: its access-token handle and JS-SDK ticket handle
// are NewAuthorizer(a) — the authorizer_access_token the Component keeps
// with the stored authorizer_refresh_token, one refresh fleet-wide — and
// a's transport is installed on silenceper's HTTP client (Install), so a
// rejected authorizer token is replaced once and the call sent once more.
// op is silenceper's Open Platform client (its config's AppID, the
// component_appid, is what silenceper's PlatformOauth uses); nil means one
// with an empty config. A nil op.Cache is replaced by an in-memory one in
// a copy of op's config (silenceper requires one). Call it while setting
// up, before API calls start.
//
// silenceper's component_access_token (op's cache, set by its
// SetComponentAccessToken) is not used for a's calls. What stays
// silenceper's: PlatformJs() makes a JS-SDK ticket handle of its own
// (silenceper's cache, fetched with a's token); sign with a.JSSDKConfig
// for a ticket shared by the fleet. GetJs().GetConfig signs with a's
// ticket but names op's AppID (silenceper's), not the merchant's.
func AuthorizerOfficialAccount(op *openplatform.OpenPlatform, a *coreopen.Authorizer) *opofficialaccount.OfficialAccount {
	h := NewAuthorizer(a)
	switch {
	case op == nil:
		op = openplatform.NewOpenPlatform(&opconfig.Config{Cache: cache.NewMemory()})
	case op.Context == nil || op.Config == nil:
		op = openplatform.NewOpenPlatform(&opconfig.Config{Cache: cache.NewMemory()})
	case op.Cache == nil:
		c := *op.Config
		c.Cache = cache.NewMemory()
		op = openplatform.NewOpenPlatform(&c)
	}
	oa := op.GetOfficialAccount(a.AppID())
	oa.SetAccessTokenHandle(h)
	oa.GetJs().SetJsTicketHandle(h)
	Install(h)
	return oa
}
