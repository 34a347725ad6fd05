package wecomvendor

import (
	"time"

	"github.com/wechatconf/wechatconf/core"
	"github.com/wechatconf/wechatconf/core/internal/tenant"
)

// StoredRecord is the stored form of an installed corp's record, for tests
// that fill a store directly.
func StoredRecord(permanentCode, accessToken string, expiresAt time.Time) core.Token {
	return recordFormat.Encode(tenant.Record{State: tenant.StateAuthorized, Secret: permanentCode, Access: accessToken, Expires: expiresAt.UnixMilli()})
}
