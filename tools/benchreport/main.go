// Command benchreport turns the raw outputs that scripts/bench collects into
// BENCHMARKS.md. Run it from the repository root:
//
//	go run ./tools/benchreport -in /tmp/bench.XXXX -out BENCHMARKS.md
//	tail -n +1 /tmp/bench.XXXX/* | go run ./tools/benchreport > BENCHMARKS.md
//
// The input is a directory of files, or on stdin the same files concatenated
// with `==> path <==` headers (what tail -n +1 and head print for several
// files). The files it reads, all optional:
//
//	meta.txt                      "key: value" lines: date, go, nproc, cpu, kernel, loadavg, bench_count, …
//	commands.txt                  the commands that produced the rest, one a line
//	<backend>.skip                why a backend was not run ("no Docker", "not selected")
//	<backend>.bench.txt           go test -bench output of conformance.Benchmark (Get, Set, RefreshUncontended,
//	                              RefreshFetch and, for a store that implements core.KeyLister, ListKeys10000)
//	<backend>.herd.txt            go test -v output of the backend's conformance.ProcessHerd test
//	<backend>.wake.txt            go test -v output of its RefreshWakesWaitersPromptly check
//	core.skip, core.hot.txt       go test -bench output of BenchmarkAccessTokenHot(Parallel)
//	core.herd.txt                 go test -bench output of core's in-process BenchmarkHerd
//	otel.skip, otel.bench.txt     go test -bench output of contrib/otel's BenchmarkAccessTokenHotWithHandler,
//	                              BenchmarkHandleOther and BenchmarkHandleFetched
//	otel.evict.txt                go test -bench output of contrib/otel's BenchmarkObserveEvictedAuthorizers
//	<section>.rows.txt            go test -v output of a table section's tests (any name: outage, faults, …):
//	                              every "wechatconf-row: {json}" line (conformance.ReportRow) in it is a
//	                              row of the table it names
//	<section>.rows.skip           why a table section was not run
//	fleet.skip                    why the fleet day was not run
//	fleet-wechatconf.json         go run ./examples/fleet -json output
//	fleet-naive.json              the same with -naive
//	<name>.exit                   the exit status of the command that wrote <name>.txt or .json
//	<name>.cmd                    the command that wrote <name>.txt (one line, as in commands.txt)
//
// with <backend> one of memory, func, file, redis, postgres, etcd, sqlite.
// Whatever is missing, failed or unparsable is reported as such ("n/a",
// "skipped: …", "failed (exit 1)"): the report is always written.
//
// It uses the standard library only.
package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

func main() {
	in := flag.String("in", "", "directory of raw outputs from scripts/bench (empty or - : read `==> name <==` sections from stdin)")
	out := flag.String("out", "", "file to write the report to (empty or - : stdout)")
	flag.Parse()
	if err := run(*in, *out, os.Stdin, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "benchreport:", err)
		os.Exit(1)
	}
}

func run(in, out string, stdin io.Reader, stdout io.Writer) error {
	var (
		files inputs
		err   error
	)
	if in == "" || in == "-" {
		files, err = readStream(stdin)
	} else {
		files, err = readDir(in)
	}
	if err != nil {
		return err
	}
	report := render(files)
	if out == "" || out == "-" {
		_, err = io.WriteString(stdout, report)
		return err
	}
	return os.WriteFile(out, []byte(report), 0o644)
}

// inputs maps the base name of each raw output to its text.
type inputs map[string]string

// readDir reads the regular files of dir.
func readDir(dir string) (inputs, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	files := inputs{}
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			return nil, err
		}
		files[e.Name()] = string(b)
	}
	return files, nil
}

// streamHeader is the line that begins a file in tail -n +1's output.
var streamHeader = regexp.MustCompile(`^==> (.+) <==$`)

// readStream splits r into files at `==> path <==` lines; text before the
// first header is ignored.
func readStream(r io.Reader) (inputs, error) {
	files := inputs{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 16*1024*1024)
	var (
		name string
		buf  strings.Builder
	)
	flush := func() {
		if name != "" {
			// tail separates files with an empty line: drop it.
			files[name] = strings.TrimSuffix(buf.String(), "\n\n") + "\n"
		}
		buf.Reset()
	}
	for sc.Scan() {
		line := sc.Text()
		if m := streamHeader.FindStringSubmatch(line); m != nil {
			flush()
			name = filepath.Base(strings.TrimSpace(m[1]))
			continue
		}
		buf.WriteString(line)
		buf.WriteByte('\n')
	}
	flush()
	return files, sc.Err()
}

// section returns the text of the raw output name+ext, or why there is
// none worth parsing: "n/a" when it is missing.
func (f inputs) section(name, ext string) (string, bool) {
	t, ok := f[name+ext]
	return t, ok
}

// skipped returns the reason in name.skip, if there is one.
func (f inputs) skipped(name string) (string, bool) {
	r, ok := f[name+".skip"]
	if !ok {
		return "", false
	}
	r = strings.TrimSpace(firstLine(r))
	if r == "" {
		r = "skipped"
	}
	return r, true
}

// exit returns the exit status recorded for name (0 when none is).
func (f inputs) exit(name string) int {
	n, err := strconv.Atoi(strings.TrimSpace(f[name+".exit"]))
	if err != nil {
		return 0
	}
	return n
}

// missing says why the output of name (go test output in text, present or
// not) gave no figure.
func (f inputs) missing(name, text string, present bool) string {
	switch {
	case !present:
		return "n/a"
	case strings.Contains(text, "no Docker engine answers"):
		return "skipped: no Docker"
	case strings.Contains(text, "--- SKIP"):
		return "skipped"
	case f.exit(name) != 0:
		return fmt.Sprintf("failed (exit %d)", f.exit(name))
	case strings.Contains(text, "--- FAIL") || strings.Contains(text, "\nFAIL"):
		return "failed"
	}
	return "n/a"
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	return s
}

// ---- go test -bench output -------------------------------------------------

// samples holds one value per run (-count) of each unit of a benchmark.
type samples map[string][]float64

// benchLine is a result line of go test -bench: name (with the -GOMAXPROCS
// suffix), iterations, then value/unit pairs.
var benchLine = regexp.MustCompile(`^(Benchmark\S*?)(?:-\d+)?\s+(\d+)\s+(\S.*)$`)

// parseBench returns the results in go test -bench output, by benchmark
// name without its -GOMAXPROCS suffix.
func parseBench(text string) map[string]samples {
	res := map[string]samples{}
	for line := range strings.Lines(text) {
		m := benchLine.FindStringSubmatch(strings.TrimSpace(line))
		if m == nil {
			continue
		}
		fields := strings.Fields(m[3])
		if len(fields)%2 != 0 {
			continue // not a result line after all
		}
		vals := map[string]float64{}
		ok := true
		for i := 0; i < len(fields); i += 2 {
			v, err := strconv.ParseFloat(fields[i], 64)
			if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
				ok = false
				break
			}
			vals[fields[i+1]] = v
		}
		if !ok || len(vals) == 0 {
			continue
		}
		s := res[m[1]]
		if s == nil {
			s = samples{}
			res[m[1]] = s
		}
		for unit, v := range vals {
			s[unit] = append(s[unit], v)
		}
	}
	return res
}

// find returns the results of the benchmark called name, or else of the one
// whose last sub-benchmark element is name (Get finds BenchmarkStore/Get).
func find(res map[string]samples, name string) (samples, bool) {
	if s, ok := res[name]; ok {
		return s, true
	}
	names := make([]string, 0, len(res))
	for n := range res {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if i := strings.LastIndexByte(n, '/'); i >= 0 && n[i+1:] == name {
			return res[n], true
		}
	}
	return nil, false
}

// median returns the median of the unit's values.
func (s samples) median(unit string) (float64, bool) {
	return median(s[unit])
}

// median returns the median of xs: the middle value, or the mean of the two
// middle ones.
func median(xs []float64) (float64, bool) {
	if len(xs) == 0 {
		return 0, false
	}
	ys := append([]float64(nil), xs...)
	sort.Float64s(ys)
	n := len(ys)
	if n%2 == 1 {
		return ys[n/2], true
	}
	return (ys[n/2-1] + ys[n/2]) / 2, true
}

// ---- go test -v log lines ---------------------------------------------------

// herdRun is one ProcessHerd log line.
type herdRun struct {
	procs, perProc, fetches int
	done, latency           time.Duration
}

// herdLine matches the log line of a herd through an Official Account's
// classic access_token, with or without the kind's name (older runs logged
// none); herds through other kinds (ProcessHerd wecom access_token: …) are
// not the report's.
var herdLine = regexp.MustCompile(`ProcessHerd(?: official account classic access_token)?: (\d+) processes × (\d+) goroutines: (\d+) token fetch\(es\), herd done (\S+) after release \(WeChat latency (\S+)\)`)

// parseHerd returns every ProcessHerd line of text (one per -count run).
func parseHerd(text string) []herdRun {
	var runs []herdRun
	for _, m := range herdLine.FindAllStringSubmatch(text, -1) {
		procs, err1 := strconv.Atoi(m[1])
		per, err2 := strconv.Atoi(m[2])
		fetches, err3 := strconv.Atoi(m[3])
		done, err4 := time.ParseDuration(m[4])
		lat, err5 := time.ParseDuration(m[5])
		if err := errors.Join(err1, err2, err3, err4, err5); err != nil {
			continue
		}
		runs = append(runs, herdRun{procs, per, fetches, done, lat})
	}
	return runs
}

// wakeLine matches the check's line, old ("wake latency: 2ms (max …") and
// new (`Refresh("k1", stale="old"): wake latency 2ms (max …`).
var wakeLine = regexp.MustCompile(`wake latency:? (\S+) \(`)

// parseWake returns every wake latency that RefreshWakesWaitersPromptly
// logged in text.
func parseWake(text string) []time.Duration {
	var ds []time.Duration
	for _, m := range wakeLine.FindAllStringSubmatch(text, -1) {
		if d, err := time.ParseDuration(m[1]); err == nil {
			ds = append(ds, d)
		}
	}
	return ds
}

func medianDuration(ds []time.Duration) (time.Duration, bool) {
	xs := make([]float64, len(ds))
	for i, d := range ds {
		xs[i] = float64(d)
	}
	m, ok := median(xs)
	return time.Duration(m), ok
}

// ---- fleet -json -----------------------------------------------------------

// fleetDay is the JSON object examples/fleet -json prints; a key it lacks is
// reported as n/a.
type fleetDay map[string]json.RawMessage

// parseFleet returns the last line of text that is a JSON object with a
// "fetches" key (go run may print other lines), or the whole text if it is one.
func parseFleet(text string) (fleetDay, error) {
	lines := strings.Split(strings.TrimSpace(text), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		l := strings.TrimSpace(lines[i])
		if !strings.HasPrefix(l, "{") {
			continue
		}
		var d fleetDay
		if json.Unmarshal([]byte(l), &d) == nil && d["fetches"] != nil {
			return d, nil
		}
	}
	var d fleetDay
	if err := json.Unmarshal([]byte(text), &d); err != nil {
		return nil, fmt.Errorf("no fleet JSON object: %v", err)
	}
	if d["fetches"] == nil {
		return nil, errors.New(`no fleet JSON object: no "fetches" key`)
	}
	return d, nil
}

func (d fleetDay) num(key string) (float64, bool) {
	var v float64
	if raw, ok := d[key]; !ok || json.Unmarshal(raw, &v) != nil {
		return 0, false
	}
	return v, true
}

func (d fleetDay) str(key string) (string, bool) {
	var v string
	if raw, ok := d[key]; !ok || json.Unmarshal(raw, &v) != nil {
		return "", false
	}
	return v, true
}

// ---- formatting ------------------------------------------------------------

const na = "n/a"

// fmtNs formats nanoseconds with a unit that keeps 2–3 significant digits.
func fmtNs(ns float64) string {
	switch a := math.Abs(ns); {
	case a < 10:
		return trimFloat(ns, 2) + " ns"
	case a < 100:
		return trimFloat(ns, 1) + " ns"
	case a < 1e3:
		return trimFloat(ns, 0) + " ns"
	case a < 1e6:
		return sig(ns/1e3) + " µs"
	case a < 1e9:
		return sig(ns/1e6) + " ms"
	}
	return sig(ns/1e9) + " s"
}

func fmtDuration(d time.Duration) string { return fmtNs(float64(d)) }

// sig formats x with one decimal below 100, none above.
func sig(x float64) string {
	if math.Abs(x) >= 100 {
		return strconv.FormatFloat(x, 'f', 0, 64)
	}
	return trimFloat(x, 1)
}

// trimFloat formats x with at most prec decimals, dropping trailing zeros.
func trimFloat(x float64, prec int) string {
	s := strconv.FormatFloat(x, 'f', prec, 64)
	if strings.Contains(s, ".") {
		s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	}
	if s == "-0" {
		s = "0"
	}
	return s
}

// fmtRatio formats a/b as "×r".
func fmtRatio(a, b float64) string {
	if b == 0 || math.IsNaN(a/b) || math.IsInf(a/b, 0) {
		return na
	}
	r := a / b
	switch {
	case r >= 10:
		return "×" + strconv.FormatFloat(r, 'f', 0, 64)
	case r >= 0.1:
		return "×" + trimFloat(r, 1)
	}
	return "×" + trimFloat(r, 3)
}

// fmtCount formats an integral count with thousands separators.
func fmtCount(x float64) string {
	if x != math.Trunc(x) {
		return trimFloat(x, 2)
	}
	s := strconv.FormatInt(int64(math.Abs(x)), 10)
	var b strings.Builder
	if x < 0 {
		b.WriteByte('-')
	}
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

// ---- the report ------------------------------------------------------------

type herdKind int

const (
	processHerd herdKind = iota // conformance.ProcessHerd, in the backend's module
	coreHerd                    // core's in-process BenchmarkHerd
	noHerd                      // single process: no herd across processes
)

type backend struct {
	id, name, short string // short: its name in the headline
	herd            herdKind
}

var backends = []backend{
	{"memory", "memory", "memory", coreHerd},
	{"func", "function store", "function store", noHerd},
	{"file", "file", "file", processHerd},
	{"redis", "Redis (standalone)", "Redis", processHerd},
	{"postgres", "PostgreSQL", "PostgreSQL", processHerd},
	{"etcd", "etcd (1 member)", "etcd", processHerd},
	{"sqlite", "SQLite (custom store)", "SQLite", processHerd},
}

// storeRow is what the report found for one backend.
type storeRow struct {
	b       backend
	skip    string // the whole backend was not run, and why
	bench   map[string]samples
	benchNA string // why bench has nothing
	herd    []herdRun
	herdNA  string
	herdBad bool    // the herd test failed
	coreH   samples // memory: core's BenchmarkHerd
	wake    []time.Duration
	wakeNA  string
	wakeBad bool // the wake test failed
}

// failed reports whether go test output says a test failed.
func failed(text string) bool {
	return strings.Contains(text, "--- FAIL")
}

func (r storeRow) ns(sub string) (float64, bool) {
	s, ok := find(r.bench, sub)
	if !ok {
		return 0, false
	}
	return s.median("ns/op")
}

func loadStore(f inputs, b backend) storeRow {
	r := storeRow{b: b}
	if why, ok := f.skipped(b.id); ok {
		r.skip = why
		return r
	}
	text, ok := f.section(b.id+".bench", ".txt")
	r.bench = parseBench(text)
	if why := f.missing(b.id+".bench", text, ok); len(r.bench) == 0 && why != na {
		r.benchNA = why // the reason in the first cell, "—" in the others
	}
	switch b.herd {
	case processHerd:
		text, ok := f.section(b.id+".herd", ".txt")
		r.herd = parseHerd(text)
		r.herdBad = failed(text)
		if len(r.herd) == 0 {
			r.herdNA = f.missing(b.id+".herd", text, ok)
		}
	case coreHerd:
		if why, ok := f.skipped("core"); ok {
			r.herdNA = why
			break
		}
		text, ok := f.section("core.herd", ".txt")
		if s, found := find(parseBench(text), "BenchmarkHerd"); found {
			r.coreH = s
		} else {
			r.herdNA = f.missing("core.herd", text, ok)
		}
	case noHerd:
		r.herdNA = "n/a (one process)"
	}
	text, ok = f.section(b.id+".wake", ".txt")
	r.wake = parseWake(text)
	r.wakeBad = failed(text)
	if len(r.wake) == 0 {
		r.wakeNA = f.missing(b.id+".wake", text, ok)
	}
	return r
}

// herdCells returns the fetches and the completion − fetch latency cells.
func (r storeRow) herdCells() (string, string) {
	switch {
	case r.coreH != nil:
		f, ok1 := r.coreH.median("fetches/op")
		o, ok2 := r.coreH.median("herd-ms-over-fetch")
		fc, oc := na, na
		if ok1 {
			fc = trimFloat(f, 2) + " ¹"
		}
		if ok2 {
			oc = fmtNs(o*1e6) + " ¹"
		}
		return fc, oc
	case len(r.herd) > 0:
		var over []time.Duration
		for _, h := range r.herd {
			over = append(over, h.done-h.latency)
		}
		m, _ := medianDuration(over)
		fc := herdFetches(r.herd)
		if r.herdBad {
			fc += " (FAIL)"
		}
		return fc, fmtDuration(m)
	}
	return r.herdNA, r.herdNA
}

// herdFetches is the fetches of every run: "1" when they all fetched once,
// else each run's count.
func herdFetches(runs []herdRun) string {
	same := true
	parts := make([]string, len(runs))
	for i, h := range runs {
		parts[i] = strconv.Itoa(h.fetches)
		same = same && h.fetches == runs[0].fetches
	}
	if same {
		return parts[0]
	}
	return strings.Join(parts, ", ") + " ⚠"
}

func render(f inputs) string {
	meta := parseMeta(f["meta.txt"])
	rows := make([]storeRow, len(backends))
	for i, b := range backends {
		rows[i] = loadStore(f, b)
	}
	var w strings.Builder
	// runs says how many runs a figure comes from.
	runs := "medians of BENCH_COUNT runs"
	switch count := meta["bench_count"]; count {
	case "":
	case "1":
		runs = "single runs, BENCH_COUNT=1"
	default:
		runs = "medians of " + count + " runs"
	}

	w.WriteString("# Benchmarks\n\n")
	w.WriteString(headline(f, rows) + "\n\n")
	fmt.Fprintf(&w, "Generated by `scripts/bench` (re-run it to regenerate this file; `scripts/bench -h` for its options). "+
		"Figures are %s. On a shared or busy machine absolute figures move from run to run: "+
		"compare the ratios (× columns), which move much less.\n\n", runs)

	writeMachine(&w, meta, f)
	writeStores(&w, rows, runs)
	writeListing(&w, f, rows, runs)
	writeLedger(&w, f, rows, runs)
	writeFleet(&w, f)
	writeHot(&w, f, rows)
	writeEvicted(&w, f, runs)
	writeTables(&w, f)
	writeCommands(&w, f)
	return w.String()
}

func parseMeta(text string) map[string]string {
	m := map[string]string{}
	for line := range strings.Lines(text) {
		k, v, ok := strings.Cut(line, ":")
		if ok {
			m[strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
	}
	return m
}

// headline is the summary paragraph at the top.
func headline(f inputs, rows []storeRow) string {
	var s []string

	// The herd.
	var once, notOnce, runs []string
	var overs []time.Duration
	for _, r := range rows {
		if len(r.herd) == 0 {
			continue
		}
		runs = append(runs, r.b.short)
		ok := true
		for _, h := range r.herd {
			ok = ok && h.fetches == 1
			overs = append(overs, h.done-h.latency)
		}
		if ok {
			once = append(once, r.b.short)
		} else {
			notOnce = append(notOnce, fmt.Sprintf("%s (%s)", r.b.short, herdFetches(r.herd)))
		}
	}
	switch {
	case len(runs) == 0:
		s = append(s, "No process herd was measured.")
	case len(notOnce) == 0:
		lo, hi := minMax(overs)
		s = append(s, fmt.Sprintf("Every multi-process backend measured (%s): exactly 1 token fetch for 400 callers in 8 processes, "+
			"the herd done %s after WeChat's 50 ms answer.", strings.Join(once, ", "), span(lo, hi)))
	default:
		s = append(s, fmt.Sprintf("Process herd (400 callers in 8 processes): more than 1 token fetch on %s; exactly 1 on %s.",
			strings.Join(notOnce, ", "), orNone(once)))
	}

	// Store costs relative to memory.
	if mem, ok := rows[0].ns("Get"); ok {
		type ratio struct {
			name string
			r    float64
		}
		var rs []ratio
		for _, r := range rows[1:] {
			if g, ok := r.ns("Get"); ok {
				rs = append(rs, ratio{r.b.short, g / mem})
			}
		}
		if len(rs) > 0 {
			sort.Slice(rs, func(i, j int) bool { return rs[i].r < rs[j].r })
			lo, hi := rs[0], rs[len(rs)-1]
			if len(rs) == 1 {
				s = append(s, fmt.Sprintf("A Get from %s costs %s a memory-store Get (%s).", lo.name, fmtRatio(lo.r, 1), fmtNs(mem)))
			} else {
				s = append(s, fmt.Sprintf("A Get costs %s (%s) to %s (%s) a memory-store Get (%s).",
					fmtRatio(lo.r, 1), lo.name, fmtRatio(hi.r, 1), hi.name, fmtNs(mem)))
			}
		}
	}

	// Wake.
	var wakes []time.Duration
	for _, r := range rows {
		if m, ok := medianDuration(r.wake); ok {
			wakes = append(wakes, m)
		}
	}
	if len(wakes) > 0 {
		lo, hi := minMax(wakes)
		s = append(s, fmt.Sprintf("Waiters wake %s after the holder's fetch ends.", span(lo, hi)))
	}

	// The fleet.
	s = append(s, fleetHeadline(f))

	// The hot path.
	if hot, ok := hotSamples(f, "BenchmarkAccessTokenHot"); ok {
		if ns, ok := hot.median("ns/op"); ok {
			line := "Hot path: AccessToken " + fmtNs(ns)
			if a, ok := hot.median("allocs/op"); ok {
				line += ", " + trimFloat(a, 1) + " allocs/op"
			}
			if par, ok := hotSamples(f, "BenchmarkAccessTokenHotParallel"); ok {
				if pns, ok := par.median("ns/op"); ok {
					line += " (" + fmtNs(pns) + " under RunParallel)"
				}
			}
			s = append(s, line+".")
			if h, ok := otelSamples(f, "BenchmarkAccessTokenHotWithHandler"); ok {
				if hns, ok := h.median("ns/op"); ok && ns > 0 {
					s = append(s, "With the OpenTelemetry handler installed: "+fmtNs(hns)+" ("+fmtRatio(hns, ns)+"): a hit logs no event, so the handler records nothing.")
				}
			}
		}
	}
	return strings.Join(s, " ")
}

func orNone(xs []string) string {
	if len(xs) == 0 {
		return "none"
	}
	return strings.Join(xs, ", ")
}

func minMax(ds []time.Duration) (time.Duration, time.Duration) {
	lo, hi := ds[0], ds[0]
	for _, d := range ds {
		lo, hi = min(lo, d), max(hi, d)
	}
	return lo, hi
}

func span(lo, hi time.Duration) string {
	if fmtDuration(lo) == fmtDuration(hi) {
		return fmtDuration(lo)
	}
	return fmtDuration(lo) + "–" + fmtDuration(hi)
}

// cpuLine is the cpu: line of go test -bench output.
var cpuLine = regexp.MustCompile(`(?m)^cpu: (.+)$`)

func writeMachine(w *strings.Builder, meta map[string]string, f inputs) {
	w.WriteString("## Machine\n\n| | |\n|---|---|\n")
	cpu := meta["cpu"]
	if cpu == "" {
		// go test -bench prints a cpu: line.
		for _, name := range sortedKeys(f) {
			if m := cpuLine.FindStringSubmatch(f[name]); m != nil {
				cpu = m[1]
				break
			}
		}
	}
	item := func(label, v string) {
		if v == "" {
			v = na
		}
		fmt.Fprintf(w, "| %s | %s |\n", label, escapeCell(v))
	}
	item("CPU", cpu)
	item("Cores (nproc)", meta["nproc"])
	item("Go", meta["go"])
	item("Kernel", meta["kernel"])
	item("Date", meta["date"])
	item("Load average at start", meta["loadavg"])
	item("Runs per figure (BENCH_COUNT)", meta["bench_count"])
	if v := meta["bench_time"]; v != "" {
		item("-benchtime", v)
	}
	if v := meta["images"]; v != "" {
		item("Container images", v)
	}
	w.WriteString("\n")
}

func sortedKeys(f inputs) []string {
	ks := make([]string, 0, len(f))
	for k := range f {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

func writeStores(w *strings.Builder, rows []storeRow, runs string) {
	w.WriteString("## Stores\n\n")
	w.WriteString("| Backend | Get | Set | Refresh (no fetch) | Refresh (fetch) | allocs/op Get | Get × memory | Refresh (fetch) × memory | Herd fetches | Herd done − fetch latency | Wake latency |\n")
	w.WriteString("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n")
	memGet, memGetOK := rows[0].ns("Get")
	memFetch, memFetchOK := rows[0].ns("RefreshFetch")
	for _, r := range rows {
		cells := []string{r.b.name}
		if r.skip != "" {
			cells = append(cells, "skipped: "+strings.TrimPrefix(r.skip, "skipped: "))
			for range 9 {
				cells = append(cells, "—")
			}
			writeRow(w, cells)
			continue
		}
		nsCell := func(sub string) string {
			if v, ok := r.ns(sub); ok {
				return fmtNs(v)
			}
			switch {
			case r.benchNA == "":
				return na
			case sub == "Get": // the reason once, in the first cell
				return r.benchNA
			}
			return "—"
		}
		ratioCell := func(sub string, base float64, baseOK bool) string {
			v, ok := r.ns(sub)
			switch {
			case r.benchNA != "":
				return "—"
			case !ok || !baseOK:
				return na
			}
			return fmtRatio(v, base)
		}
		allocs := na
		if s, ok := find(r.bench, "Get"); ok {
			if a, ok := s.median("allocs/op"); ok {
				allocs = trimFloat(a, 1)
			}
		} else if r.benchNA != "" {
			allocs = "—"
		}
		hf, ho := r.herdCells()
		wake := r.wakeNA
		if m, ok := medianDuration(r.wake); ok {
			wake = fmtDuration(m)
			if r.wakeBad {
				wake += " (FAIL)"
			}
		}
		cells = append(cells, nsCell("Get"), nsCell("Set"), nsCell("RefreshUncontended"), nsCell("RefreshFetch"), allocs,
			ratioCell("Get", memGet, memGetOK), ratioCell("RefreshFetch", memFetch, memFetchOK), hf, ho, wake)
		writeRow(w, cells)
	}
	fmt.Fprintf(w, `
- Get, Set, Refresh: `+"`conformance.Benchmark`"+` (a 512-byte token; Refresh (no fetch) finds a newer
  value than its stale one, Refresh (fetch) fetches on every call), time/op and allocs/op, %[1]s.
  RefreshContended is not run. × memory: the backend's time over the memory store's.
- Herd: `+"`conformance.ProcessHerd`"+`, 8 OS processes × 50 goroutines calling AccessToken on a cold start
  against one simulated WeChat answering in 50 ms (classic token API: each fetch invalidates the last). "Herd
  done − fetch latency" is the time from the release of the herd until every caller had its token, minus
  those 50 ms (%[1]s); herd fetches lists every run's count when they differ (⚠).
- ¹ memory: the memory store is single-process; its figures are core's `+"`BenchmarkHerd`"+`: 8 Confs sharing
  one MemoryStore × 1000 goroutines in one process (fetches/op and herd-ms-over-fetch). The function store
  has no herd across processes.
- Wake latency: the conformance check RefreshWakesWaitersPromptly, the longest time between the end of a
  holder's 200 ms fetch and the return of its 20 waiters on 4 store values (%[1]s).
- Redis is one standalone server (BenchmarkCluster is not run), etcd a single member, both in Docker on
  the loopback, like PostgreSQL.

`, runs)
}

// listSub is the sub-benchmark of conformance.Benchmark that lists keys, and
// listKeys how many keys it lists per op.
const (
	listSub  = "ListKeys10000"
	listKeys = 10_000
)

// writeListing writes the Listing keys table: conformance.Benchmark's
// ListKeys10000 per backend. A backend whose benchmark run passed without a
// ListKeys10000 result has a store that is no core.KeyLister (the
// sub-benchmark skips, and go test -bench prints nothing of a skip), unless
// its command did not ask for it (raw outputs of an older scripts/bench).
func writeListing(w *strings.Builder, f inputs, rows []storeRow, runs string) {
	w.WriteString("## Listing keys (wechatconf ls)\n\n")
	w.WriteString("| Backend | ListKeys (10,000 keys) | keys/s | allocs/op | B/op | × memory |\n")
	w.WriteString("|---|--:|--:|--:|--:|--:|\n")
	memNs, memOK := rows[0].ns(listSub)
	for _, r := range rows {
		cells := []string{r.b.name}
		why := ""
		s, found := find(r.bench, listSub)
		name := r.b.id + ".bench"
		text, present := f.section(name, ".txt")
		switch {
		case r.skip != "":
			why = "skipped: " + strings.TrimPrefix(r.skip, "skipped: ")
		case found:
		case r.benchNA != "":
			why = r.benchNA
		case f.exit(name) != 0:
			why = fmt.Sprintf("failed (exit %d)", f.exit(name))
		case !present:
			why = na
		case f.command(name) != "" && !strings.Contains(f.command(name), listSub):
			why = "not run"
		case failed(text):
			why = "failed"
		default:
			why = "not listed (no core.KeyLister)"
		}
		if why != "" {
			cells = append(cells, why)
			for range 4 {
				cells = append(cells, "—")
			}
			writeRow(w, cells)
			continue
		}
		cell := func(unit string, format func(float64) string) string {
			if v, ok := s.median(unit); ok {
				return format(v)
			}
			return na
		}
		count := func(x float64) string { return fmtCount(math.Round(x)) }
		ratio := na
		if v, ok := s.median("ns/op"); ok && memOK {
			ratio = fmtRatio(v, memNs)
		}
		cells = append(cells, cell("ns/op", fmtNs), cell("keys/s", count), cell("allocs/op", count), cell("B/op", count), ratio)
		writeRow(w, cells)
	}
	fmt.Fprintf(w, "\n`conformance.Benchmark`'s %[2]s: `core.KeyLister`'s ListKeys of a prefix holding %[3]s keys "+
		"(512-byte tokens, stored before the timer starts), the call behind `wechatconf ls`; time/op, keys/s (keys listed a second: "+
		"%[3]s × ops / elapsed), allocs/op and B/op, %[1]s. × memory: the backend's time over the memory store's. "+
		"A store that does not implement `core.KeyLister` (the function store, the SQLite example) skips it and reports nothing: "+
		"`wechatconf ls` cannot list it.\n\n", runs, listSub, fmtCount(listKeys))
}

// ledgerOn and ledgerOff are conformance.Benchmark's fetch with and without
// the fetch ledger.
const (
	ledgerOn  = "FetchLedger/on"
	ledgerOff = "FetchLedger/off"
)

// writeLedger writes the Fetch ledger table: conformance.Benchmark's
// FetchLedger/on and /off per backend, and what the ledger adds to a fetch.
func writeLedger(w *strings.Builder, f inputs, rows []storeRow, runs string) {
	w.WriteString("## Fetch ledger: what recording a fetch costs\n\n")
	w.WriteString("| Backend | fetch, ledger on | fetch, ledger off | ledger's cost per fetch | store calls per fetch (on / off) | allocs/op (on / off) | ledger bytes |\n")
	w.WriteString("|---|--:|--:|--:|--:|--:|--:|\n")
	for _, r := range rows {
		on, okOn := findFull(r.bench, ledgerOn)
		off, okOff := findFull(r.bench, ledgerOff)
		if !okOn || !okOff {
			why := na
			switch {
			case r.skip != "":
				why = "skipped: " + strings.TrimPrefix(r.skip, "skipped: ")
			case r.benchNA != "":
				why = r.benchNA
			}
			writeRow(w, []string{r.b.name, why, "—", "—", "—", "—", "—"})
			continue
		}
		med := func(s samples, unit string) (float64, bool) { return s.median(unit) }
		cell := func(s samples, unit string, format func(float64) string) string {
			if v, ok := med(s, unit); ok {
				return format(v)
			}
			return na
		}
		cost := na
		if a, ok := med(on, "ns/op"); ok {
			if b, ok := med(off, "ns/op"); ok {
				cost = fmtNs(a - b)
			}
		}
		one := func(x float64) string { return trimFloat(x, 1) }
		count := func(x float64) string { return fmtCount(math.Round(x)) }
		writeRow(w, []string{r.b.name, cell(on, "ns/op", fmtNs), cell(off, "ns/op", fmtNs), cost,
			cell(on, "store-calls/op", one) + " / " + cell(off, "store-calls/op", one),
			cell(on, "allocs/op", count) + " / " + cell(off, "allocs/op", count),
			cell(on, "ledger-bytes", count)})
	}
	fmt.Fprintf(w, "\n`conformance.Benchmark`'s FetchLedger: one refresh of a `core.Credential` whose fetch answers at once, "+
		"followed by `FlushLedger`, with the fetch ledger on (the default) and off, the ledger already holding its 16 records; %s. "+
		"The ledger's cost is the difference: one Get and one compare-and-refresh of the ledger's key, written after the token "+
		"by a background writer, so the callers do not wait for it. The hot path is unchanged with the ledger on "+
		"(BenchmarkAccessTokenHotLedger in the Hot path table, both in one run).\n\n", runs)
}

// findFull finds sub-benchmark name (a path such as "FetchLedger/on") under
// any parent benchmark.
func findFull(res map[string]samples, name string) (samples, bool) {
	names := make([]string, 0, len(res))
	for n := range res {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if strings.HasSuffix(n, "/"+name) {
			return res[n], true
		}
	}
	return nil, false
}

// evictBench is contrib/otel's benchmark of the handler across evicted
// authorizers, and churnAuthorizers how many authorizers one op observes and
// has evicted (its constant of the same name), maxAuthorizers the registry's
// MaxAuthorizers there.
const (
	evictBench       = "BenchmarkObserveEvictedAuthorizers"
	churnAuthorizers = 100_000
	maxAuthorizers   = 1000
)

// writeEvicted writes the OpenTelemetry section on evicted authorizers:
// BenchmarkObserveEvictedAuthorizers's custom metrics, and its allocations per
// authorizer.
func writeEvicted(w *strings.Builder, f inputs, runs string) {
	w.WriteString("## OpenTelemetry handler: evicted authorizers\n\n")
	if why, ok := f.skipped("otel"); ok {
		fmt.Fprintf(w, "Not measured: %s.\n\n", strings.TrimSuffix(why, "."))
		return
	}
	w.WriteString("| Benchmark | Heap kept per evicted authorizer | Observed after GC | Time per authorizer | CPU per authorizer | Allocated per authorizer | allocs per authorizer |\n")
	w.WriteString("|---|--:|--:|--:|--:|--:|--:|\n")
	text, present := f.section("otel.evict", ".txt")
	s, ok := find(parseBench(text), evictBench)
	if !ok {
		writeRow(w, []string{evictBench, f.missing("otel.evict", text, present), "—", "—", "—", "—", "—"})
	} else {
		cell := func(unit string, format func(float64) string) string {
			if v, ok := s.median(unit); ok {
				return format(v)
			}
			return na
		}
		perAuthorizer := func(format func(float64) string) func(float64) string {
			return func(x float64) string { return format(x / churnAuthorizers) }
		}
		observed := func(x float64) string {
			c := fmtCount(math.Round(x))
			if x > maxAuthorizers {
				c += " ⚠"
			}
			return c
		}
		writeRow(w, []string{evictBench,
			cell("heap-B/evicted-authorizer", func(x float64) string { return trimFloat(x, 1) + " B" }),
			cell("observed-after-GC", observed),
			cell("ns/authorizer", fmtNs), cell("cpu-ns/authorizer", fmtNs),
			cell("B/op", perAuthorizer(func(x float64) string { return fmtCount(math.Round(x)) + " B" })),
			cell("allocs/op", perAuthorizer(func(x float64) string { return trimFloat(x, 1) }))})
	}
	fmt.Fprintf(w, "\n`contrib/otel`'s %[2]s: a service on an Open Platform observes (`Handler.Observe`) the access_token "+
		"of every authorizer it serves while the Component's registry (MaxAuthorizers %[3]s) evicts the least used: "+
		"%[4]s authorizers observed, then evicted, per op (%[1]s; `-benchtime 1x`: each figure is one op's). "+
		"Heap kept per evicted authorizer is the heap still in use after GC over those %[4]s (the goal: about 0 B, "+
		"the handler keeps nothing of an evicted authorizer; it can be below 0); observed after GC is the credentials "+
		"the handler still observes (the goal: at most the %[3]s the registry keeps; ⚠ above); time and CPU per authorizer "+
		"are wall-clock and process CPU (GC included) per authorizer handed out and observed; allocated and allocs per "+
		"authorizer are B/op and allocs/op over %[4]s.\n\n", runs, evictBench, fmtCount(maxAuthorizers), fmtCount(churnAuthorizers))
}

// escapeCell keeps a value from breaking a Markdown table.
func escapeCell(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "|", `\|`), "\n", " ")
}

func writeRow(w *strings.Builder, cells []string) {
	for i := range cells {
		cells[i] = escapeCell(cells[i])
	}
	fmt.Fprintf(w, "| %s |\n", strings.Join(cells, " | "))
}

// fleetRun is one mode of the fleet day.
type fleetRun struct {
	mode, file string
	day        fleetDay
	why        string // no day, and why
}

func loadFleet(f inputs) ([]fleetRun, string) {
	if why, ok := f.skipped("fleet"); ok {
		return nil, why
	}
	runs := []fleetRun{{mode: "wechatconf", file: "fleet-wechatconf"}, {mode: "naive (-naive)", file: "fleet-naive"}}
	for i := range runs {
		r := &runs[i]
		text, ok := f.section(r.file, ".json")
		if !ok {
			r.why = na
			continue
		}
		d, err := parseFleet(text)
		if err != nil {
			if n := f.exit(r.file); n != 0 {
				r.why = fmt.Sprintf("failed (exit %d)", n)
			} else {
				r.why = "unparsable output"
			}
			continue
		}
		r.day = d
	}
	return runs, ""
}

func fleetHeadline(f inputs) string {
	runs, why := loadFleet(f)
	if why != "" {
		return "Fleet day: not measured (" + why + ")."
	}
	wc, nv := runs[0].day, runs[1].day
	if wc == nil && nv == nil {
		return "Fleet day: not measured (no fleet output)."
	}
	base, baseOK := wc.num("fetches")
	desc := func(d fleetDay, expected bool) string {
		if d == nil {
			return na
		}
		s := "n/a fetches"
		if v, ok := d.num("fetches"); ok {
			s = fmtCount(v) + " fetches"
			if e, ok := d.num("expected_fetches"); ok && expected {
				s += " (" + fmtCount(e) + " expected)"
			}
			if !expected && baseOK && base > 0 {
				s += " (" + fmtRatio(v, base) + ")"
			}
		}
		if v, ok := d.num("errors_40001"); ok {
			s += " and " + fmtCount(v) + " caller-visible 40001s"
		}
		return s
	}
	s := "Fleet day"
	if p, ok := wc.num("procs"); ok {
		s += fmt.Sprintf(" (%s processes", fmtCount(p))
		if h, ok := wc.num("sim_hours"); ok {
			s += fmt.Sprintf(", %s simulated hours", trimFloat(h, 1))
		}
		s += ")"
	}
	s += ": wechatconf"
	if st, ok := wc.str("store"); ok {
		s += " on the " + st + " store"
	}
	return s + " " + desc(wc, true) + " vs naive " + desc(nv, false) + "."
}

func writeFleet(w *strings.Builder, f inputs) {
	w.WriteString("## Fleet day\n\n")
	runs, why := loadFleet(f)
	if why == "" && runs[0].why == na && runs[1].why == na {
		why = "no fleet output"
	}
	if why != "" {
		fmt.Fprintf(w, "Not measured: %s.\n\n", strings.TrimSuffix(why, "."))
		return
	}
	w.WriteString("| Mode | Store | Processes | Simulated hours | Fetches | Expected | Fetches × wechatconf | 40001 errors seen by callers | Calls | AccessToken p50 | AccessToken p99 | Wall time |\n")
	w.WriteString("|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n")
	base, baseOK := runs[0].day.num("fetches")
	for _, r := range runs {
		if r.day == nil {
			cells := []string{r.mode, r.why}
			for range 10 {
				cells = append(cells, "—")
			}
			writeRow(w, cells)
			continue
		}
		d := r.day
		num := func(key string, format func(float64) string) string {
			if v, ok := d.num(key); ok {
				return format(v)
			}
			return na
		}
		store, ok := d.str("store")
		if !ok {
			store = na
		}
		ratio := na
		if v, ok := d.num("fetches"); ok && baseOK {
			ratio = fmtRatio(v, base)
		}
		writeRow(w, []string{r.mode, store,
			num("procs", fmtCount), num("sim_hours", func(x float64) string { return trimFloat(x, 1) }),
			num("fetches", fmtCount), num("expected_fetches", fmtCount), ratio, num("errors_40001", fmtCount),
			num("calls", fmtCount), num("access_token_p50_ns", fmtNs), num("access_token_p99_ns", fmtNs),
			num("duration_s", func(x float64) string { return trimFloat(x, 1) + " s" })})
	}
	w.WriteString("\n`go run ./examples/fleet -json`: a simulated day of 8 processes sharing one store against the simulated\n" +
		"WeChat API; naive: each process fetches its own token (classic API), as instances that do not share a store do.\n" +
		"Fetches × wechatconf is the mode's fetches over wechatconf's.\n\n")
}

func hotSamples(f inputs, name string) (samples, bool) {
	if _, skipped := f.skipped("core"); skipped {
		return nil, false
	}
	return find(parseBench(f["core.hot.txt"]), name)
}

// hotBench is one row of the Hot path table: a benchmark and the raw output
// (core.hot or otel.bench) and section (core or otel) it comes from.
type hotBench struct{ name, file, section string }

var hotBenches = []hotBench{
	{"BenchmarkAccessTokenHot", "core.hot", "core"},
	{"BenchmarkAccessTokenHotParallel", "core.hot", "core"},
	{"BenchmarkAccessTokenHotLedger/ledger=on", "core.hot", "core"},
	{"BenchmarkAccessTokenHotLedger/ledger=off", "core.hot", "core"},
	{"BenchmarkAccessTokenHotWithHandler", "otel.bench", "otel"},
	{"BenchmarkHandleOther", "otel.bench", "otel"},
	{"BenchmarkHandleFetched", "otel.bench", "otel"},
}

// otelSamples returns the results of contrib/otel's benchmark name.
func otelSamples(f inputs, name string) (samples, bool) {
	if _, skipped := f.skipped("otel"); skipped {
		return nil, false
	}
	return find(parseBench(f["otel.bench.txt"]), name)
}

func writeHot(w *strings.Builder, f inputs, rows []storeRow) {
	w.WriteString("## Hot path\n\n")
	coreWhy, coreSkipped := f.skipped("core")
	otelWhy, otelSkipped := f.skipped("otel")
	_, otelRan := f.section("otel.bench", ".txt")
	if coreSkipped && (otelSkipped || !otelRan) {
		fmt.Fprintf(w, "Not measured: %s.\n\n", coreWhy)
		return
	}
	w.WriteString("| Benchmark | time/op | allocs/op | B/op | × AccessTokenHot |\n|---|--:|--:|--:|--:|\n")
	base, baseOK := 0.0, false
	if s, ok := hotSamples(f, "BenchmarkAccessTokenHot"); ok {
		base, baseOK = s.median("ns/op")
	}
	parsed := map[string]map[string]samples{}
	for _, hb := range hotBenches {
		if why, ok := f.skipped(hb.section); ok {
			writeRow(w, []string{hb.name, "skipped: " + strings.TrimPrefix(why, "skipped: "), "—", "—", "—"})
			continue
		}
		text, present := f.section(hb.file, ".txt")
		res, ok := parsed[hb.file]
		if !ok {
			res = parseBench(text)
			parsed[hb.file] = res
		}
		s, ok := find(res, hb.name)
		if !ok {
			writeRow(w, []string{hb.name, f.missing(hb.file, text, present), "—", "—", "—"})
			continue
		}
		cell := func(unit string, format func(float64) string) string {
			if v, ok := s.median(unit); ok {
				return format(v)
			}
			return na
		}
		ratio := na
		if v, ok := s.median("ns/op"); ok && baseOK {
			ratio = fmtRatio(v, base)
		}
		one := func(x float64) string { return trimFloat(x, 1) }
		writeRow(w, []string{hb.name, cell("ns/op", fmtNs), cell("allocs/op", one), cell("B/op", one), ratio})
	}
	w.WriteString("\nAccessToken with a valid token in process memory (no store read, no I/O), `core` package; " +
		"the Parallel figure is time per call across GOMAXPROCS goroutines.")
	if baseOK {
		var parts []string
		for _, r := range rows {
			if g, ok := r.ns("Get"); ok && base > 0 {
				parts = append(parts, fmt.Sprintf("%s %s", r.b.name, fmtRatio(g, base)))
			}
		}
		if len(parts) > 0 {
			w.WriteString(" The stores are read only when a token is refreshed; a store Get costs, against a hot AccessToken: " +
				strings.Join(parts, ", ") + ".")
		}
	}
	if otelSkipped {
		fmt.Fprintf(w, " The OpenTelemetry handler (contrib/otel) was not measured: %s.", otelWhy)
	} else {
		w.WriteString(" BenchmarkAccessTokenHotWithHandler is the same hot path with contrib/otel's slog handler installed " +
			"(`wechatconfotel.NewHandler`, a meter provider with a manual reader): on a hit the handler records nothing, " +
			"no metric, no span, no log record, since the hot path logs no event and so never calls it; " +
			"its × AccessTokenHot is the whole cost of the hook there. " +
			"BenchmarkHandleOther is what the handler adds to a log record that is not a wechatconf event (logging off: no next handler); " +
			"BenchmarkHandleFetched is one core.EventFetched record turned into metrics and spans, paid once per token fetch.")
	}
	w.WriteString("\n\n")
}

// ---- results tables that tests log (conformance.ReportRow) -----------------

// rowMarker begins the line conformance.ReportRow logs (conformance.RowMarker;
// this command uses the standard library only, so it is repeated here).
const rowMarker = "wechatconf-row: "

// rowsSuffix ends the name of a table section's raw outputs: <section>.rows.txt,
// .rows.exit, .rows.skip, .rows.cmd.
const rowsSuffix = ".rows"

// loggedRow is one conformance.ReportRow line: the table it belongs to, and
// its cells by column, in order; or one conformance.ReportNote line: the
// table and a note on it (no columns).
type loggedRow struct {
	Table   string   `json:"table"`
	Columns []string `json:"columns"`
	Values  []string `json:"values"`
	Note    string   `json:"note"`
}

// parseRows returns every ReportRow and ReportNote line of go test -v
// output, in order; a line whose JSON does not parse, whose columns and
// values differ in number, or that is neither a row nor a note, is left
// out.
func parseRows(text string) []loggedRow {
	var rows []loggedRow
	for line := range strings.Lines(text) {
		_, payload, ok := strings.Cut(line, rowMarker)
		if !ok {
			continue
		}
		var r loggedRow
		if json.Unmarshal([]byte(strings.TrimSpace(payload)), &r) != nil || r.Table == "" ||
			len(r.Columns) != len(r.Values) || (len(r.Columns) == 0) == (r.Note == "") {
			continue
		}
		rows = append(rows, r)
	}
	return rows
}

// resultTable is every row logged for one table name, and the sections
// whose output held them.
type resultTable struct {
	name     string
	columns  []string // the union of the rows' columns, in order first seen
	rows     []map[string]string
	notes    []string // distinct, in order first seen
	sections []string
}

// tableSections returns the names of the table sections present in f (any
// <section>.rows.txt, .rows.skip, .rows.exit or .rows.cmd): those whose
// command is in commands.txt in the order scripts/bench ran them, then the
// others by name.
func tableSections(f inputs) []string {
	seen := map[string]bool{}
	var names []string
	for k := range f {
		for _, ext := range []string{".txt", ".skip", ".exit", ".cmd"} {
			if base, ok := strings.CutSuffix(k, rowsSuffix+ext); ok && base != "" && !seen[base] {
				seen[base] = true
				names = append(names, base)
			}
		}
	}
	cmds := strings.Split(f["commands.txt"], "\n")
	for i := range cmds {
		cmds[i] = strings.TrimSpace(cmds[i])
	}
	pos := func(sec string) int {
		if cmd := f.command(sec + rowsSuffix); cmd != "" {
			if i := slices.Index(cmds, cmd); i >= 0 {
				return i
			}
		}
		return len(cmds)
	}
	sort.Slice(names, func(i, j int) bool {
		if pi, pj := pos(names[i]), pos(names[j]); pi != pj {
			return pi < pj
		}
		return names[i] < names[j]
	})
	return names
}

// command returns the command that wrote name.txt, from name.cmd.
func (f inputs) command(name string) string {
	return strings.TrimSpace(firstLine(f[name+".cmd"]))
}

// writeTables writes one section per table that tests logged rows of, in the
// order the tables first appear (table sections by name, lines in order), and
// then what the table sections that logged no row say.
func writeTables(w *strings.Builder, f inputs) {
	var tables []*resultTable
	byName := map[string]*resultTable{}
	var empty []string // why a table section gave no row
	for _, sec := range tableSections(f) {
		name := sec + rowsSuffix
		if why, ok := f.skipped(name); ok {
			if why != "not selected" {
				empty = append(empty, fmt.Sprintf("`%s`: skipped: %s.", sec, strings.TrimPrefix(why, "skipped: ")))
			}
			continue
		}
		text, present := f.section(name, ".txt")
		rows := parseRows(text)
		if !slices.ContainsFunc(rows, func(r loggedRow) bool { return r.Note == "" }) {
			why := f.missing(name, text, present)
			if why == na {
				why = "no rows logged"
				if present && strings.Contains(text, "no tests to run") {
					why = "no rows logged (no test matched)"
				}
			} else if !strings.HasPrefix(why, "skipped") {
				why += ", no rows logged"
			}
			line := fmt.Sprintf("`%s`: %s", sec, why)
			if cmd := f.command(name); cmd != "" {
				line += ": `" + cmd + "`"
			}
			empty = append(empty, line+".")
			continue
		}
		for _, r := range rows {
			t := byName[r.Table]
			if t == nil {
				t = &resultTable{name: r.Table}
				byName[r.Table] = t
				tables = append(tables, t)
			}
			if !slices.Contains(t.sections, sec) {
				t.sections = append(t.sections, sec)
			}
			if r.Note != "" {
				if !slices.Contains(t.notes, r.Note) {
					t.notes = append(t.notes, r.Note)
				}
				continue
			}
			cells := map[string]string{}
			for i, c := range r.Columns {
				if !slices.Contains(t.columns, c) {
					t.columns = append(t.columns, c)
				}
				cells[c] = r.Values[i]
			}
			t.rows = append(t.rows, cells)
		}
	}
	for _, t := range tables {
		if len(t.rows) == 0 {
			continue // notes on a table no test logged a row of
		}
		fmt.Fprintf(w, "## %s\n\n", escapeCell(t.name))
		writeRow(w, slices.Clone(t.columns))
		w.WriteString("|" + strings.Repeat("---|", len(t.columns)) + "\n")
		for _, r := range t.rows {
			cells := make([]string, len(t.columns))
			for i, c := range t.columns {
				v, ok := r[c]
				if !ok {
					v = "—" // a column this row did not log
				}
				cells[i] = v
			}
			writeRow(w, cells)
		}
		w.WriteString("\n")
		for _, n := range t.notes {
			w.WriteString(n + "\n\n")
		}
		for _, sec := range t.sections {
			name := sec + rowsSuffix
			line := "Logged by the tests of `scripts/bench " + sec + "`"
			if cmd := f.command(name); cmd != "" {
				line += ": `" + cmd + "`"
			}
			if n := f.exit(name); n != 0 {
				line += fmt.Sprintf(". That run failed (exit %d): the rows are those logged before it failed or by the tests that passed", n)
			} else if failed(f[name+".txt"]) {
				line += ". A test of that run failed: the rows are those logged before it failed or by the tests that passed"
			}
			w.WriteString(line + ".\n")
		}
		w.WriteString("\n")
	}
	if len(empty) > 0 {
		w.WriteString("## Tables not produced\n\nThese table sections of `scripts/bench` logged no results table row (`conformance.ReportRow`):\n\n")
		for _, e := range empty {
			w.WriteString("- " + e + "\n")
		}
		w.WriteString("\n")
	}
}

func writeCommands(w *strings.Builder, f inputs) {
	w.WriteString("## Commands\n\n")
	cmds := strings.TrimSpace(f["commands.txt"])
	if cmds == "" {
		w.WriteString("n/a (no commands.txt)\n")
		return
	}
	w.WriteString("Run from the repository root by `scripts/bench`:\n\n```sh\n" + cmds + "\n```\n")
}
