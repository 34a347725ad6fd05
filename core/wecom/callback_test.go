package wecom_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wechatconf/wechatconf/core"
	"github.com/wechatconf/wechatconf/core/msgcrypt"
	"github.com/wechatconf/wechatconf/core/wecom"
)

// vectorSet is one set of testdata/vectors.json: Tencent's published
// WeCom callback samples, with their source.
type vectorSet struct {
	Name           string `json:"name"`
	Source         string `json:"source"`
	Token          string `json:"token"`
	EncodingAESKey string `json:"encoding_aes_key"`
	CorpID         string `json:"corp_id"`
	Verify         struct {
		MsgSignature string `json:"msg_signature"`
		Timestamp    string `json:"timestamp"`
		Nonce        string `json:"nonce"`
		Echostr      string `json:"echostr"`
		EchoPlain    string `json:"echo_plain"`
	} `json:"verify"`
	Push struct {
		MsgSignature string `json:"msg_signature"`
		Timestamp    string `json:"timestamp"`
		Nonce        string `json:"nonce"`
		Body         string `json:"body"`
		PushPlain    string `json:"push_plain"`
		FromUser     string `json:"from_user"`
		MsgType      string `json:"msg_type"`
		Content      string `json:"content"`
		AgentID      int64  `json:"agent_id"`
	} `json:"push"`
	ReplyPlain string `json:"reply_plain"`
}

func loadVectors(t testing.TB) []vectorSet {
	t.Helper()
	b, err := os.ReadFile("testdata/vectors.json")
	if err != nil {
		t.Fatal(err)
	}
	var v struct {
		Sets []vectorSet `json:"sets"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	if len(v.Sets) == 0 {
		t.Fatal("no vectors")
	}
	return v.Sets
}

// official returns the QDG6eK set, the one every WeCom library quotes.
func official(t testing.TB) vectorSet { return loadVectors(t)[0] }

// at returns a clock stopped at the Unix time ts.
func at(ts string) func() time.Time {
	n, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		panic(err)
	}
	return func() time.Time { return time.Unix(n, 0) }
}

func (v vectorSet) config(now string) wecom.CallbackConfig {
	return wecom.CallbackConfig{Token: core.NewSecret(v.Token), EncodingAESKey: core.NewSecret(v.EncodingAESKey), CorpID: v.CorpID, Now: at(now)}
}

func (v vectorSet) callback(t testing.TB, now string) *wecom.Callback {
	t.Helper()
	c, err := wecom.NewCallback(v.config(now))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func (v vectorSet) verifyQuery() url.Values {
	return url.Values{"msg_signature": {v.Verify.MsgSignature}, "timestamp": {v.Verify.Timestamp}, "nonce": {v.Verify.Nonce}, "echostr": {v.Verify.Echostr}}
}

func (v vectorSet) pushQuery() url.Values {
	return url.Values{"msg_signature": {v.Push.MsgSignature}, "timestamp": {v.Push.Timestamp}, "nonce": {v.Push.Nonce}}
}

// signed returns a push envelope around enc and its query, correctly
// signed with the set's token at its push time: what an attacker who knew
// the token, or WeCom, would send.
func (v vectorSet) signed(enc string) (url.Values, string) {
	q := v.pushQuery()
	q.Set("msg_signature", msgcrypt.MsgSignature(v.Token, v.Push.Timestamp, v.Push.Nonce, enc))
	return q, "<xml><ToUserName><![CDATA[" + v.CorpID + "]]></ToUserName><Encrypt><![CDATA[" + enc + "]]></Encrypt><AgentID><![CDATA[218]]></AgentID></xml>"
}

func TestOfficialVerifyURL(t *testing.T) {
	for _, v := range loadVectors(t) {
		t.Run(v.Name, func(t *testing.T) {
			echo, err := v.callback(t, v.Verify.Timestamp).VerifyURL(v.verifyQuery())
			if err != nil {
				t.Fatalf("VerifyURL: %v (source %s)", err, v.Source)
			}
			if echo != v.Verify.EchoPlain {
				t.Fatalf("echo = %q, want %q", echo, v.Verify.EchoPlain)
			}
		})
	}
}

func TestOfficialPush(t *testing.T) {
	for _, v := range loadVectors(t) {
		t.Run(v.Name, func(t *testing.T) {
			c := v.callback(t, v.Push.Timestamp)
			m, err := c.ReadMessage(v.pushQuery(), strings.NewReader(v.Push.Body))
			if err != nil {
				t.Fatalf("ReadMessage: %v (source %s)", err, v.Source)
			}
			if string(m.XML) != v.Push.PushPlain {
				t.Errorf("XML = %q, want %q", m.XML, v.Push.PushPlain)
			}
			if m.ToUserName != v.CorpID || m.FromUserName != v.Push.FromUser || m.MsgType != v.Push.MsgType || m.AgentID != v.Push.AgentID || m.PreviousKey {
				t.Errorf("message = %+v", m)
			}
			if ts, _ := strconv.ParseInt(v.Push.Timestamp, 10, 64); m.CreateTime != ts {
				t.Errorf("CreateTime = %d, want %d", m.CreateTime, ts)
			}
			var text struct {
				Content string `xml:"Content"`
			}
			if err := xml.Unmarshal(m.XML, &text); err != nil || text.Content != v.Push.Content {
				t.Errorf("Content = %q (%v), want %q", text.Content, err, v.Push.Content)
			}

			// The same through ParseMessage and an *http.Request.
			r := httptest.NewRequest(http.MethodPost, "/callback?"+v.pushQuery().Encode(), strings.NewReader(v.Push.Body))
			m2, err := c.ParseMessage(r)
			if err != nil || !bytes.Equal(m2.XML, m.XML) {
				t.Fatalf("ParseMessage = %v, %v", m2, err)
			}
		})
	}
}

// sentinels are every error the Callback wraps; a failure must wrap its
// own and no other.
var sentinels = []error{
	msgcrypt.ErrSignature, msgcrypt.ErrBase64, msgcrypt.ErrBlockSize, msgcrypt.ErrPadding, msgcrypt.ErrLength,
	msgcrypt.ErrAppID, msgcrypt.ErrXML, msgcrypt.ErrNoEncrypt, msgcrypt.ErrTooLarge, msgcrypt.ErrTimestamp,
	msgcrypt.ErrKey, wecom.ErrNoEchostr,
}

// checkErr checks that err is a *wecom.CallbackError wrapping want and no
// other sentinel, with "wechatconf: " once at its start.
func checkErr(t *testing.T, err, want error) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want %v", want)
	}
	var ce *wecom.CallbackError
	if !errors.As(err, &ce) {
		t.Errorf("%v: not a *wecom.CallbackError (%T)", err, err)
	}
	for _, s := range sentinels {
		if got := errors.Is(err, s); got != (s == want) {
			t.Errorf("errors.Is(%q, %q) = %v", err, s, got)
		}
	}
	if msg := err.Error(); !strings.HasPrefix(msg, "wechatconf: ") || strings.Count(msg, "wechatconf") != 1 {
		t.Errorf("error text %q: want one \"wechatconf: \" prefix", msg)
	}
}

func TestReadMessageErrors(t *testing.T) {
	v := official(t)
	enc := msgcrypt.Envelope{}
	if e, err := msgcrypt.ParseEnvelope([]byte(v.Push.Body)); err != nil {
		t.Fatal(err)
	} else {
		enc = e
	}
	other, _ := msgcrypt.New(v.Token, "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG", v.CorpID)
	otherEnc, _ := other.Encrypt([]byte(v.Push.PushPlain))
	right, _ := msgcrypt.New(v.Token, v.EncodingAESKey, v.CorpID)
	notXML, _ := right.Encrypt([]byte("hello"))
	twoRoots, _ := right.Encrypt([]byte("<xml></xml><xml></xml>"))

	type tc struct {
		name  string
		cfg   func(*wecom.CallbackConfig)
		query url.Values
		body  string
		want  error
	}
	badSig := v.pushQuery()
	badSig.Set("msg_signature", strings.Repeat("0", 40))
	noSig := v.pushQuery()
	noSig.Del("msg_signature")
	badNonce := v.pushQuery()
	badNonce.Set("nonce", "1")
	cases := []tc{
		{name: "wrong signature", query: badSig, body: v.Push.Body, want: msgcrypt.ErrSignature},
		{name: "no signature", query: noSig, body: v.Push.Body, want: msgcrypt.ErrSignature},
		{name: "nonce changed", query: badNonce, body: v.Push.Body, want: msgcrypt.ErrSignature},
		{name: "another CorpID", cfg: func(c *wecom.CallbackConfig) { c.CorpID = "ww0123456789abcdef" }, query: v.pushQuery(), body: v.Push.Body, want: msgcrypt.ErrAppID},
		{name: "another ReceiveID", cfg: func(c *wecom.CallbackConfig) { c.ReceiveID = "suite123" }, query: v.pushQuery(), body: v.Push.Body, want: msgcrypt.ErrAppID},
		{name: "timestamp late", cfg: func(c *wecom.CallbackConfig) {
			c.Now = func() time.Time { return at(v.Push.Timestamp)().Add(5*time.Minute + time.Second) }
		}, query: v.pushQuery(), body: v.Push.Body, want: msgcrypt.ErrTimestamp},
		{name: "timestamp early", cfg: func(c *wecom.CallbackConfig) {
			c.Now = func() time.Time { return at(v.Push.Timestamp)().Add(-time.Hour) }
		}, query: v.pushQuery(), body: v.Push.Body, want: msgcrypt.ErrTimestamp},
		{name: "timestamp narrow window", cfg: func(c *wecom.CallbackConfig) {
			c.TimestampWindow = time.Second
			c.Now = func() time.Time { return at(v.Push.Timestamp)().Add(2 * time.Second) }
		}, query: v.pushQuery(), body: v.Push.Body, want: msgcrypt.ErrTimestamp},
		{name: "oversize body", cfg: func(c *wecom.CallbackConfig) { c.MaxMessageBytes = 100 }, query: v.pushQuery(), body: v.Push.Body, want: msgcrypt.ErrTooLarge},
		{name: "oversize default", query: v.pushQuery(), body: strings.Repeat(" ", wecom.DefaultMaxMessageBytes+1), want: msgcrypt.ErrTooLarge},
		{name: "malformed XML", query: v.pushQuery(), body: v.Push.Body[:len(v.Push.Body)-3], want: msgcrypt.ErrXML},
		{name: "not XML", query: v.pushQuery(), body: "msg_signature=x", want: msgcrypt.ErrXML},
		{name: "empty body", query: v.pushQuery(), body: "", want: msgcrypt.ErrXML},
		{name: "trailing element", query: v.pushQuery(), body: v.Push.Body + "<xml/>", want: msgcrypt.ErrXML},
		{name: "other root", query: v.pushQuery(), body: "<root><Encrypt>" + enc.Encrypt + "</Encrypt></root>", want: msgcrypt.ErrXML},
		{name: "no Encrypt", query: v.pushQuery(), body: "<xml><ToUserName>x</ToUserName><AgentID>218</AgentID></xml>", want: msgcrypt.ErrNoEncrypt},
	}
	for _, s := range []struct {
		name, enc string
		want      error
	}{
		{"truncated base64", enc.Encrypt[:len(enc.Encrypt)-3], msgcrypt.ErrBase64},
		{"base64 of 15 bytes", base64.StdEncoding.EncodeToString(make([]byte, 15)), msgcrypt.ErrBlockSize},
		{"base64 cut to three blocks", enc.Encrypt[:64], msgcrypt.ErrPadding},
		{"another key", otherEnc, nil}, // ErrPadding or, rarely, ErrLength
		{"plaintext not XML", notXML, msgcrypt.ErrXML},
		{"plaintext two roots", twoRoots, msgcrypt.ErrXML},
	} {
		q, body := v.signed(s.enc)
		cases = append(cases, tc{name: "signed " + s.name, query: q, body: body, want: s.want})
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := v.config(v.Push.Timestamp)
			if c.cfg != nil {
				c.cfg(&cfg)
			}
			cb, err := wecom.NewCallback(cfg)
			if err != nil {
				t.Fatal(err)
			}
			m, err := cb.ReadMessage(c.query, strings.NewReader(c.body))
			if m != nil {
				t.Errorf("a message on failure: %+v", m)
			}
			want := c.want
			if want == nil && (errors.Is(err, msgcrypt.ErrPadding) || errors.Is(err, msgcrypt.ErrLength)) {
				want = msgcrypt.ErrPadding
				if errors.Is(err, msgcrypt.ErrLength) {
					want = msgcrypt.ErrLength
				}
			}
			checkErr(t, err, want)
		})
	}
}

func TestParseMessageContentLength(t *testing.T) {
	v := official(t)
	cfg := v.config(v.Push.Timestamp)
	cfg.MaxMessageBytes = 1000
	cb, _ := wecom.NewCallback(cfg)
	r := httptest.NewRequest(http.MethodPost, "/?"+v.pushQuery().Encode(), strings.NewReader(v.Push.Body))
	r.ContentLength = 1001
	m, err := cb.ParseMessage(r)
	if m != nil {
		t.Error("a message on failure")
	}
	checkErr(t, err, msgcrypt.ErrTooLarge)

	r = httptest.NewRequest(http.MethodPost, "/?"+v.pushQuery().Encode(), nil)
	r.Body = nil
	_, err = cb.ParseMessage(r)
	checkErr(t, err, msgcrypt.ErrXML)
}

func TestVerifyURLErrors(t *testing.T) {
	v := official(t)
	good := v.verifyQuery()
	with := func(k, val string) url.Values {
		q := url.Values{}
		for kk, vv := range good {
			q[kk] = append([]string(nil), vv...)
		}
		q.Set(k, val)
		return q
	}
	signedEcho := func(echo string) url.Values {
		q := with("echostr", echo)
		q.Set("msg_signature", msgcrypt.MsgSignature(v.Token, v.Verify.Timestamp, v.Verify.Nonce, echo))
		return q
	}
	cases := []struct {
		name  string
		cfg   func(*wecom.CallbackConfig)
		query url.Values
		want  error
	}{
		{name: "wrong signature", query: with("msg_signature", strings.Repeat("f", 40)), want: msgcrypt.ErrSignature},
		{name: "echostr changed", query: with("echostr", "A"+v.Verify.Echostr[1:]), want: msgcrypt.ErrSignature},
		{name: "plain signature param", query: url.Values{"signature": {v.Verify.MsgSignature}, "timestamp": {v.Verify.Timestamp}, "nonce": {v.Verify.Nonce}, "echostr": {v.Verify.Echostr}}, want: msgcrypt.ErrSignature},
		{name: "another CorpID", cfg: func(c *wecom.CallbackConfig) { c.CorpID = "ww0123456789abcdef" }, query: good, want: msgcrypt.ErrAppID},
		{name: "timestamp outside", cfg: func(c *wecom.CallbackConfig) {
			c.Now = func() time.Time { return at(v.Verify.Timestamp)().Add(time.Hour) }
		}, query: good, want: msgcrypt.ErrTimestamp},
		{name: "truncated base64", query: signedEcho(v.Verify.Echostr[:len(v.Verify.Echostr)-3]), want: msgcrypt.ErrBase64},
		{name: "plaintext echostr", query: signedEcho("5838479218127813673"), want: msgcrypt.ErrBase64},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := v.config(v.Verify.Timestamp)
			if c.cfg != nil {
				c.cfg(&cfg)
			}
			cb, err := wecom.NewCallback(cfg)
			if err != nil {
				t.Fatal(err)
			}
			echo, err := cb.VerifyURL(c.query)
			if echo != "" {
				t.Errorf("echo %q on failure", echo)
			}
			checkErr(t, err, c.want)
		})
	}
	t.Run("no echostr", func(t *testing.T) {
		q := v.verifyQuery()
		q.Del("echostr")
		echo, err := v.callback(t, v.Verify.Timestamp).VerifyURL(q)
		if echo != "" || !errors.Is(err, wecom.ErrNoEchostr) {
			t.Fatalf("VerifyURL = %q, %v", echo, err)
		}
	})
	t.Run("window disabled", func(t *testing.T) {
		cfg := v.config(v.Push.Timestamp)
		cfg.TimestampWindow = -1
		cfg.Now = time.Now
		cb, _ := wecom.NewCallback(cfg)
		if echo, err := cb.VerifyURL(good); err != nil || echo != v.Verify.EchoPlain {
			t.Fatalf("VerifyURL = %q, %v", echo, err)
		}
	})
}

func TestReplyRoundTrip(t *testing.T) {
	for _, v := range loadVectors(t) {
		t.Run(v.Name, func(t *testing.T) {
			cb := v.callback(t, v.Push.Timestamp)
			m, err := cb.ReadMessage(v.pushQuery(), strings.NewReader(v.Push.Body))
			if err != nil {
				t.Fatal(err)
			}
			out, err := m.Reply([]byte(v.ReplyPlain))
			if err != nil {
				t.Fatal(err)
			}
			env, err := msgcrypt.ParseEnvelope(out)
			if err != nil {
				t.Fatalf("reply %s: %v", out, err)
			}
			if env.TimeStamp != v.Push.Timestamp || len(env.Nonce) != 10 {
				t.Errorf("TimeStamp %q, Nonce %q", env.TimeStamp, env.Nonce)
			}
			if !msgcrypt.VerifyMsgSignature(v.Token, env.TimeStamp, env.Nonce, env.Encrypt, env.MsgSignature) {
				t.Error("reply MsgSignature does not verify")
			}
			c, _ := msgcrypt.New(v.Token, v.EncodingAESKey, v.CorpID)
			plain, err := c.Decrypt(env.Encrypt)
			if err != nil || string(plain) != v.ReplyPlain {
				t.Fatalf("reply decrypts to %q, %v", plain, err)
			}
			// WeCom's own way: its DecryptMessage on the reply's fields.
			q := url.Values{"msg_signature": {env.MsgSignature}, "timestamp": {env.TimeStamp}, "nonce": {env.Nonce}}
			back, err := cb.ReadMessage(q, bytes.NewReader(out))
			if err != nil || string(back.XML) != v.ReplyPlain {
				t.Fatalf("reply read back: %v", err)
			}

			for _, none := range []string{"", "success"} {
				if got, err := m.Reply([]byte(none)); err != nil || string(got) != none {
					t.Errorf("Reply(%q) = %q, %v", none, got, err)
				}
			}
		})
	}
	if _, err := new(wecom.Message).Reply([]byte("<xml/>")); err == nil || !strings.HasPrefix(err.Error(), "wechatconf: ") {
		t.Errorf("Reply on a zero Message: %v", err)
	}
}

func TestPreviousKeyAndReceiveID(t *testing.T) {
	v := official(t)
	const newKey = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
	cfg := v.config(v.Push.Timestamp)
	cfg.EncodingAESKey, cfg.PreviousEncodingAESKey = core.NewSecret(newKey), core.NewSecret(v.EncodingAESKey)
	cb, err := wecom.NewCallback(cfg)
	if err != nil {
		t.Fatal(err)
	}
	m, err := cb.ReadMessage(v.pushQuery(), strings.NewReader(v.Push.Body))
	if err != nil || !m.PreviousKey {
		t.Fatalf("ReadMessage with the previous key: %v, %+v", err, m)
	}
	out, _ := m.Reply([]byte(v.ReplyPlain))
	env, _ := msgcrypt.ParseEnvelope(out)
	old, _ := msgcrypt.New(v.Token, v.EncodingAESKey, v.CorpID)
	if plain, err := old.Decrypt(env.Encrypt); err != nil || string(plain) != v.ReplyPlain {
		t.Fatalf("the reply is not in the previous key: %v", err)
	}
	echo, err := cb.VerifyURL(v.verifyQuery())
	if err != nil || echo != v.Verify.EchoPlain {
		t.Fatalf("VerifyURL with the previous key = %q, %v", echo, err)
	}

	// A third-party app: the receive id is the suite id, not the CorpID.
	const suite = "tj1234567890abcdef"
	cfg = v.config(v.Push.Timestamp)
	cfg.ReceiveID = suite
	cb, err = wecom.NewCallback(cfg)
	if err != nil || cb.ReceiveID() != suite {
		t.Fatalf("NewCallback: %v, ReceiveID %q", err, cb.ReceiveID())
	}
	sc, _ := msgcrypt.New(v.Token, v.EncodingAESKey, suite)
	enc, _ := sc.Encrypt([]byte(v.Push.PushPlain))
	q, body := v.signed(enc)
	if m, err := cb.ReadMessage(q, strings.NewReader(body)); err != nil || m.AgentID != 218 {
		t.Fatalf("suite push: %v", err)
	}
	if cb := v.callback(t, v.Push.Timestamp); cb.ReceiveID() != v.CorpID {
		t.Errorf("default ReceiveID %q, want the CorpID", cb.ReceiveID())
	}
}

func TestNewCallbackErrors(t *testing.T) {
	v := official(t)
	cases := []struct {
		name string
		cfg  func(*wecom.CallbackConfig)
		is   error
	}{
		{"no token", func(c *wecom.CallbackConfig) { c.Token = core.Secret{} }, nil},
		{"no key", func(c *wecom.CallbackConfig) { c.EncodingAESKey = core.Secret{} }, nil},
		{"no CorpID", func(c *wecom.CallbackConfig) { c.CorpID = "" }, nil},
		{"short key", func(c *wecom.CallbackConfig) { c.EncodingAESKey = core.NewSecret(v.EncodingAESKey[:42]) }, msgcrypt.ErrKey},
		{"bad key", func(c *wecom.CallbackConfig) { c.EncodingAESKey = core.NewSecret(v.EncodingAESKey[:42] + "!") }, msgcrypt.ErrKey},
		{"bad previous key", func(c *wecom.CallbackConfig) { c.PreviousEncodingAESKey = core.NewSecret("x" + v.EncodingAESKey) }, msgcrypt.ErrKey},
		{"negative MaxMessageBytes", func(c *wecom.CallbackConfig) { c.MaxMessageBytes = -1 }, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := v.config(v.Push.Timestamp)
			c.cfg(&cfg)
			cb, err := wecom.NewCallback(cfg)
			if cb != nil || err == nil {
				t.Fatalf("NewCallback = %v, %v", cb, err)
			}
			if c.is != nil && !errors.Is(err, c.is) {
				t.Errorf("%v does not wrap %v", err, c.is)
			}
			var ce *wecom.CallbackError
			if !errors.As(err, &ce) || strings.Count(err.Error(), "wechatconf") != 1 {
				t.Errorf("error %q: want one *CallbackError with one prefix", err)
			}
			noSecret(t, err.Error(), v.Token, v.EncodingAESKey)
		})
	}
	// ReceiveID alone suffices; the same previous key as the current one is ignored.
	cfg := v.config(v.Verify.Timestamp)
	cfg.CorpID, cfg.ReceiveID, cfg.PreviousEncodingAESKey = "", v.CorpID, core.NewSecret(v.EncodingAESKey)
	cb, err := wecom.NewCallback(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if echo, err := cb.VerifyURL(v.verifyQuery()); err != nil || echo != v.Verify.EchoPlain {
		t.Fatalf("VerifyURL = %q, %v", echo, err)
	}
}

// noSecret fails if out contains any run of 6 characters of a secret (the
// whole secret if it is shorter).
func noSecret(t *testing.T, out string, secrets ...string) {
	t.Helper()
	for _, s := range secrets {
		if len(s) < 6 {
			if strings.Contains(out, s) {
				t.Errorf("%q contains the secret %q", out, s)
			}
			continue
		}
		for i := 0; i+6 <= len(s); i++ {
			if strings.Contains(out, s[i:i+6]) {
				t.Errorf("%q contains %q, a run of a secret", out, s[i:i+6])
				break
			}
		}
	}
}

func TestCallbackConfigRedaction(t *testing.T) {
	v := official(t)
	cfg := v.config(v.Push.Timestamp)
	cfg.PreviousEncodingAESKey = core.NewSecret("abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG")
	secrets := []string{cfg.Token.Reveal(), cfg.EncodingAESKey.Reveal(), cfg.PreviousEncodingAESKey.Reveal()}

	type holder struct {
		Callback wecom.CallbackConfig
		Ptr      *wecom.CallbackConfig
	}
	// A CallbackConfig in an unexported field, where fmt cannot call any
	// method of the CallbackConfig and prints it by reflection.
	type hidden struct {
		cfg  wecom.CallbackConfig
		ptr  *wecom.CallbackConfig
		name string
	}
	var outs []string
	for _, val := range []any{cfg, &cfg, holder{cfg, &cfg}, []wecom.CallbackConfig{cfg}, map[string]wecom.CallbackConfig{"k": cfg}, hidden{cfg, &cfg, "x"}, &hidden{cfg, &cfg, "x"}} {
		for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%10.3v", "%T %d"} {
			outs = append(outs, fmt.Sprintf(verb, val))
		}
		outs = append(outs, fmt.Sprint(val), fmt.Sprintln(val))
		b, err := json.Marshal(val)
		if err != nil {
			t.Fatalf("json.Marshal(%T): %v", val, err)
		}
		outs = append(outs, string(b))
		var buf bytes.Buffer
		slog.New(slog.NewJSONHandler(&buf, nil)).Info("cfg", "cfg", val, slog.Any("any", val))
		slog.New(slog.NewTextHandler(&buf, nil)).Info("cfg", "cfg", val)
		outs = append(outs, buf.String())
	}
	if s := fmt.Sprintf("%+v", hidden{cfg, &cfg, "x"}); !strings.Contains(s, v.CorpID) {
		t.Errorf("%%+v of a struct holding the config = %s: want the CorpID", s)
	}

	cb, err := wecom.NewCallback(cfg)
	if err != nil {
		t.Fatal(err)
	}
	m, err := v.callback(t, v.Push.Timestamp).ReadMessage(v.pushQuery(), strings.NewReader(v.Push.Body))
	if err != nil {
		t.Fatal(err)
	}
	for _, val := range []any{cb, *cb, m, *m} {
		for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%d", "%x", "%q"} {
			outs = append(outs, fmt.Sprintf(verb, val))
		}
	}
	for _, out := range outs {
		noSecret(t, out, secrets...)
	}
	if s := fmt.Sprintf("%+v", cfg); !strings.Contains(s, "REDACTED") || !strings.Contains(s, v.CorpID) {
		t.Errorf("%%+v = %s: want REDACTED secrets and the CorpID", s)
	}
	if s := fmt.Sprint(wecom.CallbackConfig{CorpID: "x"}); strings.Contains(s, "REDACTED") {
		t.Errorf("unset secrets render as REDACTED: %s", s)
	}
	var back map[string]any
	b, _ := json.Marshal(cfg)
	if err := json.Unmarshal(b, &back); err != nil || back["Token"] != "REDACTED" || back["CorpID"] != v.CorpID {
		t.Errorf("JSON %s", b)
	}
	// A CallbackConfig reads its secrets from JSON strings.
	var read wecom.CallbackConfig
	if err := json.Unmarshal([]byte(`{"Token":"`+v.Token+`","EncodingAESKey":"`+v.EncodingAESKey+`","CorpID":"`+v.CorpID+`"}`), &read); err != nil {
		t.Fatal(err)
	}
	if read.Token.Reveal() != v.Token || read.EncodingAESKey.Reveal() != v.EncodingAESKey || !read.PreviousEncodingAESKey.IsZero() || read.CorpID != v.CorpID {
		t.Errorf("CallbackConfig read from JSON: %+v", read)
	}
}

func TestConcurrent(t *testing.T) {
	v := official(t)
	cb := v.callback(t, v.Push.Timestamp)
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 20; j++ {
				m, err := cb.ReadMessage(v.pushQuery(), strings.NewReader(v.Push.Body))
				if err != nil {
					t.Error(err)
					return
				}
				if _, err := m.Reply([]byte(v.ReplyPlain)); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
}

// FuzzReadMessage checks that ReadMessage never panics, never returns a
// message together with an error, and that every error carries one
// "wechatconf: " prefix. Each input is read twice: as it comes (the
// signature almost never matches) and, if the body has an <Encrypt>, with
// the query re-signed for it, so that decryption and the decrypted XML
// are fuzzed too.
func FuzzReadMessage(f *testing.F) {
	v := official(f)
	right, _ := msgcrypt.New(v.Token, v.EncodingAESKey, v.CorpID)
	f.Add(v.pushQuery().Encode(), []byte(v.Push.Body))
	f.Add("msg_signature=x&timestamp=1&nonce=2", []byte("<xml><Encrypt>AAAA</Encrypt></xml>"))
	for _, plain := range []string{"<xml><AgentID>x</AgentID></xml>", "<xml>", "", "<xml><CreateTime>99999999999999999999</CreateTime></xml>"} {
		enc, _ := right.Encrypt([]byte(plain))
		q, body := v.signed(enc)
		f.Add(q.Encode(), []byte(body))
	}
	cfg := v.config(v.Push.Timestamp)
	cfg.MaxMessageBytes = 1 << 16
	cb, err := wecom.NewCallback(cfg)
	if err != nil {
		f.Fatal(err)
	}
	check := func(t *testing.T, q url.Values, body []byte) *wecom.Message {
		m, err := cb.ReadMessage(q, bytes.NewReader(body))
		switch {
		case err != nil && m != nil:
			t.Fatalf("message %+v with error %v", m, err)
		case err == nil && m == nil:
			t.Fatal("no message and no error")
		case err != nil && strings.Count(err.Error(), "wechatconf: ") != 1:
			t.Fatalf("error %q", err)
		}
		return m
	}
	f.Fuzz(func(t *testing.T, rawQuery string, body []byte) {
		q, _ := url.ParseQuery(rawQuery)
		if m := check(t, q, body); m != nil {
			if _, err := m.Reply([]byte("<xml/>")); err != nil {
				t.Fatal(err)
			}
		}
		env, err := msgcrypt.ParseEnvelope(body)
		if err != nil {
			return
		}
		q = v.pushQuery()
		q.Set("msg_signature", msgcrypt.MsgSignature(v.Token, v.Push.Timestamp, v.Push.Nonce, env.Encrypt))
		if m := check(t, q, body); m != nil && len(m.XML) == 0 {
			t.Fatal("an empty message")
		}
	})
}
