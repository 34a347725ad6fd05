// Package benchrow logs rows of results tables in the form scripts/bench
// collects into BENCHMARKS.md, for core's own benchmarks: the line format
// of conformance.ReportRow ("wechatconf-row: " and compact JSON), which
// core cannot import (conformance is another module, built on core).
package benchrow

import (
	"encoding/json"
	"testing"
)

// Marker starts every row line; it is conformance.RowMarker.
const Marker = "wechatconf-row: "

// Col is one cell: its column heading and its value, formatted with units.
type Col struct{ Name, Value string }

// Row logs one row of table (see conformance.ReportRow).
func Row(tb testing.TB, table string, cols ...Col) {
	tb.Helper()
	r := struct {
		Table   string   `json:"table"`
		Columns []string `json:"columns"`
		Values  []string `json:"values"`
	}{Table: table}
	for _, c := range cols {
		r.Columns, r.Values = append(r.Columns, c.Name), append(r.Values, c.Value)
	}
	b, err := json.Marshal(r)
	if err != nil || table == "" || len(cols) == 0 {
		tb.Errorf("benchrow: table %q with %d columns: %v", table, len(cols), err)
		return
	}
	tb.Logf("%s%s", Marker, b)
}

// Note logs a note on table (see conformance.ReportNote).
func Note(tb testing.TB, table, note string) {
	tb.Helper()
	b, err := json.Marshal(struct {
		Table string `json:"table"`
		Note  string `json:"note"`
	}{table, note})
	if err != nil || table == "" || note == "" {
		tb.Errorf("benchrow: note on table %q: %v", table, err)
		return
	}
	tb.Logf("%s%s", Marker, b)
}
