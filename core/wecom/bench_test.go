package wecom_test

import (
	"testing"
	"time"

	"github.com/wechatconf/wechatconf/core"
	"github.com/wechatconf/wechatconf/core/wecom"
	"github.com/wechatconf/wechatconf/core/wxtest"
)

// BenchmarkAccessTokenHot measures the hot path of a WeCom app's
// access_token: a valid in-process token, no I/O. The goal is < 50 ns/op
// and 0 allocs/op.
func BenchmarkAccessTokenHot(b *testing.B) {
	s := wxtest.New(wxtest.Options{Now: time.Now})
	b.Cleanup(s.Close)
	a, err := wecom.New(wecom.Config{CorpID: corpID, AgentID: agent1, Secret: core.NewSecret(secret1), BaseURL: s.URL})
	if err != nil {
		b.Fatal(err)
	}
	ctx := b.Context()
	if _, err := a.AccessToken(ctx); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := a.AccessToken(ctx); err != nil {
			b.Fatal(err)
		}
	}
}
