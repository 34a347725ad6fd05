package conformance

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/wechatconf/wechatconf/core"
	"github.com/wechatconf/wechatconf/core/wecomvendor"
	"github.com/wechatconf/wechatconf/core/wxtest"
)

// The simulated WeCom vendor suites of the fleets: a third-party app's
// suite and a custom-developed app template (代开发, an id starting "dk").
const (
	fleetSuiteID     = "wwconformancefleet"
	fleetCustomID    = "dkconformancefleet"
	fleetSuiteSecret = "conformance-fleet-suite-secret"
)

// fleetCorpID is the corp id of the i-th corp of a WeCom vendor fleet.
func fleetCorpID(i int) string { return fmt.Sprintf("wwcorpfleet%07d", i) }

// VendorWeComThirdParty is a WeCom vendor's third-party app (第三方应用,
// core/wecomvendor) as a VendorFleet platform: one suite on a simulated
// WeCom vendor platform; its tenants are corps that install the app
// (wxtest.Server.Install), whose create_auth push the parent delivers to
// Suite.HandleEvent, which exchanges the auth code at v2
// get_permanent_code and stores the corp's permanent_code (the reply
// brings no access token: each corp's token is fetched once on the cold
// start). A caller first gets the suite_access_token
// (Suite.SuiteAccessToken, once per worker and cycle), then calls
// Suite.Corp(corpid).Do on wxtest.PathWeComAPI (agent/get of the app's
// agentid in the corp), whose token comes from get_corp_token with the
// permanent_code and the suite_access_token. The fetches are the corp
// tokens minted (wxtest.Server.CorpTokensIssued, calls of
// wxtest.PathCorpToken: every call mints one) and the suite_access_tokens
// (SuiteTokensIssued); the durable state checked after the run is each
// corp's permanent_code (Suite.PermanentCode,
// wxtest.Server.PermanentCodeValid).
var VendorWeComThirdParty = weComVendorPlatform("VendorFleet wecom third-party", "wc", fleetSuiteID, wxtest.PathCorpToken, "")

// VendorWeComCustom is a WeCom vendor's custom-developed app template
// (代开发应用, core/wecomvendor with a "dk" suite id) as a VendorFleet
// platform: as VendorWeComThirdParty, but each corp's token comes from
// gettoken (wxtest.PathWeComToken) with the corp's permanent_code as the
// app's secret, and the suite_access_token serves only the vendor's own
// calls (the exchanges of the installs, and the callers' SuiteAccessToken).
// WeCom's gettoken hands back the token it issued while that is valid, and
// mints a new one only once it has expired: after each expiry the first
// fetch of a corp mints its token and any further fetch would get the same
// one back, so CorpTokensIssued moves by exactly 1 per corp whatever the
// fleet does, and only the calls of /cgi-bin/gettoken (one per corp per
// cycle) show a fleet that fetches twice.
var VendorWeComCustom = weComVendorPlatform("VendorFleet wecom custom-developed", "dk", fleetCustomID, wxtest.PathWeComToken,
	"gettoken hands back a valid token, so each corp's minted tokens moved by 1 per cycle by WeCom's rule; the calls of /cgi-bin/gettoken, one per corp per cycle, are the fleet's check")

func weComVendorPlatform(name, key, suiteID, fetchPath, note string) VendorPlatform {
	return VendorPlatform{
		name: name, key: key, tenant: "corp", central: "suite",
		tenantID: fleetCorpID,
		newServer: func(latency time.Duration) *wxtest.Server {
			w := wxtest.New(wxtest.Options{Latency: latency})
			w.SetSuiteSecret(suiteID, fleetSuiteSecret)
			return w
		},
		newVendor: func(store core.TokenStore, baseURL, keyPrefix string, now func() time.Time) (fleetVendor, error) {
			s, err := wecomvendor.New(wecomvendor.Config{
				SuiteID: suiteID, SuiteSecret: core.NewSecret(fleetSuiteSecret),
				Token: core.NewSecret(fleetPushToken), EncodingAESKey: core.NewSecret(fleetPushKey),
				Store: store, KeyPrefix: keyPrefix, BaseURL: baseURL, Now: now,
				RetryBackoff: 10 * time.Millisecond,
			})
			if err != nil {
				return nil, err
			}
			return weComVendor{s}, nil
		},
		tenantFetches:  (*wxtest.Server).CorpTokensIssued,
		centralFetches: func(w *wxtest.Server) int { return w.SuiteTokensIssued(suiteID) },
		fetchPath:      fetchPath,
		coldFetches:    1,
		cycles:         WeComFleetCycles,
		note:           note,
	}
}

// weComVendor is a WeCom vendor suite in a fleet.
type weComVendor struct{ s *wecomvendor.Suite }

// deliver hands a command callback push to the suite.
func (v weComVendor) deliver(ctx context.Context, q url.Values, body []byte, err error) (*wecomvendor.Event, error) {
	if err != nil {
		return nil, err
	}
	return v.s.HandleEvent(ctx, q, bytes.NewReader(body))
}

func (v weComVendor) pushTicket(ctx context.Context, w *wxtest.Server) error {
	q, body, _, err := w.SuiteTicketPush(v.s.SuiteID(), fleetPushToken, fleetPushKey)
	ev, err := v.deliver(ctx, q, body, err)
	if err != nil {
		return err
	}
	if ev.Applied != "stored" {
		return fmt.Errorf("the suite_ticket push: applied %q, want stored", ev.Applied)
	}
	return nil
}

// authorize installs the app in corp and delivers create_auth; the data is
// the installation's agentid, which agent/get names.
func (v weComVendor) authorize(ctx context.Context, w *wxtest.Server, corp string) (string, error) {
	code := w.Install(v.s.SuiteID(), corp)
	q, body, err := w.CreateAuthPush(v.s.SuiteID(), code, fleetPushToken, fleetPushKey)
	ev, err := v.deliver(ctx, q, body, err)
	if err != nil {
		return "", err
	}
	if ev.Applied != wecomvendor.AppliedAuthorized || ev.CorpID != corp {
		return "", fmt.Errorf("the create_auth push of %s: applied %q to %q", corp, ev.Applied, ev.CorpID)
	}
	return strconv.FormatInt(w.AgentID(v.s.SuiteID(), corp), 10), nil
}

// begin gets the suite_access_token, as a vendor's process does for its
// own calls (get_auth_info …).
func (v weComVendor) begin(ctx context.Context) error {
	_, err := v.s.SuiteAccessToken(ctx)
	return err
}

func (v weComVendor) call(ctx context.Context, corp, agentID string) error {
	var out struct {
		AgentID int64 `json:"agentid"`
	}
	if err := v.s.Corp(corp).Do(ctx, http.MethodGet, wxtest.PathWeComAPI, url.Values{"agentid": {agentID}}, nil, &out); err != nil {
		return err
	}
	if strconv.FormatInt(out.AgentID, 10) != agentID {
		return fmt.Errorf("agent/get answered agentid %d, want %s", out.AgentID, agentID)
	}
	return nil
}

func (v weComVendor) durable(ctx context.Context, w *wxtest.Server, corp string) error {
	code, err := v.s.PermanentCode(ctx, corp)
	if err != nil {
		return fmt.Errorf("corp %s: PermanentCode: %w", corp, err)
	}
	if !w.PermanentCodeValid(v.s.SuiteID(), corp, code.Value) {
		return fmt.Errorf("corp %s: the stored permanent_code is not the one WeCom accepts", corp)
	}
	return nil
}
