package openplatform

import (
	"time"

	"github.com/wechatconf/wechatconf/core"
	"github.com/wechatconf/wechatconf/core/internal/tenant"
)

// StoredRecord is the stored form of an authorized authorizer's record,
// for tests that fill a store directly.
func StoredRecord(refreshToken, accessToken string, expiresAt time.Time) core.Token {
	return recordFormat.Encode(tenant.Record{State: tenant.StateAuthorized, Secret: refreshToken, Access: accessToken, Expires: expiresAt.UnixMilli()})
}
