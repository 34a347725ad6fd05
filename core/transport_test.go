package core_test

import (
	"bytes"
	"encoding/json"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/wechatconf/wechatconf/core"
	"github.com/wechatconf/wechatconf/core/wxtest"
)

// get makes a GET through client and decodes the JSON reply into out.
func get(t *testing.T, client *http.Client, u string, out any) {
	t.Helper()
	resp, err := client.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		t.Fatal(err)
	}
}

type ipList struct {
	Errcode int      `json:"errcode"`
	IPList  []string `json:"ip_list"`
}

// A plain http.Client gets the Conf's token on WeChat's host only, and a
// rejected token is replaced once and the call retried.
func TestTransportAddsAndRefreshesTheToken(t *testing.T) {
	s := newServer(t)
	c := newConf(t, s, classic)
	client := c.Client(s.Client().Transport)
	var out ipList
	get(t, client, s.URL+wxtest.PathAPI, &out)
	if out.Errcode != 0 || len(out.IPList) == 0 {
		t.Fatalf("reply %+v, want the ip_list", out)
	}
	old, _ := c.AccessToken(t.Context())
	s.Revoke(old.Value)
	out = ipList{}
	get(t, client, s.URL+wxtest.PathAPI+"?lang=zh_CN", &out)
	if out.Errcode != 0 || len(out.IPList) == 0 {
		t.Fatalf("after the token was revoked: %+v, want a refresh and a retry", out)
	}
	if n := s.Calls(wxtest.PathToken); n != 2 {
		t.Errorf("%d token fetches, want 2", n)
	}

	// Another host: nothing added.
	var seen url.Values
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { seen = r.URL.Query() }))
	t.Cleanup(other.Close)
	resp, err := client.Get(other.URL + "/x?a=1")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if seen.Has("access_token") {
		t.Error("the transport put the access_token on a request to another host")
	}
}

// Files pass through whole, and a multipart upload rejected with 40001 is
// sent again with its body after the refresh.
func TestTransportBinaryAndUploadRetry(t *testing.T) {
	s := newServer(t)
	c := newConf(t, s, classic)
	client := c.Client(s.Client().Transport)
	if _, err := c.AccessToken(t.Context()); err != nil {
		t.Fatal(err)
	}
	old, _ := c.AccessToken(t.Context())
	s.Revoke(old.Value)

	var buf bytes.Buffer
	w := multipart.NewWriter(&buf)
	part, _ := w.CreateFormFile("media", "photo.jpg")
	part.Write(jpeg)
	w.Close()
	resp, err := client.Post(s.URL+wxtest.PathMediaUpload+"?type=image", w.FormDataContentType(), &buf)
	if err != nil {
		t.Fatal(err)
	}
	var up struct {
		Errcode int    `json:"errcode"`
		MediaID string `json:"media_id"`
	}
	json.NewDecoder(resp.Body).Decode(&up)
	resp.Body.Close()
	if up.MediaID == "" {
		t.Fatalf("upload after a revoked token: %+v, want a media_id (refresh, body replayed)", up)
	}
	if n := s.Calls(wxtest.PathMediaUpload); n != 2 {
		t.Errorf("%d upload requests, want 2 (40001, then the retry)", n)
	}

	resp, err = client.Get(s.URL + wxtest.PathMediaGet + "?media_id=" + url.QueryEscape(up.MediaID))
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !bytes.Equal(got, jpeg) || resp.Header.Get("Content-Type") == "" {
		t.Errorf("download through the transport: %d bytes, want the %d uploaded", len(got), len(jpeg))
	}
}

// A token the Conf does not keep (a user's OAuth token) is left alone,
// rejected or not.
func TestTransportLeavesOtherTokensAlone(t *testing.T) {
	s := newServer(t)
	c := newConf(t, s, nil)
	other := newConf(t, s, classic)
	theirs, err := other.AccessToken(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	s.Revoke(theirs.Value)
	s.ResetCounters()
	var out ipList
	get(t, c.Client(s.Client().Transport), s.URL+wxtest.PathAPI+"?access_token="+url.QueryEscape(theirs.Value), &out)
	if out.Errcode != 40001 {
		t.Errorf("reply %+v, want the 40001 of the caller's own token", out)
	}
	if n := tokenCalls(s); n != 0 {
		t.Errorf("%d token calls for a token the Conf does not keep, want 0", n)
	}
}

// BenchmarkTransport compares a call through the Transport with the same
// call through a plain client carrying a token, to a local server.
func BenchmarkTransport(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `{"ip_list":["127.0.0.1"]}`)
	}))
	b.Cleanup(srv.Close)
	c, err := core.New(core.Config{AppID: appID, BaseURL: srv.URL,
		AccessToken: core.Token{Value: "T", ExpiresAt: time.Now().Add(time.Hour)}})
	if err != nil {
		b.Fatal(err)
	}
	call := func(b *testing.B, client *http.Client, u string) {
		resp, err := client.Get(u)
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	b.Run("ratio", func(b *testing.B) {
		// Both clients alternate in one loop, so load changes hit both;
		// reports transport-ns/call over plain-ns/call.
		plain, tr := srv.Client(), c.Client(srv.Client().Transport)
		var tPlain, tTransport time.Duration
		for b.Loop() {
			start := time.Now()
			call(b, plain, srv.URL+"/cgi-bin/getcallbackip?access_token=T")
			mid := time.Now()
			call(b, tr, srv.URL+"/cgi-bin/getcallbackip")
			tPlain += mid.Sub(start)
			tTransport += time.Since(mid)
		}
		b.ReportMetric(float64(tTransport)/float64(tPlain), "transport/plain")
	})
	b.Run("plain", func(b *testing.B) {
		client := srv.Client()
		for b.Loop() {
			call(b, client, srv.URL+"/cgi-bin/getcallbackip?access_token=T")
		}
	})
	b.Run("transport", func(b *testing.B) {
		client := c.Client(srv.Client().Transport)
		for b.Loop() {
			call(b, client, srv.URL+"/cgi-bin/getcallbackip")
		}
	})
}
