package tokenserver

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/wechatconf/wechatconf/core"
)

// readyReply is the body of GET /readyz.
type readyReply struct {
	Status      string        `json:"status"` // "ready" or "not_ready"
	Credentials []readyOfCred `json:"credentials"`
}

// readyOfCred is one credential's readiness in a readyReply.
type readyOfCred struct {
	Credential string `json:"credential"` // "access_token"
	Ready      bool   `json:"ready"`
	// ExpiresInSeconds is the held token's time to expiry, in whole
	// seconds (core.NotReadyError.Remaining when not ready); omitted when
	// no token is held.
	ExpiresInSeconds int64 `json:"expires_in_seconds,omitempty"`
	// The rest only when not ready: core.NotReadyError's Reason, Horizon
	// (whole seconds), and its text, the last only to a caller that sent
	// the bearer secret.
	Reason         core.ReadyReason `json:"reason,omitempty"`
	HorizonSeconds int64            `json:"horizon_seconds,omitempty"`
	Error          string           `json:"error,omitempty"`
}

// serveReady answers GET /readyz: 200 when the access_token is ready
// (core.Conf.Ready), 503 otherwise, with a readyReply saying why.
func (s *server) serveReady(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), s.timeout)
	defer cancel()
	err := s.conf.Ready(ctx)
	c := readyOfCred{Credential: "access_token", Ready: err == nil}
	if at, ok := s.conf.AccessTokenCredential().Expiry(); ok {
		c.ExpiresInSeconds = max(0, int64(time.Until(at)/time.Second))
	}
	reply, status := readyReply{Status: "ready", Credentials: []readyOfCred{c}}, http.StatusOK
	if err != nil {
		reply.Status, status = "not_ready", http.StatusServiceUnavailable
		var nr *core.NotReadyError
		if errors.As(err, &nr) {
			c.Reason, c.HorizonSeconds = nr.Reason, int64(nr.Horizon/time.Second)
			c.ExpiresInSeconds = int64(nr.Remaining / time.Second)
		}
		if s.authorized(r) {
			c.Error = err.Error()
		}
		reply.Credentials[0] = c
		s.log.Info("tokenserver: not ready", "credential", c.Credential, "reason", c.Reason, "error", err)
	}
	writeJSON(w, status, reply)
}
