package metrics

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
)

// The alerting rules and the dashboard shipped under packaging/ (installed
// under /usr/share/doc/rarp-replay/examples/).
var (
	alertsFile    = filepath.Join("..", "..", "packaging", "prometheus", "rarp-replay-alerts.yml")
	dashboardFile = filepath.Join("..", "..", "packaging", "grafana", "rarp-replay-dashboard.json")
)

// knownNames returns every metric name a PromQL expression may use against
// rarp-replay's /metrics: the families the registry serves (a histogram's
// and a summary's series suffixes included) and up, which Prometheus
// records for every target it scrapes.
func knownNames(t *testing.T) map[string]bool {
	t.Helper()
	names := map[string]bool{"up": true}
	for _, mf := range gather(t, startSources()) {
		names[mf.GetName()] = true
		switch mf.GetType() {
		case dto.MetricType_HISTOGRAM:
			names[mf.GetName()+"_bucket"], names[mf.GetName()+"_sum"], names[mf.GetName()+"_count"] = true, true, true
		case dto.MetricType_SUMMARY:
			names[mf.GetName()+"_sum"], names[mf.GetName()+"_count"] = true, true
		}
	}
	return names
}

var (
	promStrings  = regexp.MustCompile("\"(?:[^\"\\\\]|\\\\.)*\"|'(?:[^'\\\\]|\\\\.)*'|`[^`]*`")
	promMatchers = regexp.MustCompile(`\{[^{}]*\}`)
	promRanges   = regexp.MustCompile(`\[[^\[\]]*\]`)
	promGrouping = regexp.MustCompile(`(?i)\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)`)
	promTokens   = regexp.MustCompile(`[0-9][0-9.]*(?:[eE][+-]?[0-9]+)?[a-zA-Z]*|\$[a-zA-Z_]\w*|[a-zA-Z_:][a-zA-Z0-9_:]*(?:\s*\()?`)
	promKeywords = map[string]bool{
		"and": true, "or": true, "unless": true, "bool": true, "offset": true, "by": true, "without": true,
		"on": true, "ignoring": true, "group_left": true, "group_right": true, "inf": true, "nan": true, "atan2": true,
	}
)

// metricNames returns the metric names a PromQL expression selects: every
// identifier outside strings, label matchers, ranges and grouping clauses
// that is not a function, an aggregation, a keyword or a number.
func metricNames(expr string) []string {
	s := promStrings.ReplaceAllString(expr, `""`)
	s = promMatchers.ReplaceAllString(s, " ")
	s = promRanges.ReplaceAllString(s, " ")
	s = promGrouping.ReplaceAllString(s, " ")
	var names []string
	for _, tok := range promTokens.FindAllString(s, -1) {
		switch {
		case tok[0] >= '0' && tok[0] <= '9', tok[0] == '$', strings.HasSuffix(tok, "("), promKeywords[strings.ToLower(tok)]:
			continue
		}
		if !slices.Contains(names, tok) {
			names = append(names, tok)
		}
	}
	return names
}

// TestMetricNames: metricNames finds the metrics, and only the metrics, of
// the expressions the rules and the dashboard use.
func TestMetricNames(t *testing.T) {
	for _, tt := range []struct {
		expr string
		want []string
	}{
		{`up{job="rarp-replay"} == 0`, []string{"up"}},
		{`absent(rarp_replay_build_info{job="rarp-replay"})`, []string{"rarp_replay_build_info"}},
		{`increase(rarp_replay_drops_total{job="rarp-replay", reason=~"cycle-limit|port-rate-limit"}[15m]) > 0`, []string{"rarp_replay_drops_total"}},
		{"sum by (instance) (increase(a_total[30m])) > 5\nand\nsum by (instance) (increase(b_total[30m])) > sum without(job) (c_total offset 5m)", []string{"a_total", "b_total", "c_total"}},
		{`histogram_quantile(0.9, sum by (instance, le) (rate(x_bucket{instance=~"$instance"}[$__rate_interval])))`, []string{"x_bucket"}},
		{`process_open_fds / on(instance) group_left(version) process_max_fds > 0.8`, []string{"process_open_fds", "process_max_fds"}},
		{`time() - (last_seconds{a="}"} > 0)`, []string{"last_seconds"}},
		{`topk(5, nope_total) or vector(1e3)`, []string{"nope_total"}},
	} {
		if got := metricNames(tt.expr); !slices.Equal(got, tt.want) {
			t.Errorf("metricNames(%q) = %q, want %q", tt.expr, got, tt.want)
		}
	}
}

// checkExpr reports the metrics expr uses that rarp-replay does not serve.
func checkExpr(t *testing.T, where, expr string, known map[string]bool) {
	t.Helper()
	names := metricNames(expr)
	if len(names) == 0 {
		t.Errorf("%s: no metric in %q", where, expr)
	}
	for _, n := range names {
		if !known[n] {
			t.Errorf("%s: %q uses %s, which rarp-replay does not serve (docs/METRICS.md)", where, expr, n)
		}
	}
}

// TestAlertRules: the alerting rules parse, each alert is complete (an
// expression, a severity, a summary and a description), and every metric
// they use is one rarp-replay serves.
func TestAlertRules(t *testing.T) {
	src, err := os.ReadFile(alertsFile)
	if err != nil {
		t.Fatal(err)
	}
	doc, err := parseYAML(string(src))
	if err != nil {
		t.Fatalf("%s: %v", alertsFile, err)
	}
	known := knownNames(t)
	top, ok := doc.(map[string]any)
	groups, gok := top["groups"].([]any)
	if !ok || !gok || len(top) != 1 || len(groups) == 0 {
		t.Fatalf("%s: want a map with one key, groups, a non-empty list; got %#v", alertsFile, doc)
	}
	durations := regexp.MustCompile(`^([0-9]+[smhdwy])+$`)
	seen := map[string]bool{}
	for gi, g := range groups {
		group, _ := g.(map[string]any)
		name, _ := group["name"].(string)
		rules, _ := group["rules"].([]any)
		if name == "" || len(rules) == 0 {
			t.Errorf("group %d: want a name and rules, got %#v", gi, g)
			continue
		}
		for ri, r := range rules {
			rule, _ := r.(map[string]any)
			alert, _ := rule["alert"].(string)
			where := fmt.Sprintf("group %s rule %d (%s)", name, ri, alert)
			for k := range rule {
				if !slices.Contains([]string{"alert", "expr", "for", "keep_firing_for", "labels", "annotations"}, k) {
					t.Errorf("%s: unknown field %q", where, k)
				}
			}
			if alert == "" || seen[alert] {
				t.Errorf("%s: want an alert name, unique", where)
			}
			seen[alert] = true
			expr, _ := rule["expr"].(string)
			checkExpr(t, where, expr, known)
			if f, ok := rule["for"]; ok && !durations.MatchString(fmt.Sprint(f)) {
				t.Errorf("%s: for %q is not a duration", where, f)
			}
			labels, _ := rule["labels"].(map[string]any)
			if sev, _ := labels["severity"].(string); !slices.Contains([]string{"critical", "warning", "info"}, sev) {
				t.Errorf("%s: severity %q, want critical, warning or info", where, sev)
			}
			ann, _ := rule["annotations"].(map[string]any)
			for _, k := range []string{"summary", "description"} {
				if s, _ := ann[k].(string); strings.TrimSpace(s) == "" {
					t.Errorf("%s: no %s annotation", where, k)
				}
			}
		}
	}
	for _, want := range []string{"RarpReplayDown", "RarpReplayProgramErrors", "RarpReplayBindingsUnverified", "RarpReplayNetlinkResyncs",
		"RarpReplayStateSaveErrors", "RarpReplayPcapKernelDrops", "RarpReplayNoPortsServed"} {
		if !seen[want] {
			t.Errorf("no alert %s", want)
		}
	}
}

// TestAlertRulesPromtool: Prometheus' own checker accepts the rules, and
// its rule tester (promtool test rules) sees each alert fire on a series
// that should fire it, with its labels and its annotations filled in, and
// not fire on one that should not; where promtool is installed (Debian:
// the prometheus package).
func TestAlertRulesPromtool(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool is not installed (Debian: apt-get install prometheus)")
	}
	if out, err := exec.Command(promtool, "check", "rules", alertsFile).CombinedOutput(); err != nil {
		t.Errorf("promtool check rules: %v\n%s", err, out)
	}
	src, err := os.ReadFile(alertsFile)
	if err != nil {
		t.Fatal(err)
	}
	doc, err := parseYAML(string(src))
	if err != nil {
		t.Fatal(err)
	}
	rules := map[string]map[string]any{}
	for _, g := range doc.(map[string]any)["groups"].([]any) {
		for _, r := range g.(map[string]any)["rules"].([]any) {
			rules[r.(map[string]any)["alert"].(string)] = r.(map[string]any)
		}
	}
	type series struct {
		Series string `json:"series"`
		Values string `json:"values"`
	}
	const leaf = `job="rarp-replay", instance="leaf1:9465"`
	leafLabels := map[string]string{"job": "rarp-replay", "instance": "leaf1:9465"}
	// Each case: input series, the minute the alert fires at with these
	// labels (besides its own), and a minute it must not have fired yet.
	cases := []struct {
		alert   string
		input   []series
		quiet   int
		fires   int
		labels  map[string]string
		value   string   // {{ $value }}, where the annotations use it
		without []series // the same alert must not fire on these
	}{
		{alert: "RarpReplayDown", input: []series{{`up{` + leaf + `}`, "1 0x10"}}, quiet: 3, fires: 10, labels: leafLabels,
			without: []series{{`up{` + leaf + `}`, "1x10"}}},
		{alert: "RarpReplayAbsent", input: []series{{`up{` + leaf + `}`, "1x20"}}, quiet: 5, fires: 15, labels: map[string]string{"job": "rarp-replay"},
			without: []series{{`rarp_replay_build_info{` + leaf + `, version="1.0.0", commit="abc", goversion="go1.26"}`, "1x20"}}},
		{alert: "RarpReplayRestarting", input: []series{{`process_start_time_seconds{` + leaf + `}`, "100 200 300 400x10"}}, quiet: 2, fires: 5, labels: leafLabels, value: "3",
			without: []series{{`process_start_time_seconds{` + leaf + `}`, "100 200 200x10"}}},
		{alert: "RarpReplayNoPortsServed", input: []series{{`rarp_replay_captured_ports{` + leaf + `}`, "1 0x15"}}, quiet: 5, fires: 12, labels: leafLabels,
			without: []series{{`rarp_replay_captured_ports{` + leaf + `}`, "1x15"}}},
		{alert: "RarpReplayProgramErrors", input: []series{{`rarp_replay_program_errors_total{` + leaf + `}`, "0 0 0 1x5"}}, quiet: 2, fires: 5, labels: leafLabels,
			without: []series{{`rarp_replay_program_errors_total{` + leaf + `}`, "0x10"}}},
		{alert: "RarpReplayBindingsUnverified", input: []series{
			{`rarp_replay_bindings_failed_total{` + leaf + `}`, "0+1x30"}, {`rarp_replay_bindings_verified_total{` + leaf + `}`, "0x30"}},
			quiet: 3, fires: 30, labels: map[string]string{"instance": "leaf1:9465"},
			without: []series{{`rarp_replay_bindings_failed_total{` + leaf + `}`, "0+1x30"}, {`rarp_replay_bindings_verified_total{` + leaf + `}`, "0+2x30"}}},
		{alert: "RarpReplayMigrationsSlow", input: []series{ // every migration between 1 and 2.5 s
			{`rarp_replay_rarp_to_programmed_seconds_bucket{` + leaf + `, le="1"}`, "0x60"},
			{`rarp_replay_rarp_to_programmed_seconds_bucket{` + leaf + `, le="2.5"}`, "0+1x60"},
			{`rarp_replay_rarp_to_programmed_seconds_bucket{` + leaf + `, le="+Inf"}`, "0+1x60"}},
			quiet: 10, fires: 40, labels: map[string]string{"instance": "leaf1:9465"},
			without: []series{ // every one under 1 s
				{`rarp_replay_rarp_to_programmed_seconds_bucket{` + leaf + `, le="1"}`, "0+1x60"},
				{`rarp_replay_rarp_to_programmed_seconds_bucket{` + leaf + `, le="2.5"}`, "0+1x60"},
				{`rarp_replay_rarp_to_programmed_seconds_bucket{` + leaf + `, le="+Inf"}`, "0+1x60"}}},
		{alert: "RarpReplayProbeSendErrors", input: []series{{`rarp_replay_probe_send_errors_total{` + leaf + `}`, "0 0 0 2x5"}}, quiet: 2, fires: 5, labels: leafLabels,
			without: []series{{`rarp_replay_probe_send_errors_total{` + leaf + `}`, "0x10"}}},
		{alert: "RarpReplayProbesRateLimited", input: []series{{`rarp_replay_probes_rate_limited_total{` + leaf + `}`, "0 0 0 9x5"}}, quiet: 2, fires: 5, labels: leafLabels,
			without: []series{{`rarp_replay_probes_rate_limited_total{` + leaf + `}`, "0x10"}}},
		{alert: "RarpReplayMigrationsDropped", input: []series{{`rarp_replay_drops_total{` + leaf + `, reason="cycle-limit"}`, "0 0 0 5x5"}}, quiet: 2, fires: 5,
			labels:  map[string]string{"job": "rarp-replay", "instance": "leaf1:9465", "reason": "cycle-limit"},
			without: []series{{`rarp_replay_drops_total{` + leaf + `, reason="unknown-mac"}`, "0 0 0 5x5"}}},
		{alert: "RarpReplayNetlinkResyncs", input: []series{{`rarp_replay_netlink_resyncs_total{` + leaf + `, subscription="neigh"}`, "0+1x20"}}, quiet: 2, fires: 15,
			labels:  map[string]string{"job": "rarp-replay", "instance": "leaf1:9465", "subscription": "neigh"},
			without: []series{{`rarp_replay_netlink_resyncs_total{` + leaf + `, subscription="neigh"}`, "0 1 1 2x17"}}},
		{alert: "RarpReplayStateSaveErrors", input: []series{{`rarp_replay_state_save_errors_total{` + leaf + `}`, "0 0 0 1x5"}}, quiet: 2, fires: 5, labels: leafLabels,
			without: []series{{`rarp_replay_state_save_errors_total{` + leaf + `}`, "0x10"}}},
		{alert: "RarpReplayStateLoadError", input: []series{{`rarp_replay_state_load_errors_total{` + leaf + `}`, "0 0 0 1x5"}}, quiet: 2, fires: 5, labels: leafLabels,
			without: []series{{`rarp_replay_state_load_errors_total{` + leaf + `}`, "0x10"}}},
		{alert: "RarpReplayPcapKernelDrops", input: []series{{`rarp_replay_pcap_kernel_drops_total{` + leaf + `, port="swp1"}`, "0 0 0 7x5"}}, quiet: 2, fires: 5,
			labels:  map[string]string{"job": "rarp-replay", "instance": "leaf1:9465", "port": "swp1"},
			without: []series{{`rarp_replay_pcap_kernel_drops_total{` + leaf + `, port="swp1"}`, "3x10"}}},
		{alert: "RarpReplayMetricsConnectionsRefused", input: []series{{`rarp_replay_metrics_connections_refused_total{` + leaf + `}`, "0 0 0 4x5"}}, quiet: 2, fires: 5, labels: leafLabels,
			without: []series{{`rarp_replay_metrics_connections_refused_total{` + leaf + `}`, "0x10"}}},
		{alert: "RarpReplayFileDescriptors", input: []series{{`process_open_fds{` + leaf + `}`, "100 900x15"}, {`process_max_fds{` + leaf + `}`, "1000x15"}},
			quiet: 5, fires: 12, labels: leafLabels,
			without: []series{{`process_open_fds{` + leaf + `}`, "100 700x15"}, {`process_max_fds{` + leaf + `}`, "1000x15"}}},
	}
	type expAlert struct {
		ExpLabels      map[string]string `json:"exp_labels"`
		ExpAnnotations map[string]string `json:"exp_annotations"`
	}
	type ruleTest struct {
		EvalTime  string     `json:"eval_time"`
		Alertname string     `json:"alertname"`
		ExpAlerts []expAlert `json:"exp_alerts"`
	}
	type test struct {
		Name        string     `json:"name"`
		Interval    string     `json:"interval"`
		InputSeries []series   `json:"input_series"`
		Alerts      []ruleTest `json:"alert_rule_test"`
	}
	var tests []test
	covered := map[string]bool{}
	for _, c := range cases {
		r, ok := rules[c.alert]
		if !ok {
			t.Errorf("no alert %s in %s", c.alert, alertsFile)
			continue
		}
		covered[c.alert] = true
		labels := map[string]string{}
		for k, v := range r["labels"].(map[string]any) {
			labels[k] = v.(string)
		}
		for k, v := range c.labels {
			labels[k] = v
		}
		annotations := map[string]string{}
		for k, v := range r["annotations"].(map[string]any) {
			a := strings.ReplaceAll(v.(string), "{{ $value }}", c.value)
			for l, lv := range labels {
				a = strings.ReplaceAll(a, "{{ $labels."+l+" }}", lv)
			}
			if strings.Contains(a, "{{") {
				t.Errorf("%s: annotation %s %q: a template this test does not fill in", c.alert, k, a)
			}
			annotations[k] = a
		}
		at := func(min int) string { return strconv.Itoa(min) + "m" }
		tests = append(tests,
			test{Name: c.alert + " fires", Interval: "1m", InputSeries: c.input, Alerts: []ruleTest{
				{EvalTime: at(c.quiet), Alertname: c.alert, ExpAlerts: []expAlert{}},
				{EvalTime: at(c.fires), Alertname: c.alert, ExpAlerts: []expAlert{{labels, annotations}}},
			}},
			test{Name: c.alert + " stays quiet", Interval: "1m", InputSeries: c.without, Alerts: []ruleTest{
				{EvalTime: at(c.fires), Alertname: c.alert, ExpAlerts: []expAlert{}},
			}})
	}
	for name := range rules {
		if !covered[name] {
			t.Errorf("alert %s has no promtool test case", name)
		}
	}
	abs, err := filepath.Abs(alertsFile)
	if err != nil {
		t.Fatal(err)
	}
	// JSON is YAML: promtool reads it as its test file.
	b, err := json.MarshalIndent(map[string]any{"rule_files": []string{abs}, "evaluation_interval": "1m", "tests": tests}, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	testFile := filepath.Join(t.TempDir(), "alerts_test.yml")
	if err := os.WriteFile(testFile, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(promtool, "test", "rules", testFile).CombinedOutput(); err != nil {
		t.Errorf("promtool test rules: %v\n%s", err, out)
	}
}

var labelValues = regexp.MustCompile(`^label_values\((.*),\s*[a-zA-Z_][a-zA-Z0-9_]*\s*\)$`)

// TestDashboard: the Grafana dashboard is valid JSON with a title and uid;
// each panel has an id of its own and a place on the 24-column grid, reads
// the dashboard's data source, and has queries (rows excepted); every
// selector filters on the $instance variable; and every metric the panels
// and variables use is one rarp-replay serves.
func TestDashboard(t *testing.T) {
	src, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		UID, Title string
		Panels     []struct {
			ID          int
			Type, Title string
			Datasource  struct{ UID string }
			GridPos     struct{ X, Y, W, H int }
			Targets     []struct{ Expr, RefID string }
		}
		Templating struct {
			List []struct {
				Name, Type, Definition string
			}
		}
	}
	if err := json.Unmarshal(src, &d); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	if d.UID == "" || d.Title == "" || len(d.Panels) == 0 {
		t.Fatalf("%s: uid %q, title %q, %d panels; want all three", dashboardFile, d.UID, d.Title, len(d.Panels))
	}
	known := knownNames(t)
	ids := map[int]bool{}
	used := map[string]bool{}
	for _, p := range d.Panels {
		where := fmt.Sprintf("panel %d (%s)", p.ID, p.Title)
		if ids[p.ID] || p.ID == 0 || p.Title == "" {
			t.Errorf("%s: want a title and an id of its own", where)
		}
		ids[p.ID] = true
		if g := p.GridPos; g.W <= 0 || g.H <= 0 || g.X < 0 || g.X+g.W > 24 {
			t.Errorf("%s: grid position %+v is off the 24 columns", where, g)
		}
		if p.Type == "row" {
			continue
		}
		if p.Datasource.UID != "${datasource}" || len(p.Targets) == 0 {
			t.Errorf("%s: data source %q, %d queries; want ${datasource} and at least one", where, p.Datasource.UID, len(p.Targets))
		}
		for _, tg := range p.Targets {
			checkExpr(t, where, tg.Expr, known)
			for _, sel := range promMatchers.FindAllString(promStrings.ReplaceAllStringFunc(tg.Expr, func(s string) string {
				return strings.NewReplacer("{", "", "}", "").Replace(s)
			}), -1) {
				if !strings.Contains(sel, "$instance") {
					t.Errorf("%s: selector %s in %q does not filter on $instance", where, sel, tg.Expr)
				}
			}
			for _, n := range metricNames(tg.Expr) {
				used[n] = true
			}
		}
	}
	vars := map[string]bool{}
	for _, v := range d.Templating.List {
		vars[v.Name] = true
		if v.Type != "query" {
			continue
		}
		m := labelValues.FindStringSubmatch(v.Definition)
		if m == nil {
			t.Errorf("variable %s: query %q, want label_values(METRIC, LABEL)", v.Name, v.Definition)
			continue
		}
		checkExpr(t, "variable "+v.Name, m[1], known)
	}
	if !vars["datasource"] || !vars["instance"] {
		t.Errorf("variables %v, want datasource and instance", vars)
	}
	// The dashboard shows what the alerts are about.
	for _, n := range []string{"rarp_replay_migrations_total", "rarp_replay_bindings_failed_total", "rarp_replay_program_errors_total",
		"rarp_replay_netlink_resyncs_total", "rarp_replay_state_save_errors_total", "rarp_replay_pcap_kernel_drops_total",
		"rarp_replay_captured_ports", "rarp_replay_last_migration_timestamp_seconds", "rarp_replay_rarp_to_programmed_seconds_bucket"} {
		if !used[n] {
			t.Errorf("no panel shows %s", n)
		}
	}
}

// parseYAML reads the subset of YAML the alerting rules are written in:
// block mappings and sequences indented with spaces, plain, single- and
// double-quoted scalars, literal (|) and folded (>) block scalars, and
// comment lines. Scalars are strings. Anything else (flow collections,
// anchors, tags, tabs, trailing comments after quoted scalars, duplicate
// keys) is an error, so that the file stays in what this reader and
// Prometheus agree on.
func parseYAML(src string) (any, error) {
	p := &yamlParser{lines: strings.Split(strings.ReplaceAll(src, "\r\n", "\n"), "\n")}
	if !p.skip() {
		return nil, fmt.Errorf("empty document")
	}
	v, err := p.node(p.indent())
	if err != nil {
		return nil, err
	}
	if p.skip() {
		return nil, p.errorf("unexpected indentation")
	}
	return v, nil
}

type yamlParser struct {
	lines []string
	i     int
}

func (p *yamlParser) errorf(format string, args ...any) error {
	return fmt.Errorf("line %d: %s", p.i+1, fmt.Sprintf(format, args...))
}

// skip moves to the next line that is neither blank nor a comment, and
// reports whether there is one.
func (p *yamlParser) skip() bool {
	for ; p.i < len(p.lines); p.i++ {
		if t := strings.TrimSpace(p.lines[p.i]); t != "" && !strings.HasPrefix(t, "#") && t != "---" {
			return true
		}
	}
	return false
}

func (p *yamlParser) indent() int {
	l := p.lines[p.i]
	return len(l) - len(strings.TrimLeft(l, " "))
}

func (p *yamlParser) text() string { return strings.TrimSpace(p.lines[p.i]) }

func isItem(s string) bool { return s == "-" || strings.HasPrefix(s, "- ") }

// node reads the mapping or sequence whose lines are indented by ind.
func (p *yamlParser) node(ind int) (any, error) {
	if strings.ContainsRune(p.lines[p.i], '\t') {
		return nil, p.errorf("tab")
	}
	if isItem(p.text()) {
		return p.sequence(ind)
	}
	return p.mapping(ind)
}

func (p *yamlParser) sequence(ind int) (any, error) {
	var out []any
	for p.skip() && p.indent() == ind && isItem(p.text()) {
		rest := strings.TrimSpace(strings.TrimPrefix(p.text(), "-"))
		switch {
		case rest == "":
			p.i++
			if !p.skip() || p.indent() <= ind {
				return nil, p.errorf("empty sequence item")
			}
			v, err := p.node(p.indent())
			if err != nil {
				return nil, err
			}
			out = append(out, v)
		case yamlKey(rest) != "":
			// "- key: value": a mapping whose keys line up after the "- ".
			inner := ind + strings.Index(p.lines[p.i][ind:], rest)
			p.lines[p.i] = strings.Repeat(" ", inner) + rest
			v, err := p.mapping(inner)
			if err != nil {
				return nil, err
			}
			out = append(out, v)
		default:
			v, err := p.scalar(rest)
			if err != nil {
				return nil, err
			}
			out = append(out, v)
			p.i++
		}
	}
	return out, nil
}

var yamlKeyRE = regexp.MustCompile(`^([a-zA-Z_][a-zA-Z0-9_.-]*):(?: |$)`)

// yamlKey returns the key s starts with ("key: value" or "key:"), or "".
func yamlKey(s string) string {
	if m := yamlKeyRE.FindStringSubmatch(s); m != nil {
		return m[1]
	}
	return ""
}

func (p *yamlParser) mapping(ind int) (any, error) {
	out := map[string]any{}
	for p.skip() && p.indent() == ind && !isItem(p.text()) {
		line := p.text()
		key := yamlKey(line)
		if key == "" {
			return nil, p.errorf("want key: value, got %q", line)
		}
		if _, dup := out[key]; dup {
			return nil, p.errorf("duplicate key %q", key)
		}
		rest := strings.TrimSpace(line[len(key)+1:])
		var err error
		switch {
		case rest == "":
			p.i++
			if !p.skip() || p.indent() < ind || p.indent() == ind && !isItem(p.text()) {
				return nil, p.errorf("key %q has no value", key)
			}
			out[key], err = p.node(p.indent())
		case strings.HasPrefix(rest, "|") || strings.HasPrefix(rest, ">"):
			out[key], err = p.block(ind, rest)
		default:
			out[key], err = p.scalar(rest)
			p.i++
		}
		if err != nil {
			return nil, err
		}
	}
	if p.skip() && p.indent() > ind {
		return nil, p.errorf("unexpected indentation")
	}
	return out, nil
}

// block reads a block scalar introduced by header (|, |-, >, >-) on a key
// indented by ind.
func (p *yamlParser) block(ind int, header string) (string, error) {
	if !slices.Contains([]string{"|", "|-", ">", ">-"}, header) {
		return "", p.errorf("block scalar header %q", header)
	}
	p.i++
	var lines []string
	content := -1
	for ; p.i < len(p.lines); p.i++ {
		l := p.lines[p.i]
		if strings.TrimSpace(l) == "" {
			lines = append(lines, "")
			continue
		}
		n := len(l) - len(strings.TrimLeft(l, " "))
		if n <= ind {
			break
		}
		if content < 0 {
			content = n
		}
		if n < content {
			return "", p.errorf("block scalar line less indented than its first")
		}
		lines = append(lines, l[content:])
	}
	for len(lines) > 0 && lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1]
	}
	sep := "\n"
	if header[0] == '>' {
		sep = " "
	}
	s := strings.Join(lines, sep)
	if !strings.HasSuffix(header, "-") {
		s += "\n"
	}
	return s, nil
}

func (p *yamlParser) scalar(s string) (string, error) {
	switch {
	case strings.HasPrefix(s, `"`):
		q, err := strconv.QuotedPrefix(s)
		if err != nil || q != s {
			return "", p.errorf("double-quoted scalar %s: want one quoted string and nothing after it", s)
		}
		return strconv.Unquote(q)
	case strings.HasPrefix(s, "'"):
		if len(s) < 2 || !strings.HasSuffix(s, "'") || strings.Contains(strings.ReplaceAll(s[1:len(s)-1], "''", ""), "'") {
			return "", p.errorf("single-quoted scalar %s", s)
		}
		return strings.ReplaceAll(s[1:len(s)-1], "''", "'"), nil
	case strings.ContainsAny(s[:1], "{[&*!|>%@`,?:#"):
		return "", p.errorf("scalar %q: flow collections, anchors, tags and indicators are not in the subset", s)
	case strings.Contains(s, " #"):
		return "", p.errorf("scalar %q: a trailing comment", s)
	case strings.Contains(s, ": "):
		return "", p.errorf("plain scalar %q holds \": \": quote it", s)
	}
	return s, nil
}

// TestParseYAML: the subset reader reads what the rules file uses, and
// refuses what it does not support rather than misread it.
func TestParseYAML(t *testing.T) {
	got, err := parseYAML(`# comment
groups:
  - name: g
    rules:
      - alert: A
        expr: |
          up == 0
          and x
        for: 5m
        labels:
          severity: 'it''s'
        annotations:
          summary: "a {{ $labels.instance }} \"b\""
      - record: r
        expr: >-
          a
          b
list:
- 1
- two
`)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"groups": []any{map[string]any{"name": "g", "rules": []any{
			map[string]any{"alert": "A", "expr": "up == 0\nand x\n", "for": "5m",
				"labels": map[string]any{"severity": "it's"}, "annotations": map[string]any{"summary": `a {{ $labels.instance }} "b"`}},
			map[string]any{"record": "r", "expr": "a b"},
		}}},
		"list": []any{"1", "two"},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("parseYAML =\n%v\nwant\n%v", got, want)
	}
	for _, bad := range []string{
		"a: {b: 1}",
		"a: 1\na: 2",
		"a:\n  b: 1\n    c: 2",
		"a: \"x\" # c",
		"a: x # c",
		"a: &anchor x",
		"a:\n\tb: 1",
		"a: b: c",
	} {
		if v, err := parseYAML(bad); err == nil {
			t.Errorf("parseYAML(%q) = %v, want an error", bad, v)
		}
	}
}
