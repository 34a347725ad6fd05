package core_test

import (
	"bytes"
	"errors"
	"net/http"
	"net/url"
	"testing"

	"github.com/wechatconf/wechatconf/core"
	"github.com/wechatconf/wechatconf/core/wxtest"
)

// jpeg is the start of a JPEG file: not JSON, not UTF-8.
var jpeg = append([]byte{0xff, 0xd8, 0xff, 0xe0, 0x00, 0x10, 'J', 'F', 'I', 'F', 0x00}, bytes.Repeat([]byte{0x00, 0xff, 0x7b}, 300)...)

// upload puts a file on the simulator through Do with a Multipart body and
// returns its media_id.
func upload(t *testing.T, c *core.Conf, name string, data []byte) string {
	t.Helper()
	var up struct {
		Type    string `json:"type"`
		MediaID string `json:"media_id"`
	}
	body := core.Multipart{Files: []core.File{{Field: "media", Name: name, ContentType: "image/jpeg", Data: data}}}
	if err := c.Do(t.Context(), http.MethodPost, wxtest.PathMediaUpload, url.Values{"type": {"image"}}, body, &up); err != nil {
		t.Fatalf("upload: %v", err)
	}
	if up.Type != "image" || up.MediaID == "" {
		t.Fatalf("upload reply = %+v", up)
	}
	return up.MediaID
}

// Files come back whole through *[]byte, *core.Media and io.Writer; the
// upload is multipart and survives a retry.
func TestDoBinaryRepliesAndUploads(t *testing.T) {
	s := newServer(t)
	c := newConf(t, s, nil)
	ctx := t.Context()
	s.InjectFault(wxtest.PathMediaUpload, wxtest.HTTPStatus(502), 1) // the upload is sent twice
	id := upload(t, c, "photo.jpg", jpeg)
	if n := s.Calls(wxtest.PathMediaUpload); n != 2 {
		t.Errorf("%d upload requests, want 2 (one 502, one retry)", n)
	}
	q := url.Values{"media_id": {id}}

	var raw []byte
	if err := c.Do(ctx, http.MethodGet, wxtest.PathMediaGet, q, nil, &raw); err != nil {
		t.Fatalf("Do into *[]byte: %v", err)
	}
	if !bytes.Equal(raw, jpeg) {
		t.Errorf("*[]byte got %d bytes, want the %d uploaded", len(raw), len(jpeg))
	}

	var m core.Media
	if err := c.Do(ctx, http.MethodGet, wxtest.PathMediaGet, q, nil, &m); err != nil {
		t.Fatalf("Do into *core.Media: %v", err)
	}
	if !bytes.Equal(m.Body, jpeg) || m.ContentType != "image/jpeg" || m.Filename != "photo.jpg" {
		t.Errorf("Media = %d bytes, %q, %q; want the upload, image/jpeg, photo.jpg", len(m.Body), m.ContentType, m.Filename)
	}

	var buf bytes.Buffer
	if err := c.Do(ctx, http.MethodGet, wxtest.PathMediaGet, q, nil, &buf); err != nil {
		t.Fatalf("Do into an io.Writer: %v", err)
	}
	if !bytes.Equal(buf.Bytes(), jpeg) {
		t.Errorf("io.Writer got %d bytes, want %d", buf.Len(), len(jpeg))
	}

	// A file that is JSON but not an error is content too.
	doc := []byte(`{"errcode":0,"title":"a JSON file"}`)
	jid := upload(t, c, "doc.json", doc)
	if err := c.Do(ctx, http.MethodGet, wxtest.PathMediaGet, url.Values{"media_id": {jid}}, nil, &raw); err != nil || !bytes.Equal(raw, doc) {
		t.Errorf("JSON file without errcode = %q, %v; want it as content", raw, err)
	}
}

// An error from a content endpoint is JSON labelled text/plain: an
// *APIError, and a rejected token is refreshed and the download retried.
func TestDoBinaryEndpointErrors(t *testing.T) {
	s := newServer(t)
	c := newConf(t, s, classic)
	ctx := t.Context()
	id := upload(t, c, "photo.jpg", jpeg)

	var m core.Media
	err := c.Do(ctx, http.MethodGet, wxtest.PathMediaGet, url.Values{"media_id": {"nope"}}, nil, &m)
	var ae *core.APIError
	if !errors.As(err, &ae) || ae.Code != 40007 {
		t.Fatalf("unknown media_id: %v, want *APIError 40007", err)
	}
	var buf bytes.Buffer
	if err := c.Do(ctx, http.MethodGet, wxtest.PathMediaGet, url.Values{"media_id": {"nope"}}, nil, &buf); !errors.As(err, &ae) || buf.Len() != 0 {
		t.Fatalf("unknown media_id into a Writer: %v with %d bytes written, want *APIError and nothing written", err, buf.Len())
	}

	old, _ := c.AccessToken(ctx)
	s.Revoke(old.Value)
	if err := c.Do(ctx, http.MethodGet, wxtest.PathMediaGet, url.Values{"media_id": {id}}, nil, &m); err != nil {
		t.Fatalf("download with a revoked token: %v, want a refresh and a retry", err)
	}
	if !bytes.Equal(m.Body, jpeg) {
		t.Error("the retried download did not bring the file")
	}
	if n := s.Calls(wxtest.PathToken); n != 2 {
		t.Errorf("%d token fetches, want 2", n)
	}
}

// An access_token the caller put in query is sent as is, never replaced by
// the Conf's, and never refreshed.
func TestDoKeepsTheCallersAccessToken(t *testing.T) {
	s := newServer(t)
	c := newConf(t, s, nil)
	other := newConf(t, s, classic) // a token the Conf does not keep: a classic one of the same AppID
	ctx := t.Context()
	if _, err := c.AccessToken(ctx); err != nil {
		t.Fatal(err)
	}
	theirs, err := other.AccessToken(ctx)
	if err != nil {
		t.Fatal(err)
	}
	s.Revoke(theirs.Value)
	s.ResetCounters()
	err = c.Do(ctx, http.MethodGet, wxtest.PathAPI, url.Values{"access_token": {theirs.Value}}, nil, nil)
	if !core.IsInvalidCredential(err) {
		t.Fatalf("Do with the caller's revoked token = %v; want its 40001 (the Conf's own token must not replace it)", err)
	}
	if n := tokenCalls(s); n != 0 {
		t.Errorf("%d token calls; a token the Conf does not own must not be refreshed", n)
	}
}

// tests that out == nil means "the body is not needed": a file is read and
// discarded, not refused for not being JSON, while an errcode still fails
// the call (and a rejected token is still refreshed and the call retried),
// and a reply that starts as JSON but is cut short is still a *ReplyError.
func TestDoNilOutDiscardsTheBody(t *testing.T) {
	s := newServer(t)
	c := newConf(t, s, classic)
	ctx := t.Context()
	id := upload(t, c, "photo.jpg", jpeg)
	q := url.Values{"media_id": {id}}

	if err := c.Do(ctx, http.MethodGet, wxtest.PathMediaGet, q, nil, nil); err != nil {
		t.Errorf("Do(%s, out=nil) on a JPEG reply: %v, want nil (the body discarded)", wxtest.PathMediaGet, err)
	}
	if err := c.Do(ctx, http.MethodPost, wxtest.PathSend, nil, []byte(`{}`), nil); err != nil {
		t.Errorf("Do(%s, out=nil) on {\"errcode\":0}: %v, want nil", wxtest.PathSend, err)
	}

	var ae *core.APIError
	err := c.Do(ctx, http.MethodGet, wxtest.PathMediaGet, url.Values{"media_id": {"nope"}}, nil, nil)
	if !errors.As(err, &ae) || ae.Code != 40007 {
		t.Errorf("Do(%s, out=nil) for an unknown media_id: %v, want *core.APIError 40007", wxtest.PathMediaGet, err)
	}
	s.InjectFault(wxtest.PathSend, wxtest.Errcode(45015, "response out of time limit"), 1)
	if err := c.Do(ctx, http.MethodPost, wxtest.PathSend, nil, []byte(`{}`), nil); !errors.As(err, &ae) || ae.Code != 45015 {
		t.Errorf("Do(%s, out=nil) on errcode 45015: %v, want *core.APIError 45015", wxtest.PathSend, err)
	}

	old, err := c.AccessToken(ctx)
	if err != nil {
		t.Fatal(err)
	}
	s.Revoke(old.Value)
	s.ResetCounters()
	if err := c.Do(ctx, http.MethodGet, wxtest.PathMediaGet, q, nil, nil); err != nil {
		t.Errorf("Do(%s, out=nil) with a revoked token: %v, want a refresh and a retry", wxtest.PathMediaGet, err)
	}
	if n := s.Calls(wxtest.PathToken); n != 1 {
		t.Errorf("%d token fetches after the revoke, want 1", n)
	}
	if n := s.Calls(wxtest.PathMediaGet); n != 2 {
		t.Errorf("%d downloads after the revoke, want 2 (rejected, retried)", n)
	}

	s.InjectFault(wxtest.PathSend, wxtest.Fault{Body: `{"errcode":40001,"errmsg":"invalid cre`}, 1)
	var re *core.ReplyError
	if err := c.Do(ctx, http.MethodPost, wxtest.PathSend, nil, []byte(`{}`), nil); !errors.As(err, &re) {
		t.Errorf("Do(%s, out=nil) on a JSON reply cut short: %v, want a *core.ReplyError", wxtest.PathSend, err)
	}
}
