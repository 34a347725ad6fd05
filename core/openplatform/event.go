package openplatform

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	"github.com/wechatconf/wechatconf/core"
	"github.com/wechatconf/wechatconf/core/internal/tenant"
	"github.com/wechatconf/wechatconf/core/msgcrypt"
)

// The InfoType of the pushes to the authorization event URL (授权事件接收).
const (
	InfoVerifyTicket     = "component_verify_ticket" // every ~10 minutes: a new ticket
	InfoAuthorized       = "authorized"              // a merchant authorized the component
	InfoUpdateAuthorized = "updateauthorized"        // a merchant changed the permissions granted
	InfoUnauthorized     = "unauthorized"            // a merchant withdrew the authorization
)

// Event is one push to the authorization event URL, decrypted and
// applied. Credentials in it (the ticket, the authorization code) are
// core.Secret values, which no rendering shows.
type Event struct {
	InfoType   string    // one of the Info* constants, or another WeChat adds
	AppID      string    // the component_appid it is for
	CreateTime time.Time // when WeChat made it
	// VerifyTicket is the component_verify_ticket of an InfoVerifyTicket
	// push.
	VerifyTicket core.Secret
	// AuthorizerAppID is the merchant account of an authorization event.
	AuthorizerAppID string
	// AuthorizationCode (authorized, updateauthorized) is exchanged by
	// HandleEvent at once; AuthorizationCodeExpiredTime is when it expires.
	AuthorizationCode            core.Secret
	AuthorizationCodeExpiredTime time.Time
	// Applied says what HandleEvent did: "stored" or "older ticket
	// ignored" for a verify ticket; AppliedAuthorized,
	// AppliedUnauthorized, AppliedAlready or AppliedOlderIgnored for an
	// authorization event; "" for an InfoType it does not know.
	Applied string
}

// eventXML is the plaintext of a push.
type eventXML struct {
	AppID                        string `xml:"AppId"`
	CreateTime                   int64  `xml:"CreateTime"`
	InfoType                     string `xml:"InfoType"`
	ComponentVerifyTicket        string `xml:"ComponentVerifyTicket"`
	AuthorizerAppid              string `xml:"AuthorizerAppid"`
	AuthorizationCode            string `xml:"AuthorizationCode"`
	AuthorizationCodeExpiredTime int64  `xml:"AuthorizationCodeExpiredTime"`
}

// envelopeXML is the encrypted push: <xml><AppId/><Encrypt/></xml>.
type envelopeXML struct {
	AppID   string `xml:"AppId"`
	Encrypt string `xml:"Encrypt"`
}

// ParseEvent is HandleEvent for an HTTP request to the authorization event
// URL, with the request's context; its body is read up to 1 MiB. Answer
// the request with "success" once it returns nil (WeChat pushes again
// otherwise).
func (c *Component) ParseEvent(r *http.Request) (*Event, error) {
	body, err := msgcrypt.RequestBody(r, msgcrypt.DefaultMaxMessageBytes)
	if err != nil {
		return nil, wrap("authorization event", err)
	}
	return c.HandleEvent(r.Context(), r.URL.Query(), body)
}

// HandleEvent verifies and decrypts a push to the authorization event URL
// (msg_signature over the component's Token, the component's
// EncodingAESKey, the component_appid as receive id, the timestamp within
// 5 minutes) and applies it:
//
//   - component_verify_ticket: stored, newest wins (SetVerifyTicket);
//   - authorized, updateauthorized: the authorization code is exchanged
//     (as Authorize does), so the authorizer's tokens and refresh token are
//     stored at once, in one durable record, replacing any earlier
//     authorization's;
//   - unauthorized: the authorizer's record becomes a withdrawal
//     (Unauthorize).
//
// Authorization events are ordered per authorizer by their CreateTime, as
// verify tickets are: an event older than the authorization or
// withdrawal the store holds (in the same second, an authorization wins) (a push delayed, re-sent, or delivered to two
// instances at once) is acknowledged and ignored (Applied
// AppliedOlderIgnored), and the second delivery of one authorization —
// the redirect (Authorize) and the authorized push carry the same code,
// and WeChat re-sends a push not answered "success" — changes nothing
// (AppliedAlready). Either is success: answer "success".
//
// Errors wrap the msgcrypt sentinels for a push that does not verify, and
// the store's or WeChat's error for one that could not be applied (WeChat
// pushes again when the URL does not answer "success").
func (c *Component) HandleEvent(ctx context.Context, query url.Values, body io.Reader) (*Event, error) {
	e, err := c.readEvent(query, body)
	if err != nil {
		return nil, wrap("authorization event", err)
	}
	switch e.InfoType {
	case InfoVerifyTicket:
		stored, err := c.SetVerifyTicket(ctx, e.VerifyTicket.Reveal(), e.CreateTime)
		if err != nil {
			return e, wrap("authorization event: storing the component_verify_ticket", err)
		}
		e.Applied = map[bool]string{true: "stored", false: "older ticket ignored"}[stored]
	case InfoAuthorized, InfoUpdateAuthorized:
		if e.AuthorizerAppID == "" {
			return e, wrap("authorization event "+e.InfoType, errors.New("the push names no AuthorizerAppid"))
		}
		_, applied, err := c.t.Authorize(ctx, tenant.Delivery{Code: e.AuthorizationCode.Reveal(), Tenant: e.AuthorizerAppID,
			At: e.CreateTime, FromWeChat: true, CodeExpires: e.AuthorizationCodeExpiredTime})
		if err != nil {
			return e, wrap("authorization event "+e.InfoType+" of "+e.AuthorizerAppID, err)
		}
		e.Applied = applied
	case InfoUnauthorized:
		applied, err := c.t.Withdraw(ctx, e.AuthorizerAppID, e.CreateTime, false)
		if err != nil {
			return e, wrap("authorization event unauthorized of "+e.AuthorizerAppID, err)
		}
		e.Applied = applied
	}
	return e, nil
}

// readEvent verifies and decrypts a push.
func (c *Component) readEvent(query url.Values, body io.Reader) (*Event, error) {
	if c.keyring.Current == nil {
		return nil, errors.New("openplatform.Config.Token and EncodingAESKey are required to receive authorization events")
	}
	raw, err := msgcrypt.ReadLimited(body, msgcrypt.DefaultMaxMessageBytes)
	if err != nil {
		return nil, err
	}
	var env envelopeXML
	if err := msgcrypt.DecodeXML(raw, &env); err != nil {
		return nil, err
	}
	if env.Encrypt == "" {
		return nil, fmt.Errorf("%w: no <Encrypt> in the push", msgcrypt.ErrNoEncrypt)
	}
	k := c.keyring
	k.Window = msgcrypt.DefaultTimestampWindow
	plain, _, _, err := k.Open(query.Get("msg_signature"), query.Get("timestamp"), query.Get("nonce"), env.Encrypt)
	if err != nil {
		return nil, err
	}
	var x eventXML
	if err := msgcrypt.DecodeXML(plain, &x); err != nil {
		return nil, fmt.Errorf("decrypted push: %w", err)
	}
	e := &Event{
		InfoType: x.InfoType, AppID: x.AppID, CreateTime: time.Unix(x.CreateTime, 0),
		VerifyTicket: core.NewSecret(x.ComponentVerifyTicket), AuthorizerAppID: x.AuthorizerAppid,
		AuthorizationCode: core.NewSecret(x.AuthorizationCode),
	}
	if x.AuthorizationCodeExpiredTime > 0 {
		e.AuthorizationCodeExpiredTime = time.Unix(x.AuthorizationCodeExpiredTime, 0)
	}
	if e.AppID != "" && e.AppID != c.cfg.AppID {
		return nil, fmt.Errorf("%w: the push is for component %q", msgcrypt.ErrAppID, e.AppID)
	}
	if e.InfoType == InfoVerifyTicket && e.VerifyTicket.IsZero() {
		return nil, errors.New("a component_verify_ticket push without a ComponentVerifyTicket")
	}
	return e, nil
}

// SetVerifyTicket stores a component_verify_ticket that WeChat pushed at
// createTime (the push's CreateTime), valid for VerifyTicketLifetime from
// then: the newest wins. A ticket older than the stored one (a push
// delayed or replayed, arriving after a newer one) is not stored, and
// stored reports false. The write is a compare-and-set through the key's
// lock in Config.DurableStore, so concurrent pushes to several instances
// leave the newest. A store error is retried within Policy.RefreshTimeout,
// then the ticket is held and written in the background (Component.Held)
// and the error returned.
func (c *Component) SetVerifyTicket(ctx context.Context, ticket string, createTime time.Time) (stored bool, err error) {
	if stored, err = c.t.SetTicket(ctx, ticket, createTime); err != nil {
		return false, wrap("SetVerifyTicket", err)
	}
	return stored, nil
}

// VerifyTicket returns the stored component_verify_ticket and its expiry
// (the push's CreateTime + VerifyTicketLifetime); ErrNoVerifyTicket when
// there is none or it has expired.
func (c *Component) VerifyTicket(ctx context.Context) (core.Token, error) {
	t, err := c.t.Ticket(ctx)
	if err != nil {
		return core.Token{}, wrap("VerifyTicket", err)
	}
	return t, nil
}

// ReadMessage reads a message or event pushed to the component's message
// URL ($APPID$ in it names the authorizer) for one of its authorizers: it
// is encrypted with the component's Token and EncodingAESKey and names the
// component_appid as receive id, so it is read here, not by the
// authorizer's Conf; the Message and its Reply are core's.
func (c *Component) ReadMessage(query url.Values, body io.Reader) (*core.Message, error) {
	if c.msgs == nil {
		return nil, wrap("ReadMessage", errors.New("openplatform.Config.Token and EncodingAESKey are required to receive messages"))
	}
	return c.msgs.ReadMessage(query, body)
}

// HandleMessage runs h for an authorizer's push m (from ReadMessage), once
// across the fleet when Config.Dedup is set: core.Conf.HandleMessage,
// keyed by the authorizer's account (m.ToUserName, its original ID) and
// the push's MsgId or event key (core.PushKey).
func (c *Component) HandleMessage(ctx context.Context, m *core.Message, h core.MessageHandlerFunc) ([]byte, core.PushOutcome, error) {
	if c.msgs == nil {
		return nil, core.PushFailed, wrap("HandleMessage", errors.New("openplatform.Config.Token and EncodingAESKey are required to receive messages"))
	}
	return c.msgs.HandleMessage(ctx, m, h)
}

// MessageHandler returns the http.Handler of the message URL
// (消息与事件接收URL, with $APPID$ in its path): each POST is read with
// ReadMessage and handled with HandleMessage, answered with the outcome's
// HTTPStatus and body (400 for a push that does not verify). h's context
// is not ended by WeChat hanging up after 5 s.
func (c *Component) MessageHandler(h core.MessageHandlerFunc) http.Handler {
	parse := func(r *http.Request) (*core.Message, error) {
		body, err := msgcrypt.RequestBody(r, msgcrypt.DefaultMaxMessageBytes)
		if err != nil {
			return nil, err
		}
		return c.ReadMessage(r.URL.Query(), body)
	}
	return core.PushHTTPHandler(nil, parse, func(ctx context.Context, m *core.Message) ([]byte, core.PushOutcome, error) {
		return c.HandleMessage(ctx, m, h)
	})
}

// wrap returns "wechatconf: openplatform: <op>: <err>", one prefix per
// chain.
func wrap(op string, err error) error { return &opError{op: op, err: err} }

type opError struct {
	op  string
	err error
}

func (e *opError) Error() string {
	msg := e.err.Error()
	for _, p := range []string{"wechatconf: openplatform: ", "wechatconf: "} {
		if len(msg) >= len(p) && msg[:len(p)] == p {
			msg = msg[len(p):]
			break
		}
	}
	return "wechatconf: openplatform: " + e.op + ": " + msg
}

func (e *opError) Unwrap() error { return e.err }
