package openplatform

import (
	"context"

	"github.com/wechatconf/wechatconf/core"
)

// Ready reports whether the component can serve its component_access_token
// for at least Config.ReadyHorizon: nil if so, else a *core.NotReadyError
// (errors.As) whose Reason says why and which wraps the cause. It is
// core.Credential.Ready of the component_access_token, so it makes no call
// a caller would not make: a fresh Component becomes ready by reading the
// store or fetching through its lock, as ComponentAccessToken would. Until
// a component_verify_ticket has been pushed (and after the last one is
// older than VerifyTicketLifetime) it is not ready with
// core.ReasonNoToken, wrapping ErrNoVerifyTicket; a wrong AppSecret is
// core.ReasonConfiguration.
//
// Beware of gating on it the instances that receive WeChat's pushes: the
// verify ticket arrives by a push to the authorization event URL, so a
// fresh fleet whose every instance is kept out of the load balancer until
// it is ready never receives one. Serve the event URL from instances whose
// readiness does not depend on Ready, or gate on Ready only once the
// fleet has a ticket in its store.
func (c *Component) Ready(ctx context.Context) error {
	return c.token.Ready(ctx, core.ReadyHorizon(c.cfg.ReadyHorizon))
}

// Ready reports whether the authorizer can serve its
// authorizer_access_token for at least the Component's
// Config.ReadyHorizon: nil if so, else a *core.NotReadyError. It is
// core.Conf.Ready of the authorizer's Conf (core.Credential.Ready of the
// authorizer_access_token; its tickets do not count): no call a caller
// would not make — a fresh handle becomes ready from the store's record or
// by a refresh through its lock, with the component_access_token. A
// withdrawn authorization is core.ReasonRevoked (the error matches
// core.ErrRevoked and reaches the *ReauthorizeError); a refresh token that
// is missing or that WeChat refused (61023) is core.ReasonNoToken wrapping
// the *ReauthorizeError: only the merchant can mend either.
func (a *Authorizer) Ready(ctx context.Context) error { return a.Conf.Ready(ctx) }
