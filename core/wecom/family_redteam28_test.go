package wecom_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/wechatconf/wechatconf/core"
	"github.com/wechatconf/wechatconf/core/wecom"
)

// NewAppFamily "checks cfg as New does", but New refuses a Policy whose
// RefreshAhead is shorter than its ExpiryMargin (through its access_token
// Credential) while NewAppFamily, which makes no credential, accepted it:
// the first JSAPITicket or AgentTicket of one of its Apps then panicked
// (the ticket's NewCredential fails, "the Policy passed the access_token's").
func TestAppFamilyRefusesThePolicyNewRefuses(t *testing.T) {
	bad := core.Policy{RefreshAhead: time.Minute, ExpiryMargin: 2 * time.Minute}
	if _, err := wecom.New(wecom.Config{CorpID: corpID, AgentID: agent1, Secret: core.NewSecret(secret1), Policy: bad}); err == nil {
		t.Fatal("New accepted a RefreshAhead shorter than the ExpiryMargin")
	}
	f, err := wecom.NewAppFamily(wecom.Config{AgentID: agent1, Policy: bad})
	if err != nil {
		return // refused as New refuses it
	}
	access, err := core.NewCredential(core.CredentialConfig{Name: "access_token", Key: "k/access_token",
		Fetch: func(context.Context, core.FetchRequest) (core.Token, error) {
			return core.Token{Value: "tok", ExpiresAt: time.Now().Add(time.Hour)}, nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	app, err := f.New(corpID, access)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if r := recover(); r != nil {
			t.Fatalf("NewAppFamily accepted the Policy and JSAPITicket panicked: %v", r)
		}
	}()
	_, _ = app.JSAPITicket(t.Context())
	t.Fatal("NewAppFamily accepted a Policy New refuses")
}

// The Apps of a family: each keeps its tickets under its own CorpID,
// shows its own CorpID and no secret in any rendering.
func TestAppFamilyAppsKeepTheirOwnCorp(t *testing.T) {
	f, err := wecom.NewAppFamily(wecom.Config{AgentID: agent1})
	if err != nil {
		t.Fatal(err)
	}
	const tokenValue = "FAMILY-INITIAL-ACCESS-TOKEN-xyz"
	var keys []string
	for _, corp := range []string{"wwcorpA0001", "wwcorpB0002"} {
		access, err := core.NewCredential(core.CredentialConfig{Name: "access_token", Key: "k/" + corp + "/access_token",
			Initial: core.Token{Value: tokenValue, ExpiresAt: time.Now().Add(time.Hour)},
			Fetch: func(context.Context, core.FetchRequest) (core.Token, error) {
				return core.Token{Value: "tok", ExpiresAt: time.Now().Add(time.Hour)}, nil
			}})
		if err != nil {
			t.Fatal(err)
		}
		app, err := f.New(corp, access)
		if err != nil {
			t.Fatal(err)
		}
		if app.CorpID() != corp || !strings.Contains(app.String(), `"`+corp+`"`) {
			t.Errorf("App of %s: CorpID %q, String %s", corp, app.CorpID(), app)
		}
		_, jsapi, agent := app.Keys()
		if !strings.Contains(jsapi, "/"+corp+"/") || !strings.Contains(agent, "/"+corp+"/") {
			t.Errorf("App of %s: ticket keys %q, %q", corp, jsapi, agent)
		}
		keys = append(keys, jsapi)
		for _, v := range []any{f, *f, app} {
			for _, verb := range []string{"%v", "%+v", "%#v", "%s"} {
				if out := fmt.Sprintf(verb, v); strings.Contains(out, tokenValue) {
					t.Errorf("%s of %T shows a token: %s", verb, v, out)
				}
			}
		}
	}
	if keys[0] == keys[1] {
		t.Errorf("two corps share the jsapi_ticket key %q", keys[0])
	}
}
