package core

import (
	"context"
	"net/http"
	"net/url"
)

// MessageHandlerFunc handles one push: it returns the plaintext reply
// (XML, or JSON for a push in the JSON data format), or nil or
// "success" for none. It runs once per push across the fleet when the
// Conf has a Dedup; its ctx then ends when its claim on the push is lost
// (context.Cause is ErrClaimLost). A handler that needs longer than
// WeChat's 5 s answers nil and replies later through the
// customer-service API (客服消息): WeChat has stopped listening by then.
type MessageHandlerFunc func(ctx context.Context, m *Message) (reply []byte, err error)

// HandleMessage runs h for the push m (from ReadMessage or ParseMessage),
// once across the fleet when Config.Dedup is set (Dedup.Do, by PushKey of
// m), and returns the body to answer WeChat with — m.Reply of h's reply,
// or "success" for a duplicate — and the outcome, whose HTTPStatus is the
// status to answer with. Without Config.Dedup, h runs for every delivery
// and the outcome is PushHandled or PushFailed. The error is h's, or as
// Dedup.Do documents; the body is nil whenever the status is not 200.
//
// A reply h returned that cannot be encoded (Message.Reply's error: a
// reply that is not JSON for a push in the JSON data format) does not
// undo the push: h finished, so the push is recorded as handled and a
// retry does not run h again. HandleMessage then returns no body, the
// outcome of h's run (PushHandled or PushUnguarded) and Reply's error,
// which ServePush answers 400.
func (c *Conf) HandleMessage(ctx context.Context, m *Message, h MessageHandlerFunc) (body []byte, outcome PushOutcome, err error) {
	return HandleReply(ctx, c.cfg.Dedup, m.PushKey(), func(ctx context.Context) ([]byte, error) { return h(ctx, m) }, m.Reply)
}

// HandleReply is HandlePush followed by encode, which turns the plaintext
// reply of a handle that succeeded into the body to answer with (a
// Message's Reply): the push is handled once handle returns nil, whether
// or not its reply can be encoded. When encode fails, HandleReply returns
// no body, handle's outcome (PushHandled or PushUnguarded) and encode's
// error. A duplicate's "success" is not encoded.
func HandleReply(ctx context.Context, d *Dedup, key string, handle func(ctx context.Context) ([]byte, error), encode func(plaintext []byte) ([]byte, error)) ([]byte, PushOutcome, error) {
	body, outcome, err := HandlePush(ctx, d, key, handle)
	if err != nil || (outcome != PushHandled && outcome != PushUnguarded) {
		return body, outcome, err
	}
	out, err := encode(body)
	if err != nil {
		return nil, outcome, err
	}
	return out, outcome, nil
}

// PushKey returns the key m is de-duplicated by: core.PushKey of its
// ToUserName, MsgId, FromUserName, CreateTime, Event and plaintext.
func (m *Message) PushKey() string {
	return PushKey(m.ToUserName, m.MsgID, m.FromUserName, m.CreateTime, m.Event, m.XML)
}

// MessageHandler returns the http.Handler of the server URL: a GET is
// the URL verification (VerifyURL), a POST a push (ParseMessage, then
// HandleMessage with h, answered with the outcome's HTTPStatus and
// body). A push that does not verify is answered 400, and logged
// nowhere: WeChat never sends one. h's context is not ended by WeChat
// hanging up after 5 s, so that the handler finishes (see
// MessageHandlerFunc).
func (c *Conf) MessageHandler(h MessageHandlerFunc) http.Handler {
	return PushHTTPHandler(c.VerifyURL, c.ParseMessage, func(ctx context.Context, m *Message) ([]byte, PushOutcome, error) {
		return c.HandleMessage(ctx, m, h)
	})
}

// PushHTTPHandler is the http.Handler every platform's message URL
// shares (Conf.MessageHandler, wecom's Callback.Handler, openplatform's
// Component.MessageHandler): a GET answers verify's echo (400 when it
// fails; a nil verify allows POST only), a POST is read by parse (400,
// "bad push", when it does not verify) and answered by handle with
// ServePush, under a context WeChat's hang-up after 5 s does not end;
// any other method is 405 with its Allow header.
func PushHTTPHandler[M any](verify func(url.Values) (string, error), parse func(*http.Request) (M, error),
	handle func(context.Context, M) ([]byte, PushOutcome, error)) http.Handler {
	allow := "GET, POST"
	if verify == nil {
		allow = "POST"
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Method == http.MethodGet && verify != nil:
			echo, err := verify(r.URL.Query())
			ServePush(w, []byte(echo), PushHandled, err)
		case r.Method == http.MethodPost:
			m, err := parse(r)
			if err != nil {
				http.Error(w, "bad push", http.StatusBadRequest)
				return
			}
			body, outcome, err := handle(context.WithoutCancel(r.Context()), m)
			ServePush(w, body, outcome, err)
		default:
			w.Header().Set("Allow", allow)
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		}
	})
}

// HandlePush is the step every platform's HandleMessage shares: it runs
// handle for the push key names, through d when d is set (Dedup.Do) or
// directly otherwise, and returns the body to answer with: handle's, or
// "success" for PushDuplicate; nil for every outcome whose HTTPStatus is
// not 200.
func HandlePush(ctx context.Context, d *Dedup, key string, handle func(ctx context.Context) ([]byte, error)) ([]byte, PushOutcome, error) {
	var body []byte
	run := func(ctx context.Context) error {
		b, err := handle(ctx)
		body = b
		return err
	}
	if d == nil {
		if err := run(ctx); err != nil {
			return nil, PushFailed, err
		}
		return body, PushHandled, nil
	}
	outcome, err := d.Do(ctx, key, run)
	switch outcome {
	case PushHandled, PushUnguarded:
		return body, outcome, nil
	case PushDuplicate:
		return []byte("success"), outcome, nil
	}
	return nil, outcome, err
}

// ServePush writes the answer to a push: status outcome.HTTPStatus() and
// body when err is nil or the status is 200; otherwise a bare status,
// whose text never holds err's (which may quote the push). A GET's URL
// verification that failed (err with PushHandled) is answered 400.
func ServePush(w http.ResponseWriter, body []byte, outcome PushOutcome, err error) {
	status := outcome.HTTPStatus()
	if err != nil && status == http.StatusOK {
		status = http.StatusBadRequest
	}
	if status != http.StatusOK {
		http.Error(w, http.StatusText(status), status)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = w.Write(body)
}
