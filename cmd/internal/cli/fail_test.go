package cli

import (
	"bytes"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/wechatconf/wechatconf/core"
)

// TestFailLimitError tests that a limit of core's (*core.LimitError),
// wrapped, exits 4 naming the limit.
func TestFailLimitError(t *testing.T) {
	var stderr bytes.Buffer
	e := &env{stdout: io.Discard, stderr: &stderr}
	limited := fmt.Errorf("force: %w", &core.LimitError{Credential: "access_token", Limit: "ForceRefreshInterval", Until: time.Now().Add(30 * time.Second)})
	if code := e.fail(limited); code != ExitLimited || !strings.Contains(stderr.String(), "ForceRefreshInterval") {
		t.Errorf("fail(%v) = %d, stderr %q; want %d naming the limit", limited, code, stderr.String(), ExitLimited)
	}
}
