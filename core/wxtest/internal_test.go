package wxtest

import (
	"regexp"
	"testing"
)

func TestNewValue(t *testing.T) {
	re := regexp.MustCompile(`^[A-Za-z0-9_-]+$`)
	seen := map[string]bool{}
	for range 1000 {
		v := newValue(tokenBytes)
		if len(v) != 136 || !re.MatchString(v) {
			t.Fatalf("token %q: want 136 URL-safe characters", v)
		}
		if seen[v] {
			t.Fatal("duplicate value")
		}
		seen[v] = true
	}
	if v := newValue(ticketBytes); len(v) != 86 {
		t.Fatalf("ticket %q: want 86 characters", v)
	}
}

func TestRid(t *testing.T) {
	if r := rid(); !regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{8}-[0-9a-f]{8}$`).MatchString(r) {
		t.Fatalf("rid %q", r)
	}
}

func TestErrmsgs(t *testing.T) {
	for _, code := range []int{
		codeSystemBusy, codeInvalidCredential, codeInvalidGrantType, codeInvalidAppID, codeInvalidArgs,
		codeInvalidAppSecret, codeTokenMissing, codeAppIDMissing, codeSecretMissing, codeTokenExpired,
		codeRequireGET, codeRequirePOST, codeDailyQuota, codeMinuteQuota, codeDataFormat,
	} {
		if errmsgs[code] == "" {
			t.Errorf("errcode %d has no errmsg", code)
		}
	}
}

// TestTakeFaultQueue checks the queue's bookkeeping directly: entries are
// consumed in order and the map entry disappears when the queue is empty.
func TestTakeFaultQueue(t *testing.T) {
	s := New(Options{})
	defer s.Close()
	s.InjectFault("/p", Busy(), 2)
	s.InjectFault("/p", EmptyReply(), 1)
	for i, want := range []Fault{Busy(), Busy(), EmptyReply()} {
		f, ok := s.takeFault("/p")
		if !ok || f != want {
			t.Fatalf("fault %d = %+v, %v; want %+v", i, f, ok, want)
		}
	}
	if _, ok := s.takeFault("/p"); ok {
		t.Fatal("a fault past the queue")
	}
	if len(s.faults) != 0 {
		t.Fatalf("faults map not emptied: %v", s.faults)
	}
}
