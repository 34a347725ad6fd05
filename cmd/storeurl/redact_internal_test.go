package storeurl

import (
	"net/url"
	"strconv"
	"strings"
	"testing"
)

// TestScrub tests that scrub masks a password in each encoding a library
// may echo it in, the longest first, and leaves the rest of the message.
func TestScrub(t *testing.T) {
	const pw = `p@ss:w0rd/?#%&=+ it's\x`
	for _, form := range []string{
		pw,
		url.QueryEscape(pw),
		url.PathEscape(pw),
		strings.TrimPrefix(url.UserPassword("u", pw).String(), "u:"),
		strconv.Quote(pw),
	} {
		msg := "dial redis://u:" + form + "@host:6379: refused"
		got := scrub(msg, []string{pw})
		if strings.Contains(got, "w0rd") || !strings.Contains(got, mask) || !strings.HasSuffix(got, "@host:6379: refused") {
			t.Errorf("scrub(%q) = %q; want the password masked and the rest kept", msg, got)
		}
	}
	if got := scrub("no secret here", nil); got != "no secret here" {
		t.Errorf("scrub without secrets changed the message: %q", got)
	}
}
