package wxtest

import "fmt"

// Secret rotation: an administrator resetting a secret in the console
// (重置 AppSecret, a WeCom app's Secret, an Open Platform component's
// AppSecret). WeChat's reset takes effect at once: the old secret is
// refused by the next token call, while the access tokens already issued
// keep working until they expire.

// rotated is the secret of one account after a Set…Secret call, and the
// secrets it replaced.
type rotated struct {
	current string
	retired map[string]bool
}

func (r *rotated) set(secret string) {
	if r.current != "" && r.current != secret {
		r.retired[r.current] = true
	}
	delete(r.retired, secret)
	r.current = secret
}

func newRotated(old, secret string) *rotated {
	r := &rotated{retired: make(map[string]bool)}
	if old != "" {
		r.current = old
	}
	r.set(secret)
	return r
}

// SetAppSecret resets the AppSecret of the Official Account (or Mini
// Program) appid to secret, as the admin console's reset does (设置与开发 →
// 基本配置 → 开发者密码 → 重置): from this call on, [PathToken] and
// [PathStableToken] accept only secret for appid. The secret it replaced —
// Options.AppSecret, or the one a previous SetAppSecret set — is refused at
// once: [PathToken] answers errcode 40001 (the getAccessToken document's
// "AppSecret错误或者AppSecret不属于这个公众号") and [PathStableToken] 40125
// (invalid appsecret); any other wrong secret gets 40125 from both, as
// before. Tokens already issued keep working until they expire. secret must
// not be empty (SetAppSecret panics).
func (s *Server) SetAppSecret(appid, secret string) {
	if appid == "" || secret == "" {
		panic("wxtest: SetAppSecret needs an appid and a non-empty secret")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if r := s.appSecrets[appid]; r != nil {
		r.set(secret)
		return
	}
	s.appSecrets[appid] = newRotated(s.opts.AppSecret, secret)
}

// checkAppSecret validates secret for appid against a SetAppSecret:
// handled reports whether one was made, and code is then 0 for the current
// secret, 40001 (classic) or 40125 (stable) for a retired one, 40125 for
// any other.
func (s *Server) checkAppSecret(appid, secret string, classic bool) (code int, handled bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.appSecrets[appid]
	switch {
	case r == nil:
		return 0, false
	case secret == r.current:
		return 0, true
	case classic && r.retired[secret]:
		return codeInvalidCredential, true
	}
	return codeInvalidAppSecret, true
}

// SetWeComSecret resets the Secret of the WeCom application agentID of
// corpID, declared in [Options.WeComApps], to secret, as the admin
// console's reset does (应用管理 → 应用 → Secret → 重置): from this call on,
// [PathWeComToken] accepts only secret for that application and answers
// the secret it replaced with errcode 40001 (不合法的secret参数, "invalid
// credential"). The application keeps its state: the token already issued
// keeps working until it expires. It panics if no such application is
// declared, or secret is empty.
func (s *Server) SetWeComSecret(corpID string, agentID int64, secret string) {
	declared := ""
	for _, a := range s.opts.WeComApps {
		if a.CorpID == corpID && a.AgentID == agentID {
			declared = a.Secret
		}
	}
	if declared == "" || secret == "" {
		panic(fmt.Sprintf("wxtest: SetWeComSecret: no application %d of corp %q declared in Options.WeComApps, or an empty secret", agentID, corpID))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	key := weComKey{corpID: corpID, secret: declared}
	if r := s.weComSecrets[key]; r != nil {
		r.set(secret)
		return
	}
	s.weComSecrets[key] = newRotated(declared, secret)
}

// weComSecretLocked returns the secret the declared application a accepts
// now. s.mu must be held.
func (s *Server) weComSecretLocked(a WeComApp) string {
	if r := s.weComSecrets[weComKey{corpID: a.CorpID, secret: a.Secret}]; r != nil {
		return r.current
	}
	return a.Secret
}

// SetComponentSecret resets the component_appsecret of the Open Platform
// component componentAppID to secret, as the Open Platform console's reset
// does: from this call on, [PathComponentToken] accepts only secret and
// answers any other with errcode 40125 (invalid appsecret). The
// component_access_token already issued keeps working until it expires.
// secret must not be empty (SetComponentSecret panics), and with
// [Options.Components] set the component must be declared (else it
// panics).
func (s *Server) SetComponentSecret(componentAppID, secret string) {
	if secret == "" {
		panic("wxtest: SetComponentSecret needs a non-empty secret")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.componentLocked(componentAppID)
	if c == nil {
		panic(fmt.Sprintf("wxtest: SetComponentSecret: component %q is not declared in Options.Components", componentAppID))
	}
	c.secret = secret
}
