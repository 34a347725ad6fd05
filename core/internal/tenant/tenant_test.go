package tenant_test

import (
	"context"
	"errors"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/wechatconf/wechatconf/core"
	"github.com/wechatconf/wechatconf/core/internal/storetest"
	"github.com/wechatconf/wechatconf/core/internal/tenant"
)

var format = tenant.Format{Prefix: "test.record/1", Tenant: "tenant", Secret: "secret_code", Owner: "owner"}

func TestFormatRoundTripAndCorruptValues(t *testing.T) {
	r := tenant.Record{State: tenant.StateAuthorized, Since: 1700000000000, Code: "abc", Secret: "s3cret-value", Access: "tok", Expires: 1700000007200}
	got, err := format.Decode(format.Encode(r))
	if err != nil || got != r {
		t.Fatalf("Decode(Encode(%+v)) = %+v, %v", r, got, err)
	}
	for _, v := range []string{"s3cret-value", "test.record/1{", `test.record/1{"state":"authorized"}`, `test.record/1{"state":"x","refresh_token":"s3cret-value"}`, "unauthorized@2024-01-01T00:00:00Z"} {
		_, err := format.Decode(core.Token{Value: v})
		if !errors.Is(err, core.ErrCorrupt) {
			t.Errorf("Decode(%q) = %v, want ErrCorrupt (no legacy values without Format.Legacy)", v, err)
		}
		if err != nil && strings.Contains(err.Error(), "s3cret") {
			t.Errorf("Decode's error quotes the stored value: %v", err)
		}
	}
	legacy := format
	legacy.Legacy = true
	if r, err := legacy.Decode(core.Token{Value: "bare-secret"}); err != nil || r.State != tenant.StateAuthorized || r.Secret != "bare-secret" {
		t.Errorf("legacy bare secret = %+v, %v", r, err)
	}
	if r, err := legacy.Decode(core.Token{Value: "unauthorized@2024-01-01T00:00:00Z"}); err != nil || r.State != tenant.StateWithdrawn || r.Since != time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC).UnixMilli() {
		t.Errorf("legacy withdrawal marker = %+v, %v", r, err)
	}
}

func TestReplacedByOrdersByTimeAuthorizationWinsTies(t *testing.T) {
	r := tenant.Record{State: tenant.StateWithdrawn, Since: 100}
	switch {
	case r.ReplacedBy(tenant.StateAuthorized, 99):
		t.Error("an older authorization replaced a withdrawal")
	case !r.ReplacedBy(tenant.StateAuthorized, 100):
		t.Error("an authorization of the same time did not replace a withdrawal")
	case r.ReplacedBy(tenant.StateWithdrawn, 100):
		t.Error("a withdrawal of the same time replaced a withdrawal")
	case !r.ReplacedBy(tenant.StateWithdrawn, 101):
		t.Error("a newer withdrawal did not replace a withdrawal")
	}
	a := tenant.Record{State: tenant.StateAuthorized, Since: 100}
	if a.ReplacedBy(tenant.StateWithdrawn, 100) {
		t.Error("a withdrawal of the same time replaced an authorization")
	}
}

type handle struct {
	id  string
	pad [64]byte
}

func TestRegistryBoundsHandlesAndFindsKeptOnesAgain(t *testing.T) {
	made := 0
	r := &tenant.Registry[handle]{Max: 100, New: func(id string) *handle { made++; return &handle{id: id} }}
	kept := r.Get("kept")
	if r.Get("kept") != kept {
		t.Fatal("a second Get made another handle")
	}
	for i := range 1000 {
		r.Get(strings.Repeat("x", i%7) + string(rune('a'+i%26)) + time.Duration(i).String())
	}
	held, evicted := r.Stats()
	if held > 100 || evicted == 0 {
		t.Fatalf("Stats = %d held, %d evicted, want at most 100 held and some evicted", held, evicted)
	}
	runtime.GC()
	if r.Get("kept") != kept {
		t.Fatal("a handle a caller kept was made again after its eviction")
	}
	if r.Lookup("never") != nil {
		t.Fatal("Lookup made a handle")
	}
	runtime.KeepAlive(kept)
}

func TestWriterHoldsWritesTheStoreRefusesAndKeepsTheNewest(t *testing.T) {
	store := storetest.NewDown()
	landed := make(chan string, 4)
	w := &tenant.Writer{Store: store, Timeout: 100 * time.Millisecond, Landed: func(id string) { landed <- id }}
	ctx := context.Background()
	newer := func(v string, at time.Time) tenant.Step {
		return func(cur core.Token) (core.Token, bool) {
			next := core.Token{Value: v, ExpiresAt: at}
			return next, cur.Value == "" || cur.ExpiresAt.Before(at)
		}
	}
	base := time.Unix(1700000000, 0)
	store.Failing.Store(true)
	if _, err := w.Write(ctx, "thing", "t1", "k", newer("new", base.Add(time.Minute))); !errors.Is(err, storetest.ErrDown) {
		t.Fatalf("Write on a store that is down = %v, want its error", err)
	}
	if _, err := w.Write(ctx, "thing", "t1", "k", newer("old", base)); err == nil {
		t.Fatal("second Write on a store that is down succeeded")
	}
	if w.Held() != 2 {
		t.Fatalf("Held = %d, want 2", w.Held())
	}
	store.Failing.Store(false)
	dctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := w.Drain(dctx); err != nil {
		t.Fatal(err)
	}
	got, err := store.Get(ctx, "k")
	if err != nil || got.Value != "new" {
		t.Fatalf("after the store came back it holds %q, %v; want the newest write, \"new\"", got.Value, err)
	}
	if w.Held() != 0 || len(landed) != 2 {
		t.Fatalf("Held = %d, Landed called %d times; want 0 and 2", w.Held(), len(landed))
	}
}
