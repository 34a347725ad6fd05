package benchrow_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/wechatconf/wechatconf/core/internal/benchrow"
)

// recorder keeps what a Row logs.
type recorder struct {
	testing.TB
	lines []string
}

func (r *recorder) Helper() {}
func (r *recorder) Logf(f string, args ...any) {
	r.lines = append(r.lines, strings.TrimSpace(fmt.Sprintf(f, args...)))
}
func (r *recorder) Errorf(f string, args ...any) { r.lines = append(r.lines, "ERROR") }

func TestRowIsConformanceFormat(t *testing.T) {
	r := &recorder{TB: t}
	benchrow.Row(r, "Tenants", benchrow.Col{Name: "platform", Value: "x"}, benchrow.Col{Name: "n", Value: "1\n"})
	want := `wechatconf-row: {"table":"Tenants","columns":["platform","n"],"values":["x","1\n"]}`
	if len(r.lines) != 1 || r.lines[0] != want {
		t.Fatalf("Row logged %q, want %q", r.lines, want)
	}
	benchrow.Row(r, "")
	if r.lines[len(r.lines)-1] != "ERROR" {
		t.Fatal("a row without a table or columns was logged")
	}
}
