package core

import (
	"encoding/json"
	"fmt"
	"log/slog"
)

// Secret holds a secret string — an AppSecret, an EncodingAESKey, the
// server-configuration Token, a token server's bearer secret — so that no
// rendering of it shows the secret: String, GoString, every fmt verb
// (Format), LogValue, MarshalJSON and MarshalText all give "REDACTED" (or
// "" for the zero Secret). Its only field is a pointer, so even fmt's
// reflection — which cannot call these methods on a Config kept in an
// unexported field of the caller's own struct — prints an address, never
// the text. Reveal returns the secret to the code that must send it.
//
// A Secret is read from configuration with NewSecret, or by
// UnmarshalJSON/UnmarshalText (a JSON string, or text from a flag or an
// environment-variable library). The zero Secret is the empty secret. A
// Secret is immutable and safe for concurrent use; compare secrets with
// Reveal.
type Secret struct {
	p *string
}

// NewSecret returns a Secret holding s; NewSecret("") is the zero Secret.
func NewSecret(s string) Secret {
	if s == "" {
		return Secret{}
	}
	return Secret{p: &s}
}

// Reveal returns the secret itself, for the request that must carry it.
// Never print or log what it returns.
func (s Secret) Reveal() string {
	if s.p == nil {
		return ""
	}
	return *s.p
}

// IsZero reports whether s holds no secret.
func (s Secret) IsZero() bool { return s.p == nil }

// String returns "REDACTED", or "" for the zero Secret.
func (s Secret) String() string {
	if s.p == nil {
		return ""
	}
	return redacted
}

// GoString is String quoted, so %#v shows "REDACTED" too.
func (s Secret) GoString() string { return fmt.Sprintf("%q", s.String()) }

// Format writes String for every verb and flag (%s, %v, %+v, %#v, %q, %x, …).
func (s Secret) Format(f fmt.State, verb rune) {
	switch verb {
	case 'q':
		fmt.Fprintf(f, "%q", s.String())
	case 'v':
		if f.Flag('#') {
			_, _ = f.Write([]byte(s.GoString()))
			return
		}
		_, _ = f.Write([]byte(s.String()))
	default:
		_, _ = f.Write([]byte(s.String()))
	}
}

// LogValue lets log/slog print "REDACTED".
func (s Secret) LogValue() slog.Value { return slog.StringValue(s.String()) }

// MarshalJSON encodes s as the JSON string "REDACTED" ("" for the zero
// Secret): a Config marshalled for display never carries the secret.
func (s Secret) MarshalJSON() ([]byte, error) { return json.Marshal(s.String()) }

// MarshalText encodes s as "REDACTED" ("" for the zero Secret).
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalJSON reads a Secret from a JSON string (null leaves it zero).
func (s *Secret) UnmarshalJSON(b []byte) error {
	var v *string
	if err := json.Unmarshal(b, &v); err != nil {
		return fmt.Errorf("wechatconf: a Secret must be a JSON string: %w", err)
	}
	if v == nil {
		*s = Secret{}
		return nil
	}
	*s = NewSecret(*v)
	return nil
}

// UnmarshalText reads a Secret from text (a flag, an environment variable).
func (s *Secret) UnmarshalText(b []byte) error {
	*s = NewSecret(string(b))
	return nil
}
