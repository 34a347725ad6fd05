package main

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"
)

// fixture is testdata/full: every kind of raw output scripts/bench writes,
// with a backend skipped for lack of Docker, one not selected, a failed
// benchmark run and a failed herd run among them.
func fixture(t *testing.T) inputs {
	t.Helper()
	f, err := readDir(filepath.Join("testdata", "full"))
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// row returns the table row of the report that begins with "| first |".
func row(t *testing.T, report, first string) string {
	t.Helper()
	for line := range strings.Lines(report) {
		if strings.HasPrefix(line, "| "+first+" |") {
			return strings.TrimSpace(line)
		}
	}
	t.Fatalf("no row %q in the report:\n%s", first, report)
	return ""
}

func TestReportTables(t *testing.T) {
	report := render(fixture(t))
	for _, tc := range []struct{ first, want string }{
		// Stores: medians of 3 runs (memory Get 40, 44, 90 → 44 ns), ratios over memory.
		{"memory", "| memory | 44 ns | 110 ns | 200 ns | 1 µs | 0 | ×1 | ×1 | 1 ¹ | 2.9 ms ¹ | 100 µs |"},
		{"function store", "| function store | 60 ns | 150 ns | 300 ns | 2 µs | 0 | ×1.4 | ×2 | n/a (one process) | n/a (one process) | 150 µs |"},
		{"file", "| file | 20 µs | 500 µs | 62 µs | 800 µs | 34 | ×453 | ×800 | 1 | 15 ms | 7.3 ms |"},
		{"Redis (standalone)", "| Redis (standalone) | skipped: no Docker | — | — | — | — | — | — | — | — | — |"},
		// A failed benchmark run, a herd whose second run fetched twice, no wake output.
		{"PostgreSQL", "| PostgreSQL | failed (exit 1) | — | — | — | — | — | — | 1, 2 ⚠ (FAIL) | 590 ms | n/a |"},
		{"etcd (1 member)", "| etcd (1 member) | 200 µs | 1.5 ms | 250 µs | 7 ms | 150 | ×4545 | ×7000 | 1 | 45 ms | 4.5 ms |"},
		{"SQLite (custom store)", "| SQLite (custom store) | skipped: not selected | — | — | — | — | — | — | — | — | — |"},
		// Fleet day.
		{"wechatconf", "| wechatconf | file | 8 | 24 | 13 | 13 | ×1 | 0 | 1,234,567 | 250 ns | 12 µs | 20.3 s |"},
		{"naive (-naive)", "| naive (-naive) | memory | 8 | 24 | 104 | 13 | ×8 | 5,821 | 1,200,000 | 240 ns | 9 ms | 20.1 s |"},
		// Hot path.
		{"BenchmarkAccessTokenHot", "| BenchmarkAccessTokenHot | 28 ns | 0 | 0 | ×1 |"},
		{"BenchmarkAccessTokenHotParallel", "| BenchmarkAccessTokenHotParallel | 14.2 ns | 0 | 0 | ×0.5 |"},
		// contrib/otel: medians, ratios over core's AccessTokenHot (28 ns).
		{"BenchmarkAccessTokenHotWithHandler", "| BenchmarkAccessTokenHotWithHandler | 29.1 ns | 0 | 0 | ×1 |"},
		{"BenchmarkHandleOther", "| BenchmarkHandleOther | 10.5 ns | 0 | 0 | ×0.4 |"},
		{"BenchmarkHandleFetched", "| BenchmarkHandleFetched | 4 µs | 31 | 2600 | ×143 |"},
		// A table logged by a test (outage.rows.txt).
		{"store", "| store | Conf | token calls | returned after |"},
		{"Redis", "| Redis | classic | 0 | 2s |"},
		// Machine.
		{"CPU", "| CPU | AMD EPYC 7B13 |"},
		{"Cores (nproc)", "| Cores (nproc) | 2 |"},
		{"Go", "| Go | go1.26.8 linux/amd64 |"},
		{"Kernel", "| Kernel | Linux 6.1.0-27-cloud-amd64 x86_64 |"},
		{"Date", "| Date | 2026-11-25 14:30 UTC |"},
	} {
		if got := row(t, report, tc.first); got != tc.want {
			t.Errorf("row %s:\n got %s\nwant %s", tc.first, got, tc.want)
		}
	}
	for _, want := range []string{
		"# Benchmarks\n\nProcess herd (400 callers in 8 processes): more than 1 token fetch on PostgreSQL (1, 2 ⚠); exactly 1 on file, etcd.",
		"A Get costs ×1.4 (function store) to ×4545 (etcd) a memory-store Get (44 ns).",
		"Waiters wake 100 µs–7.3 ms after the holder's fetch ends.",
		"Fleet day (8 processes, 24 simulated hours): wechatconf on the file store 13 fetches (13 expected) and 0 caller-visible 40001s " +
			"vs naive 104 fetches (×8) and 5,821 caller-visible 40001s.",
		"Hot path: AccessToken 28 ns, 0 allocs/op (14.2 ns under RunParallel). " +
			"With the OpenTelemetry handler installed: 29.1 ns (×1): a hit logs no event, so the handler records nothing.",
		"on a hit the handler records nothing",
		"## Store outage\n\n| store | Conf | token calls | returned after |\n|---|---|---|---|\n" +
			"| Redis | classic | 0 | 2s |\n| Redis | stable | 1 | 85ms |\n\n" +
			"Logged by the tests of `scripts/bench outage`: `(cd store/redis/containertest && go test -count 1 -v -run '^TestStoreOutage$' .)`.\n",
		"## Tables not produced\n\nThese table sections of `scripts/bench` logged no results table row (`conformance.ReportRow`):\n\n" +
			"- `sentinel`: skipped: no Docker.\n",
		"Figures are medians of 3 runs.", "time/op and allocs/op, medians of 3 runs.",
		"```sh\n(cd core && go test -run '^$' -bench '^BenchmarkAccessTokenHot(Parallel)?$' -benchmem -count 3 .)\n",
	} {
		if !strings.Contains(report, want) {
			t.Errorf("report lacks %q:\n%s", want, report)
		}
	}
	// The sections come in order.
	last := -1
	for _, h := range []string{"# Benchmarks", "## Machine", "## Stores", "## Listing keys (wechatconf ls)", "## Fleet day", "## Hot path",
		"## OpenTelemetry handler: evicted authorizers", "## Store outage", "## Tables not produced", "## Commands"} {
		i := strings.Index(report, h)
		if i <= last {
			t.Errorf("section %q at %d, after the previous one at %d", h, i, last)
		}
		last = i
	}
}

// section returns the report's section that begins with the heading, up to
// the next heading.
func section(t *testing.T, report, heading string) string {
	t.Helper()
	_, rest, ok := strings.Cut(report, "\n"+heading+"\n")
	if !ok {
		t.Fatalf("no section %q in the report:\n%s", heading, report)
	}
	if i := strings.Index(rest, "\n## "); i >= 0 {
		rest = rest[:i+1]
	}
	return rest
}

const (
	listingHeading = "## Listing keys (wechatconf ls)"
	evictedHeading = "## OpenTelemetry handler: evicted authorizers"
)

// TestReportListing: conformance.Benchmark's ListKeys10000 per backend,
// medians of the runs (memory 1.1, 1.0, 1.3 ms → 1.1 ms), ratios over
// memory; a store that is no core.KeyLister (the function store: its run
// passed without a ListKeys10000 line), a skipped backend, a failed run.
func TestReportListing(t *testing.T) {
	report := render(fixture(t))
	want := "\n| Backend | ListKeys (10,000 keys) | keys/s | allocs/op | B/op | × memory |\n|---|--:|--:|--:|--:|--:|\n" +
		"| memory | 1.1 ms | 9,090,909 | 18 | 665,968 | ×1 |\n" +
		"| function store | not listed (no core.KeyLister) | — | — | — | — |\n" +
		"| file | 45 ms | 222,222 | 30,050 | 2,400,000 | ×41 |\n" +
		"| Redis (standalone) | skipped: no Docker | — | — | — | — |\n" +
		"| PostgreSQL | failed (exit 1) | — | — | — | — |\n" +
		"| etcd (1 member) | 25 ms | 400,000 | 120,000 | 9,000,000 | ×23 |\n" +
		"| SQLite (custom store) | skipped: not selected | — | — | — | — |\n\n" +
		"`conformance.Benchmark`'s ListKeys10000: `core.KeyLister`'s ListKeys of a prefix holding 10,000 keys"
	if got := section(t, report, listingHeading); !strings.HasPrefix(got, want) {
		t.Errorf("listing section:\n%s\nwant it to begin\n%s", got, want)
	}
	if !strings.Contains(report, "allocs/op and B/op, medians of 3 runs.") {
		t.Errorf("listing section does not say how many runs:\n%s", section(t, report, listingHeading))
	}

	// An older scripts/bench that did not ask for ListKeys10000; a run that
	// failed after its other sub-benchmarks; no memory figure to compare to.
	f := fixture(t)
	drop := func(name string) {
		var kept []string
		for line := range strings.Lines(f[name]) {
			if !strings.Contains(line, "ListKeys10000") {
				kept = append(kept, line)
			}
		}
		f[name] = strings.Join(kept, "")
	}
	drop("etcd.bench.txt")
	f["etcd.bench.cmd"] = "(cd store/etcd/containertest && go test -run '^$' -bench '^BenchmarkStore$/^(Get|Set|RefreshUncontended|RefreshFetch)$' -benchmem -count 3 .)\n"
	drop("file.bench.txt")
	f["file.bench.txt"] += "--- FAIL: BenchmarkStore/ListKeys10000\n    conformance.go:1: ListKeys(\"p/\"): boom\nFAIL\n"
	f["file.bench.exit"] = "1\n"
	drop("memory.bench.txt")
	got := section(t, render(f), listingHeading)
	for _, want := range []string{
		"| etcd (1 member) | not run | — | — | — | — |",
		"| file | failed (exit 1) | — | — | — | — |",
		"| memory | not listed (no core.KeyLister) | — | — | — | — |",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("listing section lacks %q:\n%s", want, got)
		}
	}
	f = fixture(t)
	drop("memory.bench.txt")
	f["memory.bench.txt"] += "BenchmarkMemoryStore/ListKeys10000-2 \t 1000 \t 1000000 ns/op\n" // ns/op only
	delete(f, "file.bench.exit")
	if got := section(t, render(f), listingHeading); !strings.Contains(got, "| memory | 1 ms | n/a | n/a | n/a | ×1 |") ||
		!strings.Contains(got, "| file | 45 ms | 222,222 | 30,050 | 2,400,000 | ×45 |") {
		t.Errorf("listing section with a memory figure lacking units:\n%s", got)
	}

	// Nothing at all.
	if got := section(t, render(inputs{}), listingHeading); !strings.Contains(got, "| memory | n/a | — | — | — | — |") {
		t.Errorf("empty report's listing section:\n%s", got)
	}
}

// TestReportEvicted: contrib/otel's BenchmarkObserveEvictedAuthorizers,
// medians of its custom metrics and its allocations per authorizer (B/op and
// allocs/op over 100,000); more observed than the registry keeps; a failed
// run; the otel section not selected.
func TestReportEvicted(t *testing.T) {
	report := render(fixture(t))
	want := "\n| Benchmark | Heap kept per evicted authorizer | Observed after GC | Time per authorizer | CPU per authorizer | Allocated per authorizer | allocs per authorizer |\n" +
		"|---|--:|--:|--:|--:|--:|--:|\n" +
		"| BenchmarkObserveEvictedAuthorizers | 0.5 B | 912 | 20 µs | 8.8 µs | 2,381 B | 26.3 |\n\n" +
		"`contrib/otel`'s BenchmarkObserveEvictedAuthorizers: "
	got := section(t, report, evictedHeading)
	if !strings.HasPrefix(got, want) {
		t.Errorf("evicted section:\n%s\nwant it to begin\n%s", got, want)
	}
	for _, want := range []string{"(MaxAuthorizers 1,000)", "100,000 authorizers observed, then evicted, per op (medians of 3 runs;"} {
		if !strings.Contains(got, want) {
			t.Errorf("evicted section lacks %q:\n%s", want, got)
		}
	}

	f := fixture(t)
	f["otel.evict.txt"] = "BenchmarkObserveEvictedAuthorizers-2 \t 1 \t 2000000000 ns/op \t -3.5 heap-B/evicted-authorizer \t 1500 observed-after-GC\n"
	if got := section(t, render(f), evictedHeading); !strings.Contains(got, "| BenchmarkObserveEvictedAuthorizers | -3.5 B | 1,500 ⚠ | n/a | n/a | n/a | n/a |") {
		t.Errorf("evicted section with more observed than the registry keeps:\n%s", got)
	}
	f["otel.evict.txt"] = "--- FAIL: BenchmarkObserveEvictedAuthorizers\nFAIL\n"
	f["otel.evict.exit"] = "1\n"
	if got := section(t, render(f), evictedHeading); !strings.Contains(got, "| BenchmarkObserveEvictedAuthorizers | failed (exit 1) | — | — | — | — | — |") {
		t.Errorf("evicted section of a failed run:\n%s", got)
	}
	delete(f, "otel.evict.txt")
	delete(f, "otel.evict.exit")
	if got := section(t, render(f), evictedHeading); !strings.Contains(got, "| BenchmarkObserveEvictedAuthorizers | n/a | — | — | — | — | — |") {
		t.Errorf("evicted section without its output:\n%s", got)
	}
	f["otel.skip"] = "not selected\n"
	if got := section(t, render(f), evictedHeading); got != "\nNot measured: not selected.\n\n" {
		t.Errorf("evicted section of an otel section not selected: %q", got)
	}
}

func TestReportHerdAllOnce(t *testing.T) {
	f := fixture(t)
	delete(f, "postgres.herd.txt")
	delete(f, "postgres.herd.exit")
	report := render(f)
	want := "Every multi-process backend measured (file, etcd): exactly 1 token fetch for 400 callers in 8 processes, " +
		"the herd done 13 ms–45 ms after WeChat's 50 ms answer."
	if !strings.Contains(report, want) {
		t.Errorf("report lacks %q:\n%s", want, report)
	}
	if got, want := row(t, report, "PostgreSQL"), "| PostgreSQL | failed (exit 1) | — | — | — | — | — | — | n/a | n/a | n/a |"; got != want {
		t.Errorf("PostgreSQL row:\n got %s\nwant %s", got, want)
	}
}

// TestReportEmpty: with nothing at all, every figure is n/a and the report
// is still written.
func TestReportEmpty(t *testing.T) {
	report := render(inputs{})
	for _, tc := range []struct{ first, want string }{
		{"memory", "| memory | n/a | n/a | n/a | n/a | n/a | n/a | n/a | n/a | n/a | n/a |"},
		{"file", "| file | n/a | n/a | n/a | n/a | n/a | n/a | n/a | n/a | n/a | n/a |"},
		{"BenchmarkAccessTokenHot", "| BenchmarkAccessTokenHot | n/a | — | — | — |"},
		{"CPU", "| CPU | n/a |"},
	} {
		if got := row(t, report, tc.first); got != tc.want {
			t.Errorf("row %s:\n got %s\nwant %s", tc.first, got, tc.want)
		}
	}
	for _, want := range []string{
		"No process herd was measured.",
		"Fleet day: not measured (no fleet output).",
		"## Fleet day\n\nNot measured: no fleet output.\n",
		"## Commands\n\nn/a (no commands.txt)\n",
	} {
		if !strings.Contains(report, want) {
			t.Errorf("report lacks %q:\n%s", want, report)
		}
	}
}

// TestReportSkips: what scripts/bench writes when there is no Docker, no
// fleet demo, and only some sections were selected.
func TestReportSkips(t *testing.T) {
	f := fixture(t)
	for _, k := range sortedKeys(f) {
		if strings.HasPrefix(k, "fleet") || strings.HasPrefix(k, "core.") || strings.HasPrefix(k, "otel.") || strings.HasPrefix(k, "postgres.") {
			delete(f, k)
		}
	}
	f["fleet.skip"] = "fleet demo not built (no examples/fleet)\n"
	f["core.skip"] = "not selected\n"
	f["otel.skip"] = "not selected\n"
	f["postgres.skip"] = "no Docker\n"
	report := render(f)
	for _, want := range []string{
		"Fleet day: not measured (fleet demo not built (no examples/fleet)).",
		"## Fleet day\n\nNot measured: fleet demo not built (no examples/fleet).\n",
		"## Hot path\n\nNot measured: not selected.\n",
		"| PostgreSQL | skipped: no Docker | — |",
		"| memory | 44 ns | 110 ns | 200 ns | 1 µs | 0 | ×1 | ×1 | not selected | not selected | 100 µs |",
	} {
		if !strings.Contains(report, want) {
			t.Errorf("report lacks %q:\n%s", want, report)
		}
	}
	if strings.Contains(report, "Hot path:") {
		t.Errorf("headline mentions the hot path, which was not measured:\n%s", report)
	}
}

// TestHotPathPartlySkipped: core not run but contrib/otel run, and the
// other way round.
func TestHotPathPartlySkipped(t *testing.T) {
	f := fixture(t)
	delete(f, "core.hot.txt")
	f["core.skip"] = "not selected\n"
	report := render(f)
	for _, want := range []string{
		"| BenchmarkAccessTokenHot | skipped: not selected | — | — | — |",
		"| BenchmarkAccessTokenHotWithHandler | 29.1 ns | 0 | 0 | n/a |",
	} {
		if !strings.Contains(report, want) {
			t.Errorf("report lacks %q:\n%s", want, report)
		}
	}
	f = fixture(t)
	delete(f, "otel.bench.txt")
	f["otel.skip"] = "not selected\n"
	report = render(f)
	for _, want := range []string{
		"| BenchmarkAccessTokenHot | 28 ns | 0 | 0 | ×1 |",
		"| BenchmarkHandleFetched | skipped: not selected | — | — | — |",
		"The OpenTelemetry handler (contrib/otel) was not measured: not selected.",
	} {
		if !strings.Contains(report, want) {
			t.Errorf("report lacks %q:\n%s", want, report)
		}
	}
	if strings.Contains(report, "With the OpenTelemetry handler installed") {
		t.Errorf("headline mentions the handler, which was not measured:\n%s", report)
	}
}

// TestResultTables: rows of two tables, interleaved in go test -v output
// (indented, after the file:line t.Logf adds) of two runs (-count 2) of a
// section whose run failed, with a row logged by a failed subtest; columns
// that differ between rows; a table section with no rows.
func TestResultTables(t *testing.T) {
	f := inputs{
		"faults.rows.txt": `=== RUN   TestFaults
=== RUN   TestFaults/Pause
    faults_test.go:40: wechatconf-row: {"table":"Faults","columns":["fault","errors"],"values":["pause","0"]}
    faults_test.go:45: wechatconf-row: {"table":"Faults","note":"Errors during a partition are expected."}
    faults_test.go:51: wechatconf-row: {"table":"Fault recovery","columns":["fault","recovered in"],"values":["pause","1.2s"]}
=== RUN   TestFaults/Kill
    faults_test.go:40: wechatconf-row: {"table":"Faults","columns":["fault","errors","note"],"values":["kill","3","a | b"]}
    faults_test.go:60: kill: 3 callers saw an error, want 0
    faults_test.go:51: wechatconf-row: {"table":"Fault recovery","columns":["fault","recovered in"],"values":["kill","4s"]}
--- FAIL: TestFaults (9.00s)
    --- PASS: TestFaults/Pause (4.00s)
    --- FAIL: TestFaults/Kill (5.00s)
=== RUN   TestFaults
=== RUN   TestFaults/Pause
        nested_test.go:9: wechatconf-row: {"table":"Faults","columns":["errors","fault"],"values":["1","pause"]}
    faults_test.go:45: wechatconf-row: {"table":"Faults","note":"Errors during a partition are expected."}
    faults_test.go:40: wechatconf-row: {"table":"Faults","columns":["fault"],"values":["pause","extra"]}
    faults_test.go:40: wechatconf-row: {broken
--- FAIL: TestFaults (4.00s)
FAIL
FAIL	github.com/wechatconf/wechatconf/conformance/faults	13.100s
FAIL
`,
		"faults.rows.exit":   "1\n",
		"faults.rows.cmd":    "(cd conformance/faults && go test -count 1 -v -run '^TestFaults' .)\n",
		"sentinel.rows.txt":  "testing: warning: no tests to run\nPASS\nok  	github.com/wechatconf/wechatconf/store/redis/containertest	0.020s [no tests to run]\n",
		"sentinel.rows.exit": "0\n",
		"sentinel.rows.cmd":  "(cd store/redis/containertest && go test -count 1 -v -run '^TestSentinelFailover$' .)\n",
		"nodir.rows.txt":     "bench: line 1: cd: conformance/nodir: No such file or directory\n",
		"nodir.rows.exit":    "1\n",
		"outage.rows.skip":   "not selected\n",
		// sentinel ran before faults: its line comes first in the list.
		"commands.txt": "(cd store/redis/containertest && go test -count 1 -v -run '^TestSentinelFailover$' .)\n" +
			"(cd conformance/faults && go test -count 1 -v -run '^TestFaults' .)\n",
	}
	report := render(f)
	for _, want := range []string{
		"## Faults\n\n| fault | errors | note |\n|---|---|---|\n" +
			"| pause | 0 | — |\n| kill | 3 | a \\| b |\n| pause | 1 | — |\n\n" +
			"Errors during a partition are expected.\n\n" +
			"Logged by the tests of `scripts/bench faults`: `(cd conformance/faults && go test -count 1 -v -run '^TestFaults' .)`. " +
			"That run failed (exit 1): the rows are those logged before it failed or by the tests that passed.\n\n",
		"## Fault recovery\n\n| fault | recovered in |\n|---|---|\n| pause | 1.2s |\n| kill | 4s |\n\n",
		"## Tables not produced\n\nThese table sections of `scripts/bench` logged no results table row (`conformance.ReportRow`):\n\n" +
			"- `sentinel`: no rows logged (no test matched): `(cd store/redis/containertest && go test -count 1 -v -run '^TestSentinelFailover$' .)`.\n" +
			"- `nodir`: failed (exit 1), no rows logged.\n\n",
	} {
		if !strings.Contains(report, want) {
			t.Errorf("report lacks %q:\n%s", want, report)
		}
	}
	// Tables in the order they first appear, before the commands; a section
	// not selected says nothing.
	if i, j, k := strings.Index(report, "## Faults"), strings.Index(report, "## Fault recovery"), strings.Index(report, "## Commands"); !(i >= 0 && i < j && j < k) {
		t.Errorf("## Faults at %d, ## Fault recovery at %d, ## Commands at %d", i, j, k)
	}
	if strings.Contains(report, "outage") {
		t.Errorf("report mentions the outage section, which was not selected:\n%s", report)
	}
	// Nothing of the kind: no table sections at all.
	if report := render(inputs{}); strings.Contains(report, "Tables not produced") {
		t.Errorf("empty report has a Tables not produced section:\n%s", report)
	}
}

func TestParseRows(t *testing.T) {
	text := "    x_test.go:1: wechatconf-row: {\"table\":\"T\",\"columns\":[\"a\"],\"values\":[\"1\"]}\n" +
		"wechatconf-row: {\"table\":\"T\",\"columns\":[\"a\",\"b\"],\"values\":[\"<&>\\n\",\"\"]}\r\n" +
		"wechatconf-row: {\"table\":\"\",\"columns\":[\"a\"],\"values\":[\"1\"]}\n" +
		"wechatconf-row: {\"table\":\"T\",\"columns\":[],\"values\":[]}\n" +
		"wechatconf-row: not json\n" +
		"wechatconf-row: {\"table\":\"T\",\"note\":\"n\"}\n" +
		"wechatconf-row: {\"table\":\"T\",\"columns\":[\"a\"],\"values\":[\"1\"],\"note\":\"row and note\"}\n" +
		"wechatconf-row: {\"table\":\"T\",\"note\":\"\"}\n"
	got := parseRows(text)
	want := []loggedRow{{"T", []string{"a"}, []string{"1"}, ""}, {"T", []string{"a", "b"}, []string{"<&>\n", ""}, ""}, {"T", nil, nil, "n"}}
	if len(got) != len(want) {
		t.Fatalf("parseRows = %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i].Table != want[i].Table || !slices.Equal(got[i].Columns, want[i].Columns) || !slices.Equal(got[i].Values, want[i].Values) || got[i].Note != want[i].Note {
			t.Errorf("row %d = %+v, want %+v", i, got[i], want[i])
		}
	}
}

func TestParseBench(t *testing.T) {
	text := `goos: linux
cpu: AMD EPYC
BenchmarkStore/Get-2         	   12068	     19952 ns/op	    4048 B/op	      34 allocs/op
BenchmarkStore/Get-2         	   12904	     18231 ns/op	    4048 B/op	      36 allocs/op
BenchmarkStore/RefreshFetch-16 	     264	   1107150 ns/op	    7648 B/op	      93 allocs/op
BenchmarkHerd-2   	       4	  53350981 ns/op	         1.000 fetches/op	         3.349 herd-ms-over-fetch	   69036 B/op	     618 allocs/op
BenchmarkBroken-2   	       4	  abc ns/op
BenchmarkNoFields
--- FAIL: BenchmarkX
    BenchmarkStore/Get-2 is not a result line either
PASS`
	res := parseBench(text)
	var names []string
	for k := range res {
		names = append(names, k)
	}
	sort.Strings(names)
	if want := []string{"BenchmarkHerd", "BenchmarkStore/Get", "BenchmarkStore/RefreshFetch"}; strings.Join(names, ",") != strings.Join(want, ",") {
		t.Fatalf("benchmarks %v, want %v", names, want)
	}
	get, ok := find(res, "Get")
	if !ok {
		t.Fatal("find(Get) found nothing")
	}
	if m, _ := get.median("ns/op"); m != (19952+18231)/2.0 {
		t.Errorf("Get median ns/op = %v, want %v", m, (19952+18231)/2.0)
	}
	if m, _ := get.median("allocs/op"); m != 35 {
		t.Errorf("Get median allocs/op = %v, want 35", m)
	}
	herd, ok := find(res, "BenchmarkHerd")
	if !ok {
		t.Fatal("find(BenchmarkHerd) found nothing")
	}
	if m, _ := herd.median("herd-ms-over-fetch"); m != 3.349 {
		t.Errorf("herd-ms-over-fetch = %v, want 3.349", m)
	}
	if _, ok := find(res, "Set"); ok {
		t.Error("find(Set) found a benchmark, want none")
	}
	if _, ok := get.median("MB/s"); ok {
		t.Error("median of a unit never reported is ok")
	}
}

func TestMedian(t *testing.T) {
	for _, tc := range []struct {
		xs   []float64
		want float64
		ok   bool
	}{
		{nil, 0, false},
		{[]float64{5}, 5, true},
		{[]float64{9, 1, 5}, 5, true},
		{[]float64{4, 1, 3, 2}, 2.5, true},
		{[]float64{100, 1, 2}, 2, true},
	} {
		in := append([]float64(nil), tc.xs...)
		got, ok := median(in)
		if got != tc.want || ok != tc.ok {
			t.Errorf("median(%v) = %v, %v; want %v, %v", tc.xs, got, ok, tc.want, tc.ok)
		}
		if !sort.Float64sAreSorted(tc.xs) && sort.Float64sAreSorted(in) {
			t.Errorf("median(%v) sorted its argument", tc.xs)
		}
	}
}

func TestParseHerdAndWake(t *testing.T) {
	text := `=== RUN   TestStandalone/ProcessHerd
    redisstore_test.go:82: ProcessHerd: 8 processes × 50 goroutines: 1 token fetch(es), herd done 65ms after release (WeChat latency 50ms)
    redisstore_test.go:82: ProcessHerd: 8 processes × 50 goroutines: 3 token fetch(es), herd done 1.5s after release (WeChat latency 50ms)
    redisstore_test.go:82: ProcessHerd: 8 processes × 50 goroutines: x token fetch(es), herd done 1s after release (WeChat latency 50ms)
    redisstore_test.go:82: ProcessHerd official account classic access_token: 8 processes × 50 goroutines: 2 token fetch(es), herd done 1.2s after release (WeChat latency 50ms)
    redisstore_test.go:83: ProcessHerd wecom access_token: 8 processes × 50 goroutines: 1 token fetch(es), herd done 70ms after release (WeChat latency 50ms)
    checks.go:564: wake latency: 2.615387ms (max over 20 waiters on 4 store values of return time − end of the holder's 200ms fetch)
    checks.go:564: wake latency: 850µs (max over 20 waiters on 4 store values of return time − end of the holder's 200ms fetch)
    checks.go:564: wake latency: soon (max over …)
    checks.go:612: Refresh("k1", stale="old"): wake latency 1.5ms (max over 20 waiters on 4 store values of return time − end of the holder's 200ms fetch), bound 105ms = 100ms + 2 × 2.302ms measured cost of the store operations now (round 1)
`
	herd := parseHerd(text)
	want := []herdRun{{8, 50, 1, 65 * time.Millisecond, 50 * time.Millisecond}, {8, 50, 3, 1500 * time.Millisecond, 50 * time.Millisecond},
		{8, 50, 2, 1200 * time.Millisecond, 50 * time.Millisecond}}
	if !slices.Equal(herd, want) {
		t.Errorf("parseHerd = %+v, want %+v", herd, want)
	}
	if got := herdFetches(herd); got != "1, 3, 2 ⚠" {
		t.Errorf("herdFetches = %q, want %q", got, "1, 3, 2 ⚠")
	}
	wake := parseWake(text)
	if len(wake) != 3 || wake[0] != 2615387*time.Nanosecond || wake[1] != 850*time.Microsecond || wake[2] != 1500*time.Microsecond {
		t.Errorf("parseWake = %v, want [2.615387ms 850µs 1.5ms] (the check's old and new line)", wake)
	}
	if m, _ := medianDuration(wake); fmtDuration(m) != "1.5 ms" {
		t.Errorf("median wake = %s, want 1.5 ms", fmtDuration(m))
	}
}

func TestParseFleet(t *testing.T) {
	good := `{"store":"file","naive":false,"procs":8,"sim_hours":24,"duration_s":60.1,"fetches":13,"expected_fetches":13,"errors_40001":0,"calls":123456,"access_token_p50_ns":250,"access_token_p99_ns":12000}`
	for _, tc := range []struct {
		name, text string
		ok         bool
	}{
		{"alone", good, true},
		{"after other lines", "fleet: starting 8 processes\n{\"not\": \"it\"}\n" + good + "\n", true},
		{"indented", "{\n  \"fetches\": 13,\n  \"store\": \"file\"\n}\n", true},
		{"empty", "", false},
		{"no fetches", `{"store":"file"}`, false},
		{"garbage", "panic: boom\n\ngoroutine 1 [running]:\n", false},
	} {
		d, err := parseFleet(tc.text)
		if (err == nil) != tc.ok {
			t.Errorf("%s: parseFleet error %v, want ok=%v", tc.name, err, tc.ok)
			continue
		}
		if !tc.ok {
			continue
		}
		if v, ok := d.num("fetches"); !ok || v != 13 {
			t.Errorf("%s: fetches = %v, %v; want 13", tc.name, v, ok)
		}
		if v, ok := d.str("store"); !ok || v != "file" {
			t.Errorf("%s: store = %q, %v; want file", tc.name, v, ok)
		}
	}
	d, _ := parseFleet(good)
	if _, ok := d.num("store"); ok {
		t.Error(`num("store") of a string is ok`)
	}
	if _, ok := d.num("missing"); ok {
		t.Error(`num("missing") is ok`)
	}
}

// TestFleetFailures: a mode whose run failed, or printed no JSON, gets a
// row saying so; the other mode's row stays.
func TestFleetFailures(t *testing.T) {
	f := fixture(t)
	f["fleet-naive.json"] = "exit status 2\n"
	f["fleet-naive.exit"] = "1\n"
	f["fleet-wechatconf.json"] = `{"store":"file","fetches":13}` + "\n"
	report := render(f)
	for _, want := range []string{
		"| naive (-naive) | failed (exit 1) | — |",
		"| wechatconf | file | n/a | n/a | 13 | n/a | ×1 | n/a | n/a | n/a | n/a | n/a |",
		"Fleet day: wechatconf on the file store 13 fetches vs naive n/a.",
	} {
		if !strings.Contains(report, want) {
			t.Errorf("report lacks %q:\n%s", want, report)
		}
	}
}

// TestStream: the same files concatenated by tail -n +1 give the same report.
func TestStream(t *testing.T) {
	f := fixture(t)
	var stream bytes.Buffer
	stream.WriteString("ignored preamble\n")
	for i, name := range sortedKeys(f) {
		if i > 0 {
			stream.WriteString("\n")
		}
		stream.WriteString("==> /tmp/wechatconf-bench.abc/" + name + " <==\n" + f[name])
	}
	var out bytes.Buffer
	if err := run("", "", &stream, &out); err != nil {
		t.Fatal(err)
	}
	if want := render(f); out.String() != want {
		t.Errorf("report from stdin differs from the report from the directory:\n%s\n----\n%s", out.String(), want)
	}
}

func TestRunWritesFile(t *testing.T) {
	out := filepath.Join(t.TempDir(), "BENCHMARKS.md")
	if err := run(filepath.Join("testdata", "full"), out, strings.NewReader(""), nil); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if want := render(fixture(t)); string(b) != want {
		t.Errorf("%s differs from render's report", out)
	}
	if err := run(filepath.Join(t.TempDir(), "missing"), out, nil, nil); err == nil {
		t.Error("run with a missing -in directory: no error")
	}
}

func TestFormat(t *testing.T) {
	for _, tc := range []struct{ got, want string }{
		{fmtNs(0), "0 ns"},
		{fmtNs(1.234), "1.23 ns"},
		{fmtNs(27.96), "28 ns"},
		{fmtNs(14.23), "14.2 ns"},
		{fmtNs(999), "999 ns"},
		{fmtNs(425.4), "425 ns"},
		{fmtNs(19952), "20 µs"},
		{fmtNs(123456), "123 µs"},
		{fmtNs(7.25e6), "7.2 ms"},
		{fmtNs(2.5e9), "2.5 s"},
		{fmtRatio(45, 44), "×1"},
		{fmtRatio(200000, 44), "×4545"},
		{fmtRatio(14, 28), "×0.5"},
		{fmtRatio(28, 200000), "×0"},
		{fmtRatio(1, 0), "n/a"},
		{fmtCount(1234567), "1,234,567"},
		{fmtCount(13), "13"},
		{fmtCount(-1000), "-1,000"},
		{fmtCount(1.5), "1.5"},
		{escapeCell("a|b\nc"), `a\|b c`},
	} {
		if tc.got != tc.want {
			t.Errorf("got %q, want %q", tc.got, tc.want)
		}
	}
}

// FuzzRender: whatever the raw outputs hold, the report is written.
func FuzzRender(f *testing.F) {
	fix, err := readDir(filepath.Join("testdata", "full"))
	if err != nil {
		f.Fatal(err)
	}
	for _, name := range sortedKeys(fix) {
		f.Add(name, fix[name])
	}
	f.Fuzz(func(t *testing.T, name, text string) {
		in := inputs{}
		for k, v := range fix {
			in[k] = v
		}
		in[name] = text
		if report := render(in); !strings.HasPrefix(report, "# Benchmarks\n") {
			t.Errorf("report begins %q", firstLine(report))
		}
		if _, err := readStream(strings.NewReader(text)); err != nil {
			t.Logf("readStream: %v", err) // a line over 16 MiB; not a crash
		}
	})
}
