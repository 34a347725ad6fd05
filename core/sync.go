package core

import (
	"context"
	"errors"
	"log/slog"
)

// Sync reads the store and, when it holds a usable token newer than the
// one held in process (a later ExpiresAt: another instance replaced it,
// most often after WeChat rejected it), makes it the held one; it returns
// the token Get then serves. It never fetches a token that Get would not:
// with nothing newer stored it is Get. A process that hands its token to
// others who cannot report a rejection to it — the wechatconf agent's
// token file, read by PHP or Python workers — calls it instead of Get, so
// that it follows the fleet within one poll instead of at its own refresh
// ahead of expiry. It costs one store Get per call; the hot path is
// unchanged for callers of Get.
//
// A token this process fetched and has not yet written back (the
// write-back, see the package doc) is newer than anything the store holds,
// so the store is not followed while one is pending. A store that lost
// writes (a failover) and holds an older token is not followed either.
// Errors are Get's; a failing store read is logged (EventStoreError, op
// "get") and Get's token returned.
func (cr *Credential) Sync(ctx context.Context) (Token, error) {
	raw, err := cr.store.Get(ctx, cr.key)
	switch {
	case err == nil:
		tok, derr := cr.decodeStored(raw)
		if derr != nil || !cr.usable(tok, cr.clock()) || cr.pendingNow() != nil {
			break
		}
		cr.mu.Lock()
		h := cr.cur.Load()
		adopted := cr.flight == nil && (h == nil || (tok.Value != h.Value && tok.ExpiresAt.After(h.ExpiresAt)))
		if adopted {
			cr.adopt(tok, false)
		}
		cr.mu.Unlock()
		if adopted {
			cr.logEvent(slog.LevelInfo, EventAdopted, slog.Time("expires_at", tok.ExpiresAt))
		}
	case ctx.Err() == nil && !errors.Is(err, ErrNotFound):
		cr.storeError("get", err)
	}
	return cr.Get(ctx)
}

// Credential returns c's credential of kind name — "access_token",
// "jsapi_ticket" or "wx_card_ticket" (the tickets are made on first use) —
// or nil for another name. Its Sync, Ledger and FlushLedger act on that
// kind alone.
func (c *Conf) Credential(name string) *Credential {
	switch name {
	case "access_token":
		return c.access
	case "jsapi_ticket":
		return c.jsapiTicket()
	case "wx_card_ticket":
		return c.cardTicket()
	}
	return nil
}
