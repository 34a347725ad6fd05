package conformance_test

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/wechatconf/wechatconf/conformance"
)

// recorder is a testing.TB that keeps what is logged and errors.
type recorder struct {
	testing.TB
	logs, errs []string
}

func (r *recorder) Helper() {}
func (r *recorder) Logf(format string, args ...any) {
	r.logs = append(r.logs, fmt.Sprintf(format, args...))
}
func (r *recorder) Errorf(format string, args ...any) {
	r.errs = append(r.errs, fmt.Sprintf(format, args...))
}

// TestReportRowRoundTrip: the logged line is RowMarker and one line of
// JSON that gives back the table, the columns and the values as passed.
func TestReportRowRoundTrip(t *testing.T) {
	cols := []conformance.Col{
		{"store", "redis"},
		{"fetches", "1"},
		{"recovery", "1.2 s"},
		{`odd "name" | <&>`, "line 1\nline 2\t✓"},
		{"empty", ""},
	}
	r := &recorder{TB: t}
	conformance.ReportRow(r, "Store outage", cols...)
	if len(r.errs) != 0 || len(r.logs) != 1 {
		t.Fatalf("ReportRow logged %q, errors %q; want one line, no error", r.logs, r.errs)
	}
	line := r.logs[0]
	if strings.ContainsAny(line, "\n\r") {
		t.Errorf("logged line spans several lines: %q", line)
	}
	payload, ok := strings.CutPrefix(line, conformance.RowMarker)
	if !ok {
		t.Fatalf("logged line %q does not begin with %q", line, conformance.RowMarker)
	}
	var got struct {
		Table   string   `json:"table"`
		Columns []string `json:"columns"`
		Values  []string `json:"values"`
	}
	dec := json.NewDecoder(strings.NewReader(payload))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&got); err != nil {
		t.Fatalf("logged JSON %q: %v", payload, err)
	}
	if got.Table != "Store outage" {
		t.Errorf("table %q, want %q", got.Table, "Store outage")
	}
	var names, values []string
	for _, c := range cols {
		names, values = append(names, c.Name), append(values, c.Value)
	}
	if !slices.Equal(got.Columns, names) || !slices.Equal(got.Values, values) {
		t.Errorf("columns %q values %q, want %q %q", got.Columns, got.Values, names, values)
	}
}

// TestReportRowCompact: the exact line of a simple row, the form
// tools/benchreport's tests feed it.
func TestReportRowCompact(t *testing.T) {
	r := &recorder{TB: t}
	conformance.ReportRow(r, "Faults", conformance.Col{Name: "fault", Value: "pause"}, conformance.Col{Name: "errors", Value: "0"})
	want := `wechatconf-row: {"table":"Faults","columns":["fault","errors"],"values":["pause","0"]}`
	if len(r.logs) != 1 || r.logs[0] != want {
		t.Errorf("logged %q, want %q", r.logs, want)
	}
}

// TestReportRowMistakes: no table name or no columns fails the test and
// logs nothing.
func TestReportRowMistakes(t *testing.T) {
	for _, tc := range []struct {
		table string
		cols  []conformance.Col
	}{
		{"", []conformance.Col{{"a", "1"}}},
		{"T", nil},
	} {
		r := &recorder{TB: t}
		conformance.ReportRow(r, tc.table, tc.cols...)
		if len(r.errs) != 1 || len(r.logs) != 0 {
			t.Errorf("ReportRow(%q, %d cols): errors %q, logs %q; want one error, no log", tc.table, len(tc.cols), r.errs, r.logs)
		}
	}
}

// TestReportNote: a note is RowMarker and the table and note as compact
// JSON (no columns); an empty table or note fails the test and logs
// nothing.
func TestReportNote(t *testing.T) {
	r := &recorder{TB: t}
	conformance.ReportNote(r, "Faults", "Errors during a partition are expected.")
	want := `wechatconf-row: {"table":"Faults","note":"Errors during a partition are expected."}`
	if len(r.logs) != 1 || r.logs[0] != want || len(r.errs) != 0 {
		t.Errorf("logged %q, errors %q; want %q", r.logs, r.errs, want)
	}
	for _, tc := range [][2]string{{"", "n"}, {"T", ""}} {
		r := &recorder{TB: t}
		conformance.ReportNote(r, tc[0], tc[1])
		if len(r.errs) != 1 || len(r.logs) != 0 {
			t.Errorf("ReportNote(%q, %q): errors %q, logs %q; want one error, no log", tc[0], tc[1], r.errs, r.logs)
		}
	}
}
