package conformance

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/wechatconf/wechatconf/core"
	"github.com/wechatconf/wechatconf/core/openplatform"
	"github.com/wechatconf/wechatconf/core/wxtest"
)

// The simulated third-party platform of OpenPlatformFleet.
const (
	fleetComponentID     = "wxconformancefleet"
	fleetComponentSecret = "conformance-fleet-component-secret"
)

// fleetAppID is the AppID of the i-th authorizer of the fleet.
func fleetAppID(i int) string { return fmt.Sprintf("wxopfleet%07d", i) }

// VendorOpenPlatform is the Open Platform (微信开放平台) third-party
// platform (core/openplatform) as a VendorFleet platform: one component on
// a simulated Open Platform; its tenants are authorizers (公众号/小程序)
// authorized through the authorized push (Component.HandleEvent, which
// exchanges the code at query_auth: the reply brings the authorizer's
// access token and refresh token); a caller calls
// Component.Authorizer(appid).Do on wxtest.PathAPI. The fetches are the
// authorizer tokens minted (wxtest.Server.AuthorizerTokensIssued, calls
// of wxtest.PathAuthorizerToken) and the component_access_tokens
// (ComponentTokensIssued); the durable state checked after the run is
// each authorizer's refresh token (Component.RefreshToken,
// wxtest.Server.RefreshTokenValid).
var VendorOpenPlatform = VendorPlatform{
	name: "OpenPlatformFleet", key: "op", tenant: "authorizer", central: "component",
	tenantID: fleetAppID,
	newServer: func(latency time.Duration) *wxtest.Server {
		return wxtest.New(wxtest.Options{
			Components: []wxtest.Component{{AppID: fleetComponentID, AppSecret: fleetComponentSecret}},
			Latency:    latency,
		})
	},
	newVendor: func(store core.TokenStore, baseURL, keyPrefix string, now func() time.Time) (fleetVendor, error) {
		c, err := newFleetComponent(store, baseURL, keyPrefix, now)
		if err != nil {
			return nil, err
		}
		return opVendor{c}, nil
	},
	tenantFetches:  (*wxtest.Server).AuthorizerTokensIssued,
	centralFetches: (*wxtest.Server).ComponentTokensIssued,
	fetchPath:      wxtest.PathAuthorizerToken,
	cycles:         FleetCycles,
}

// OpenPlatformFleet is the fleet check of an Open Platform vendor
// (core/openplatform): VendorFleet(t, h, VendorOpenPlatform, procs,
// authorizers). procs OS processes each build an openplatform.Component
// over a store from h and call the API (Authorizer(appid).Do on
// wxtest.PathAPI) for every one of authorizers merchant accounts, from
// FleetWorkers goroutines each, against one simulated Open Platform. The
// authorized pushes store every authorizer's token, so on the cold start
// (cycle 0) no fetch may reach WeChat; after each expiry, one fetch per
// authorizer and one component_access_token fetch in the whole fleet; no
// caller error; each authorizer's stored refresh token still valid after
// the run. Each cycle logs one line, e.g.
//
//	OpenPlatformFleet: 8 processes × 1000 authorizers, cycle 1: authorizer fetches 1000 (want 1000, max per authorizer 1, calls of /cgi-bin/component/api_authorizer_token 1000), component fetches 1 (want 1), caller errors 0 (cycle done 4.2s after release, WeChat latency 5ms)
//
// Call it from a test of its own, e.g.
//
//	func TestOpenPlatformFleet(t *testing.T) { conformance.OpenPlatformFleet(t, harness(t), 8, 1000) }
//
// In the child process the same call plays one process of the fleet.
func OpenPlatformFleet(t *testing.T, h Harness, procs, authorizers int) {
	t.Helper()
	VendorFleet(t, h, VendorOpenPlatform, procs, authorizers)
}

// newFleetComponent builds the Component of the fleet over store.
func newFleetComponent(store core.TokenStore, baseURL, keyPrefix string, now func() time.Time) (*openplatform.Component, error) {
	return openplatform.New(openplatform.Config{
		AppID: fleetComponentID, AppSecret: core.NewSecret(fleetComponentSecret),
		Token: core.NewSecret(fleetPushToken), EncodingAESKey: core.NewSecret(fleetPushKey),
		Store: store, KeyPrefix: keyPrefix, BaseURL: baseURL, Now: now,
		RetryBackoff: 10 * time.Millisecond,
	})
}

// opVendor is an Open Platform component in a fleet.
type opVendor struct{ c *openplatform.Component }

func (v opVendor) pushTicket(ctx context.Context, w *wxtest.Server) error {
	q, body, _, err := w.VerifyTicketPush(fleetComponentID, fleetPushToken, fleetPushKey)
	if err != nil {
		return err
	}
	ev, err := v.c.HandleEvent(ctx, q, bytes.NewReader(body))
	if err != nil {
		return err
	}
	if ev.Applied != "stored" {
		return fmt.Errorf("the component_verify_ticket push: applied %q, want stored", ev.Applied)
	}
	return nil
}

func (v opVendor) authorize(ctx context.Context, w *wxtest.Server, appid string) (string, error) {
	q, body, err := w.AuthorizedPush(w.Authorize(fleetComponentID, appid), fleetPushToken, fleetPushKey)
	if err != nil {
		return "", err
	}
	ev, err := v.c.HandleEvent(ctx, q, bytes.NewReader(body))
	if err != nil {
		return "", err
	}
	if ev.Applied != "authorized" || ev.AuthorizerAppID != appid {
		return "", fmt.Errorf("the authorized push of %s: applied %q to %q", appid, ev.Applied, ev.AuthorizerAppID)
	}
	return "", nil
}

func (opVendor) begin(context.Context) error { return nil }

func (v opVendor) call(ctx context.Context, appid, _ string) error {
	var out struct {
		IPList []string `json:"ip_list"`
	}
	if err := v.c.Authorizer(appid).Do(ctx, http.MethodGet, wxtest.PathAPI, nil, nil, &out); err != nil {
		return err
	}
	if len(out.IPList) == 0 {
		return fmt.Errorf("no ip_list in the reply")
	}
	return nil
}

func (v opVendor) durable(ctx context.Context, w *wxtest.Server, appid string) error {
	tok, err := v.c.RefreshToken(ctx, appid)
	if err != nil {
		return fmt.Errorf("authorizer %s: RefreshToken: %w", appid, err)
	}
	if !w.RefreshTokenValid(fleetComponentID, appid, tok.Value) {
		return fmt.Errorf("authorizer %s: the stored refresh token is not the one WeChat accepts", appid)
	}
	return nil
}
