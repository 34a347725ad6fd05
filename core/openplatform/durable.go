package openplatform

import (
	"context"
	"fmt"

	"github.com/wechatconf/wechatconf/core"
)

// Durable state that a WeChat reply or push brings — an authorization,
// a withdrawal, a verify ticket — is written forward to the durable store
// by tenant.Writer (see package tenant): a store error does not lose it,
// the write is held in memory and written in the background, and the
// caller is told, so that a push is not answered "success" and WeChat
// delivers it again.

// Held reports how many durable writes the store has not taken yet: they
// are retried in the background until they land (an event each:
// core.EventStoreError with op "write_back" while it fails,
// core.EventWrittenBack when it lands). A process that stops while one is
// held loses it; for an authorization WeChat's re-sent push brings it
// again (see Authorize).
func (c *Component) Held() int { return c.t.Writer().Held() }

// Flush waits until every durable write held (see Held) has landed or
// been superseded, and the fetch records of the component_access_token and
// of every authorizer handle alive are in their fetch ledgers
// (core.Credential.FlushLedger), or ctx ends (then it returns ctx's error,
// and the writes go on being retried). Call it before a process stops, so
// that nothing held in memory is lost with it.
func (c *Component) Flush(ctx context.Context) error {
	if err := c.t.Writer().Drain(ctx); err != nil {
		return wrap("Flush", err)
	}
	err := c.token.FlushLedger(ctx)
	c.t.Handles().Each(func(_ string, a *Authorizer) bool {
		if err == nil {
			err = a.Conf.FlushLedger(ctx) // its access_token (a.access) and tickets
		}
		return err == nil
	})
	if err != nil {
		return wrap("Flush", fmt.Errorf("fetch records not yet in the ledger: %w", err))
	}
	return nil
}

// platformOf is the "platform" attribute of the events of a durable write
// of name: the component's verify ticket is the component's, the rest
// (an authorizer's record, an authorization code's index) an authorizer's.
func platformOf(name string) core.Platform {
	if name == "component_verify_ticket" {
		return core.PlatformOpenPlatformComponent
	}
	return core.PlatformOpenPlatformAuthorizer
}
