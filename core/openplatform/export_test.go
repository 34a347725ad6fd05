package openplatform

import (
	"time"

	"github.com/wechatconf/wechatconf/core"
)

// StoredRecord is the stored form of an authorized authorizer's record,
// for tests that fill a store directly.
func StoredRecord(refreshToken, accessToken string, expiresAt time.Time) core.Token {
	return record{State: stateAuthorized, Refresh: refreshToken, Access: accessToken, Expires: expiresAt.UnixMilli()}.encode()
}
