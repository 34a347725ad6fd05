package conformance

import (
	"bytes"
	"encoding/json"
	"testing"
)

// RowMarker begins every line that ReportRow logs. tools/benchreport
// (run by scripts/bench) finds rows by it anywhere in a line of go test -v
// output, after the indentation and the file:line prefix that t.Logf adds.
const RowMarker = "wechatconf-row: "

// Col is one cell of a row that ReportRow logs: Name is the column heading,
// Value the cell as it is to be shown (a string formatted by the test, units
// included, e.g. Col{"fetches", "1"}, Col{"recovery", "1.2 s"}).
type Col struct {
	Name, Value string
}

// ReportRow logs one row of a results table in the form scripts/bench
// collects into BENCHMARKS.md: a single t.Logf line
//
//	wechatconf-row: {"table":"Store outage","columns":["store","fetches"],"values":["redis","1"]}
//
// that is RowMarker followed by compact JSON with the table name, the column
// names and the values (all strings, in the order of cols). That line is
// what tools/benchreport reads: it collects every row from the go test -v
// output of a scripts/bench section (<section>.rows.txt), groups the rows by
// table, and renders each table under a heading "## <table>", so table is
// the heading of its section in BENCHMARKS.md. A table's columns are the
// union of its rows' columns in the order first seen; every logged row is
// one table row (with -count N, N rows per call). Keep table names and
// column names stable across runs and tests that share a table.
//
// Values are shown as given: format them in the test (durations with units,
// counts as integers). Newlines and other control characters are escaped
// by the JSON, so a row is always one line. An empty table name or no
// columns is a mistake in the test and fails it (t.Errorf); the row is then
// not logged.
//
// For example, in a test:
//
//	conformance.ReportRow(t, "Store outage",
//		conformance.Col{Name: "store", Value: "Redis"},
//		conformance.Col{Name: "token calls", Value: strconv.Itoa(calls)},
//		conformance.Col{Name: "returned after", Value: elapsed.Round(time.Millisecond).String()})
//
// logs (go test -v)
//
//	outage_test.go:42: wechatconf-row: {"table":"Store outage","columns":["store","token calls","returned after"],"values":["Redis","0","2s"]}
//
// Rows are only logged, so they appear with go test -v (or in the output of
// a failed test); they do not change what the test checks.
func ReportRow(t testing.TB, table string, cols ...Col) {
	t.Helper()
	if table == "" || len(cols) == 0 {
		t.Errorf("conformance.ReportRow: table %q with %d column(s): want a table name and at least one column", table, len(cols))
		return
	}
	t.Logf("%s", formatRow(table, cols))
}

// ReportNote logs a note on a results table of ReportRow's: a sentence
// that says how to read the table (what a column means, why a figure is
// expected), rendered by tools/benchreport under the table, once however
// often it is logged. The line is RowMarker followed by compact JSON with
// the table name and the note, e.g.
//
//	wechatconf-row: {"table":"Store outage","note":"Classic tokens fail by design once …"}
//
// An empty table name or note fails the test (t.Errorf) and logs nothing.
func ReportNote(t testing.TB, table, note string) {
	t.Helper()
	if table == "" || note == "" {
		t.Errorf("conformance.ReportNote: table %q, note %q: want both", table, note)
		return
	}
	t.Logf("%s", encodeRow(row{Table: table, Note: note}))
}

// row is the JSON form of a ReportRow or ReportNote line after RowMarker.
type row struct {
	Table   string   `json:"table"`
	Columns []string `json:"columns,omitempty"`
	Values  []string `json:"values,omitempty"`
	Note    string   `json:"note,omitempty"`
}

// formatRow returns the line ReportRow logs.
func formatRow(table string, cols []Col) string {
	r := row{Table: table, Columns: make([]string, len(cols)), Values: make([]string, len(cols))}
	for i, c := range cols {
		r.Columns[i], r.Values[i] = c.Name, c.Value
	}
	return encodeRow(r)
}

// encodeRow returns RowMarker followed by r as compact JSON.
func encodeRow(r row) string {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false) // keep <, > and & readable in the log
	_ = enc.Encode(r)        // strings only: cannot fail
	return RowMarker + string(bytes.TrimSuffix(b.Bytes(), []byte("\n")))
}
