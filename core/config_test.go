package core

import (
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

// aesKeyA is the EncodingAESKey of Tencent's published sample (WECHAT.md, vector A).
const aesKeyA = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"

func TestNewValidatesLikeTheSeed(t *testing.T) {
	tests := []struct {
		name    string
		cfg     Config
		wantErr string // substring; "" means success
		mode    EncryptMode
	}{
		{name: "empty config is valid", cfg: Config{}, mode: Normal},
		{name: "basic info only", cfg: Config{Token: NewSecret("t"), AppID: "wx1", AppSecret: NewSecret("s")}, mode: Normal},
		{name: "key defaults mode to safe", cfg: Config{Token: NewSecret("t"), AppID: "wx1", EncodingAESKey: NewSecret(aesKeyA)}, mode: Safe},
		{name: "explicit normal", cfg: Config{Token: NewSecret("t"), EncryptMode: Normal}, mode: Normal},
		{name: "explicit normal without token", cfg: Config{EncryptMode: Normal}, wantErr: "needs Config.Token"},
		{name: "safe without key", cfg: Config{Token: NewSecret("t"), AppID: "wx1", EncryptMode: Safe}, wantErr: "needs Config.EncodingAESKey"},
		{name: "compatible without key", cfg: Config{Token: NewSecret("t"), AppID: "wx1", EncryptMode: Compatible}, wantErr: "needs Config.EncodingAESKey"},
		{name: "safe without token", cfg: Config{AppID: "wx1", EncryptMode: Safe, EncodingAESKey: NewSecret(aesKeyA)}, wantErr: "needs Config.Token"},
		{name: "relative base URL", cfg: Config{BaseURL: "api.weixin.qq.com"}, wantErr: "BaseURL"},
		{name: "base URL with a query", cfg: Config{BaseURL: "https://api.weixin.qq.com/?x=1"}, wantErr: "BaseURL"},
		{name: "regional base URL", cfg: Config{BaseURL: "https://api2.weixin.qq.com/"}, mode: Normal},
		{name: "explicit compatible", cfg: Config{Token: NewSecret("t"), AppID: "wx1", EncryptMode: Compatible, EncodingAESKey: NewSecret(aesKeyA)}, mode: Compatible},
		{name: "explicit safe", cfg: Config{Token: NewSecret("t"), AppID: "wx1", EncryptMode: Safe, EncodingAESKey: NewSecret(aesKeyA)}, mode: Safe},
		{name: "unknown mode", cfg: Config{EncryptMode: "secure"}, wantErr: `unknown EncryptMode "secure"`},
		{name: "mode is case sensitive", cfg: Config{EncryptMode: "Safe"}, wantErr: "unknown EncryptMode"},
		{name: "key without token", cfg: Config{AppID: "wx1", EncodingAESKey: NewSecret(aesKeyA)}, wantErr: "requires Token and AppID"},
		{name: "key without appid", cfg: Config{Token: NewSecret("t"), EncodingAESKey: NewSecret(aesKeyA)}, wantErr: "requires Token and AppID"},
		{name: "key too short", cfg: Config{Token: NewSecret("t"), AppID: "wx1", EncodingAESKey: NewSecret(aesKeyA[:42])}, wantErr: "must be 43 characters, got 42"},
		{name: "key too long", cfg: Config{Token: NewSecret("t"), AppID: "wx1", EncodingAESKey: NewSecret(aesKeyA + "A")}, wantErr: "must be 43 characters, got 44"},
		{name: "key not base64", cfg: Config{Token: NewSecret("t"), AppID: "wx1", EncodingAESKey: NewSecret("!" + aesKeyA[1:])}, wantErr: "not 43 base64 characters"},
		{name: "unknown token api", cfg: Config{TokenAPI: 7}, wantErr: "unknown TokenAPI 7"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := New(tt.cfg)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("New(%v) error = %v, want one containing %q", tt.cfg, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("New(%v): %v", tt.cfg, err)
			}
			if c.EncryptMode() != tt.mode {
				t.Errorf("EncryptMode() = %q, want %q", c.EncryptMode(), tt.mode)
			}
		})
	}
}

func TestNewBuildsTheCrypters(t *testing.T) {
	c, err := New(Config{Token: NewSecret("t"), AppID: "wx1", EncodingAESKey: NewSecret(aesKeyA), PreviousEncodingAESKey: NewSecret(aesKeyA)})
	if err != nil {
		t.Fatal(err)
	}
	if c.crypt == nil || c.prevCrypt == nil || c.crypt.AppID() != "wx1" {
		t.Fatalf("New did not build the message crypters from the keys")
	}
}

func TestMissingFieldIsNamed(t *testing.T) {
	c, err := New(Config{AppSecret: NewSecret("s")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.AccessToken(t.Context()); err == nil || !strings.Contains(err.Error(), "Config.AppID is required") {
		t.Errorf("AccessToken without AppID: error = %v, want it to name Config.AppID", err)
	}
	c, err = New(Config{AppID: "wx1"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.AccessToken(t.Context()); err == nil || !strings.Contains(err.Error(), "Config.AppSecret is required") {
		t.Errorf("AccessToken without AppSecret: error = %v, want it to name Config.AppSecret", err)
	}
}

func TestConfigNeverPrintsTheSecret(t *testing.T) {
	const secret = "s3cr3t-app-secret-value"
	cfg := Config{AppID: "wx1", AppSecret: NewSecret(secret), Token: NewSecret("tok"), EncodingAESKey: NewSecret(aesKeyA)}
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var logged strings.Builder
	slog.New(slog.NewTextHandler(&logged, nil)).Info("config", "cfg", cfg)
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("config", "cfg", cfg)
	for _, s := range []string{
		fmt.Sprint(cfg), fmt.Sprintf("%+v", cfg), fmt.Sprintf("%#v", cfg), fmt.Sprintf("%v", &cfg),
		fmt.Sprint(c), fmt.Sprintf("%+v", c), fmt.Sprintf("%#v", c), logged.String(),
	} {
		if strings.Contains(s, secret) || strings.Contains(s, aesKeyA) {
			t.Errorf("printed form leaks a secret: %s", s)
		}
		if !strings.Contains(s, "wx1") {
			t.Errorf("printed form lost the AppID: %s", s)
		}
	}
}
