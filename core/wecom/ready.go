package wecom

import (
	"context"

	"github.com/wechatconf/wechatconf/core"
)

// Ready reports whether the app can serve its access_token for at least
// Config.ReadyHorizon: nil if so, else a *core.NotReadyError (errors.As)
// whose Reason says why — core.ReasonConfiguration (a wrong CorpID or
// Secret: WeCom's 40013, 40001; an empty Secret, core.ErrMissingConfig; an
// untrusted IP, 60020), core.ReasonStoreUnavailable, core.ReasonLimited,
// core.ReasonNoToken — and which wraps the cause. It is
// core.Credential.Ready of the access_token, so it makes no call a caller
// would not make: a fresh App becomes ready by reading the store or
// fetching through its lock, as its first caller would; while the store is
// down the app fetches without it, as any caller would (gettoken
// invalidates nobody's token).
//
// gettoken's token is served to its expiry with no refresh ahead, so the
// horizon is clamped to 0: the app is ready while it can serve a token.
// The tickets (jsapi_ticket, agent_config ticket) do not count, as for
// core.Conf.Ready: they are fetched on first use with a ready access_token.
func (a *App) Ready(ctx context.Context) error {
	return a.access.Ready(ctx, core.ReadyHorizon(a.cfg.ReadyHorizon))
}
