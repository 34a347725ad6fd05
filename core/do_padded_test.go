package core_test

import (
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/wechatconf/wechatconf/core"
	"github.com/wechatconf/wechatconf/core/wxtest"
)

// TestDoNilOutErrcodeAfterPadding: with out == nil, a JSON errcode
// reply still fails the call however it is padded. Before Do discarded a
// non-JSON reply, out == nil decoded the whole body as JSON, so an errcode
// after any white space (JSON allows it) or after a UTF-8 byte order mark
// (a *ReplyError then) failed the call; the peek of 512 bytes must not turn
// either into a silent success.
func TestDoNilOutErrcodeAfterPadding(t *testing.T) {
	s := newServer(t)
	c := newConf(t, s, classic)
	ctx := t.Context()
	const reply = `{"errcode":45015,"errmsg":"response out of time limit"}`
	for _, tc := range []struct{ name, body string }{
		{"Spaces511", strings.Repeat(" ", 511) + reply},
		{"Spaces512", strings.Repeat(" ", 512) + reply},
		{"Newlines4096", strings.Repeat("\r\n", 2048) + reply},
		{"ByteOrderMark", "\ufeff" + reply},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s.InjectFault(wxtest.PathSend, wxtest.Fault{Body: tc.body}, 1)
			err := c.Do(ctx, http.MethodPost, wxtest.PathSend, nil, []byte(`{}`), nil)
			var ae *core.APIError
			if !errors.As(err, &ae) || ae.Code != 45015 {
				t.Errorf("Do(out=nil) on %d bytes of padding and errcode 45015: %v, want *core.APIError 45015", len(tc.body)-len(reply), err)
			}
		})
	}

	// A rejected token behind the padding is still refreshed, the call retried.
	old, err := c.AccessToken(ctx)
	if err != nil {
		t.Fatal(err)
	}
	s.ResetCounters()
	s.InjectFault(wxtest.PathSend, wxtest.Fault{Body: strings.Repeat(" ", 1024) + `{"errcode":40001,"errmsg":"invalid credential, access_token is invalid or not latest"}`}, 1)
	if err := c.Do(ctx, http.MethodPost, wxtest.PathSend, nil, []byte(`{}`), nil); err != nil {
		t.Errorf("Do(out=nil) after a padded 40001: %v, want a refresh and a retry", err)
	}
	if n := s.Calls(wxtest.PathSend); n != 2 {
		t.Errorf("%d sends, want 2 (rejected, retried)", n)
	}
	if now, err := c.AccessToken(ctx); err != nil || now.Value == old.Value {
		t.Errorf("the token after a padded 40001 is the one rejected (%v)", err)
	}
}
