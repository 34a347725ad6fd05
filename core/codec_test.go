package core

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestTokenCodecRoundTrip(t *testing.T) {
	at := time.Date(2026, 11, 25, 13, 24, 5, 123456789, time.FixedZone("CST", 8*3600))
	for _, v := range []string{"x", strings.Repeat("A", 512), "令牌-<&>\"'", strings.Repeat("z", 4096)} {
		b, err := EncodeToken("a/{b}:../c", Token{Value: v, ExpiresAt: at})
		if err != nil {
			t.Fatalf("EncodeToken(%.20q): %v", v, err)
		}
		got, err := DecodeToken(b, "a/{b}:../c")
		if err != nil || got.Value != v || !got.ExpiresAt.Equal(at) {
			t.Errorf("DecodeToken(EncodeToken(%.20q)) = %v, %v; want the same value and instant", v, got, err)
		}
	}
	if _, err := EncodeToken("k", Token{Value: "\xff"}); err == nil {
		t.Error("EncodeToken accepted a value that is not UTF-8")
	}
	if _, err := EncodeToken("k", Token{Value: strings.Repeat("x", MaxEncodedToken)}); err == nil {
		t.Error("EncodeToken accepted a value larger than MaxEncodedToken")
	}
}

func TestDecodeTokenReportsCorruption(t *testing.T) {
	good, err := EncodeToken("k", Token{Value: "v", ExpiresAt: time.Unix(1, 0)})
	if err != nil {
		t.Fatal(err)
	}
	for name, bad := range map[string]string{
		"empty":          "",
		"truncated":      string(good[:len(good)/2]),
		"garbage":        "\x00\x01not json",
		"open brace":     "{",
		"null":           "null",
		"no version":     `{"key":"k","value":"v","expires_at":"2026-01-01T00:00:00Z"}`,
		"newer version":  `{"v":2,"key":"k","value":"v","expires_at":"2026-01-01T00:00:00Z"}`,
		"other key":      strings.Replace(string(good), `"key":"k"`, `"key":"other"`, 1),
		"no value":       `{"v":1,"key":"k","expires_at":"2026-01-01T00:00:00Z"}`,
		"bad expires_at": `{"v":1,"key":"k","value":"v","expires_at":"yesterday"}`,
		"too large":      strings.Repeat(" ", MaxEncodedToken+1),
	} {
		if got, err := DecodeToken([]byte(bad), "k"); !errors.Is(err, ErrCorrupt) || errors.Is(err, ErrNotFound) {
			t.Errorf("%s: DecodeToken = %v, %v; want an error wrapping ErrCorrupt only", name, got, err)
		}
	}
}
