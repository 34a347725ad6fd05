package wecom_test

import (
	"context"
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
