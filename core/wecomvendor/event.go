package wecomvendor

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
	"github.com/wechatconf/wechatconf/core/wecom"
)

// The InfoType of the pushes to the command callback URL (指令回调URL,
// path/90613).
const (
	InfoSuiteTicket        = "suite_ticket"         // every 10 minutes: a new ticket
	InfoCreateAuth         = "create_auth"          // a corp installed the app (AuthCode, no corp id)
	InfoChangeAuth         = "change_auth"          // a corp changed what it granted (AuthCorpId)
	InfoCancelAuth         = "cancel_auth"          // a corp cancelled (AuthCorpId)
	InfoResetPermanentCode = "reset_permanent_code" // a custom-developed app's secret was reset (AuthCode)
)

// What HandleEvent did with a push (Event.Applied), besides "stored" and
// "older ticket ignored" for suite tickets: the tenant mechanism's, as
// package openplatform's.
const (
	AppliedAuthorized   = tenant.AppliedAuthorized   // the auth code was exchanged and the corp's record written
	AppliedUnauthorized = tenant.AppliedUnauthorized // the cancellation was written
	AppliedAlready      = tenant.AppliedAlready      // this very install (code) or cancellation (time) is what the store holds
	AppliedOlderIgnored = tenant.AppliedOlderIgnored // the store holds a newer event of the corp
	// AppliedCodeSpent: WeCom refused the AuthCode of a create_auth or
	// reset_permanent_code as used (40078) and the code index no longer
	// says which corp it named (its write failed): a re-sent push of a
	// code already exchanged — its record written, or held and written
	// in the background —, acknowledged without a corp (Event.CorpID
	// empty) so that WeCom stops re-sending it.
	AppliedCodeSpent = tenant.AppliedCodeSpent
	// AppliedNoted: acknowledged, nothing stored (change_auth: what the
	// corp granted is read with get_auth_info, not kept here).
	AppliedNoted = "noted"
)

// Event is one push to the command callback URL, decrypted and applied.
// Credentials in it (the ticket, the auth code) are core.Secret values,
// which no rendering shows.
type Event struct {
	InfoType string    // one of the Info* constants, or another WeCom adds
	SuiteID  string    // the suite it is for
	Time     time.Time // its TimeStamp: when WeCom made it
	// SuiteTicket is the ticket of an InfoSuiteTicket push.
	SuiteTicket core.Secret
	// AuthCode (create_auth, reset_permanent_code) is exchanged by
	// HandleEvent at once (it is single-use and lives 10 minutes).
	AuthCode core.Secret
	// CorpID is the corp of change_auth and cancel_auth (AuthCorpId), and
	// of an install once its code is exchanged.
	CorpID string
	// State is the state parameter of the install link, if any.
	State string
	// XML is the decrypted push, for the InfoTypes this package does not
	// apply (change_contact, license events …); nil for those it applies
	// (the Info* constants), whose plaintext holds the ticket or the auth
	// code in clear.
	XML []byte
	// Applied says what HandleEvent did: "stored" or "older ticket
	// ignored" for a ticket; an Applied* constant for an authorization
	// event; "" for an InfoType it does not know.
	Applied string
}

// eventXML is the plaintext of a command callback push.
type eventXML struct {
	SuiteID     string `xml:"SuiteId"`
	InfoType    string `xml:"InfoType"`
	TimeStamp   int64  `xml:"TimeStamp"`
	SuiteTicket string `xml:"SuiteTicket"`
	AuthCode    string `xml:"AuthCode"`
	AuthCorpID  string `xml:"AuthCorpId"`
	State       string `xml:"State"`
}

// ParseEvent is HandleEvent for an HTTP request to the command callback
// URL, with the request's context; its body is read up to 1 MiB.
func (s *Suite) ParseEvent(r *http.Request) (*Event, error) {
	body, err := msgcrypt.RequestBody(r, msgcrypt.DefaultMaxMessageBytes)
	if err != nil {
		return nil, wrap("command callback", err)
	}
	return s.HandleEvent(r.Context(), r.URL.Query(), body)
}

// HandleEvent verifies and decrypts a push to the command callback URL
// (msg_signature over Config.Token, Config.EncodingAESKey, the suite id
// as receive id, the timestamp within 5 minutes; a push for another suite
// is refused) and applies it:
//
//   - suite_ticket: stored, newest (by TimeStamp) wins (SetSuiteTicket);
//   - create_auth, reset_permanent_code: the AuthCode is exchanged
//     (PathPermanentCode) and the corp's permanent_code written in one
//     durable record, replacing an earlier install's, ordered by the
//     push's TimeStamp; a second delivery changes nothing;
//   - cancel_auth: the corp's record becomes a cancellation, unless the
//     store holds a newer install;
//   - change_auth: acknowledged (AppliedNoted).
//
// An older event than the state the store holds — delayed, re-sent,
// delivered to two instances at once — is acknowledged and ignored. When
// it returns nil, answer "success" (EventHandler does); when the store
// failed, the error wraps the store's and the write is held in memory and
// retried (Suite.Held): answer an error, so that WeCom's own retry (or
// the next ticket) brings it again.
func (s *Suite) HandleEvent(ctx context.Context, query url.Values, body io.Reader) (*Event, error) {
	e, err := s.readEvent(query, body)
	if err != nil {
		return nil, wrap("command callback", err)
	}
	switch e.InfoType {
	case InfoSuiteTicket:
		stored, err := s.t.SetTicket(ctx, e.SuiteTicket.Reveal(), e.Time)
		if err != nil {
			return e, wrap("command callback: storing the suite_ticket", err)
		}
		e.Applied = map[bool]string{true: "stored", false: "older ticket ignored"}[stored]
	case InfoCreateAuth, InfoResetPermanentCode:
		c, applied, err := s.t.Authorize(ctx, tenant.Delivery{Code: e.AuthCode.Reveal(), At: e.Time, FromWeChat: true,
			CodeExpires: e.Time.Add(10 * time.Minute)})
		if err != nil {
			return e, wrap("command callback "+e.InfoType, err)
		}
		e.Applied = applied
		if c != nil { // nil: AppliedCodeSpent
			e.CorpID = c.CorpID()
		}
	case InfoCancelAuth:
		applied, err := s.t.Withdraw(ctx, e.CorpID, e.Time, false)
		if err != nil {
			return e, wrap("command callback cancel_auth of "+e.CorpID, err)
		}
		e.Applied = applied
	case InfoChangeAuth:
		e.Applied = AppliedNoted
	}
	return e, nil
}

// readEvent verifies and decrypts a push.
func (s *Suite) readEvent(query url.Values, body io.Reader) (*Event, error) {
	if s.command == nil {
		return nil, errors.New("wecomvendor.Config.Token and EncodingAESKey are required to receive the command callback")
	}
	m, err := s.command.ReadMessage(query, body)
	if err != nil {
		return nil, err
	}
	var x eventXML
	if err := msgcrypt.DecodeXML(m.XML, &x); err != nil {
		return nil, fmt.Errorf("decrypted push: %w", err)
	}
	e := &Event{
		InfoType: x.InfoType, SuiteID: x.SuiteID, Time: time.Unix(x.TimeStamp, 0),
		SuiteTicket: core.NewSecret(x.SuiteTicket), AuthCode: core.NewSecret(x.AuthCode), CorpID: x.AuthCorpID, State: x.State, XML: m.XML,
	}
	switch e.InfoType {
	case InfoSuiteTicket, InfoCreateAuth, InfoResetPermanentCode, InfoCancelAuth, InfoChangeAuth:
		// Applied here, and the plaintext holds the ticket or the auth
		// code in clear: it is not kept where a rendering of the Event
		// would show it.
		e.XML = nil
	}
	switch {
	case e.SuiteID != "" && e.SuiteID != s.cfg.SuiteID:
		// Another suite's push (two suites behind one URL): its ticket
		// must not replace this suite's.
		return nil, fmt.Errorf("%w: the push is for suite %q", msgcrypt.ErrAppID, e.SuiteID)
	case e.InfoType == InfoSuiteTicket && e.SuiteTicket.IsZero():
		return nil, errors.New("a suite_ticket push without a SuiteTicket")
	case (e.InfoType == InfoCreateAuth || e.InfoType == InfoResetPermanentCode) && e.AuthCode.IsZero():
		return nil, fmt.Errorf("a %s push without an AuthCode", e.InfoType)
	case (e.InfoType == InfoCancelAuth || e.InfoType == InfoChangeAuth) && e.CorpID == "":
		return nil, fmt.Errorf("a %s push without an AuthCorpId", e.InfoType)
	case x.TimeStamp <= 0 && e.InfoType != "":
		return nil, fmt.Errorf("a %s push without a TimeStamp", e.InfoType)
	}
	return e, nil
}

// SetSuiteTicket stores a suite_ticket that WeCom pushed at at (the
// push's TimeStamp), valid for SuiteTicketLifetime from then: the newest
// wins, an older one is not stored (stored false). A store error is
// retried within Policy.RefreshTimeout, then the ticket is held and written
// in the background (Held) and the error returned.
func (s *Suite) SetSuiteTicket(ctx context.Context, ticket string, at time.Time) (stored bool, err error) {
	if stored, err = s.t.SetTicket(ctx, ticket, at); err != nil {
		return false, wrap("SetSuiteTicket", err)
	}
	return stored, nil
}

// SuiteTicket returns the stored suite_ticket and its expiry (its push's
// TimeStamp + SuiteTicketLifetime); ErrNoSuiteTicket when there is none or
// it has expired.
func (s *Suite) SuiteTicket(ctx context.Context) (core.Token, error) {
	t, err := s.t.Ticket(ctx)
	if err != nil {
		return core.Token{}, wrap("SuiteTicket", err)
	}
	return t, nil
}

// VerifyURL answers WeCom's verification of the command callback URL (a
// GET with msg_signature, timestamp, nonce and an encrypted echostr): the
// echostr decrypted, to be written back as the body. It is accepted
// encrypted for the suite id or for Config.ProviderCorpID (WeCom's docs
// do not say which; SDKs see both). Errors are wecom.Callback.VerifyURL's.
func (s *Suite) VerifyURL(query url.Values) (string, error) {
	if s.command == nil {
		return "", wrap("VerifyURL", errors.New("wecomvendor.Config.Token and EncodingAESKey are required to receive the command callback"))
	}
	echo, err := s.command.VerifyURL(query)
	if err != nil && s.provider != nil && errors.Is(err, msgcrypt.ErrAppID) {
		echo, err = s.provider.VerifyURL(query)
	}
	return echo, err
}

// EventHandler returns the http.Handler of the command callback URL: a GET
// is the URL verification (VerifyURL), a POST a push (ParseEvent), answered
// "success" once applied, 400 when it does not verify, 500 when the store
// failed (the write is held and retried: Held).
func (s *Suite) EventHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.Method {
		case http.MethodGet:
			echo, err := s.VerifyURL(r.URL.Query())
			if err != nil {
				http.Error(w, "bad verification", http.StatusBadRequest)
				return
			}
			io.WriteString(w, echo)
		case http.MethodPost:
			if _, err := s.ParseEvent(r); err != nil {
				var ce *wecom.CallbackError
				if errors.As(err, &ce) {
					http.Error(w, "bad push", http.StatusBadRequest)
					return
				}
				http.Error(w, "not applied", http.StatusInternalServerError)
				return
			}
			io.WriteString(w, "success")
		default:
			w.Header().Set("Allow", "GET, POST")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		}
	})
}

// DataCallback returns the wecom.Callback of the data callback URL
// (数据回调URL) for the pushes of corp corpID's users and events: the same
// Token and EncodingAESKey as the command callback (one pair per app in
// the vendor console), the corp id as receive id. Handle its messages with
// its Handler, HandleMessage and a core.Dedup as a self-built app's.
func (s *Suite) DataCallback(corpID string) (*wecom.Callback, error) {
	if s.cfg.EncodingAESKey.IsZero() {
		return nil, wrap("DataCallback", errors.New("wecomvendor.Config.Token and EncodingAESKey are required"))
	}
	return wecom.NewCallback(wecom.CallbackConfig{Token: s.cfg.Token, EncodingAESKey: s.cfg.EncodingAESKey,
		PreviousEncodingAESKey: s.cfg.PreviousEncodingAESKey, CorpID: corpID, Now: s.cfg.Now})
}
