//go:build linux

package main

import (
	"bufio"
	"cmp"
	"flag"
	"fmt"
	"io"
	"math"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/rarp-replay/rarp-replay/internal/engine"
)

// stages prints, as shell assignments, where a daemon's bindings spent
// their time from the RARP to their programming: p50 and p99 in ms of each
// part of rarp_replay_binding_stage_seconds, read from its /metrics.
//
//	S_PROBE='0.1 / 2.4' S_ANSWER=... S_HANDLE=... S_PROGRAM=... S_N=600
//
// and the answers only its any-device handle caught, and those it saw
// twice (S_VIA_ANY, S_DUP).
func stages(args []string) error {
	fs := flag.NewFlagSet("stages", flag.ContinueOnError)
	url := fs.String("url", "", "the daemon's /metrics")
	if err := fs.Parse(args); err != nil {
		return err
	}
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(*url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	hs, err := parseStageBuckets(strings.NewReader(string(body)))
	if err != nil {
		return err
	}
	// Answers only the any-device handle caught, and answers seen twice.
	counters := map[string]string{"rarp_replay_replies_via_any_total": "-", "rarp_replay_replies_duplicate_total": "-"}
	for line := range strings.Lines(string(body)) {
		if f := strings.Fields(line); len(f) == 2 && counters[f[0]] != "" {
			counters[f[0]] = f[1]
		}
	}
	fmt.Printf("S_VIA_ANY=%s\nS_DUP=%s\n", counters["rarp_replay_replies_via_any_total"], counters["rarp_replay_replies_duplicate_total"])
	n := 0.0
	for _, name := range engine.StageNames {
		h := hs[name]
		fmt.Printf("S_%s='%s / %s'\n", strings.ToUpper(name), msOrDash(h.quantile(0.5)), msOrDash(h.quantile(0.99)))
		n = max(n, h.count())
	}
	fmt.Printf("S_N=%d\n", int(n))
	return nil
}

// bucket is a histogram bucket: the cumulative count n of observations up
// to le.
type bucket struct{ le, n float64 }

// buckets is one histogram, by upper bound, ascending.
type buckets []bucket

var bucketLine = regexp.MustCompile(`^rarp_replay_binding_stage_seconds_bucket\{(?:stage="([a-z]+)",le="([^"]+)"|le="([^"]+)",stage="([a-z]+)")\} ([0-9.e+]+)$`)

func parseStageBuckets(r io.Reader) (map[string]buckets, error) {
	hs := map[string]buckets{}
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		m := bucketLine.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		stage, le := m[1]+m[4], m[2]+m[3]
		bound, err := strconv.ParseFloat(le, 64) // "+Inf" parses as +Inf
		if err != nil {
			return nil, fmt.Errorf("bucket le=%q: %w", le, err)
		}
		n, err := strconv.ParseFloat(m[5], 64)
		if err != nil {
			return nil, fmt.Errorf("bucket count %q: %w", m[5], err)
		}
		hs[stage] = append(hs[stage], bucket{bound, n})
	}
	for _, h := range hs {
		slices.SortFunc(h, func(a, b bucket) int { return cmp.Compare(a.le, b.le) })
	}
	return hs, sc.Err()
}

func (h buckets) count() float64 {
	if len(h) == 0 {
		return 0
	}
	return h[len(h)-1].n
}

// quantile estimates the q-quantile in seconds as Prometheus's
// histogram_quantile does: linear within the bucket it falls in, the
// lower bound of the first bucket taken as 0, and the highest finite
// bound when it falls in the +Inf bucket. NaN without observations.
func (h buckets) quantile(q float64) float64 {
	total := h.count()
	if total == 0 {
		return math.NaN()
	}
	rank := q * total
	lower, below := 0.0, 0.0
	for _, b := range h {
		if b.n >= rank {
			if math.IsInf(b.le, 1) {
				return lower
			}
			if b.n == below {
				return b.le
			}
			return lower + (b.le-lower)*(rank-below)/(b.n-below)
		}
		lower, below = b.le, b.n
	}
	return lower
}

func msOrDash(s float64) string {
	if math.IsNaN(s) {
		return "-"
	}
	return strconv.FormatFloat(s*1e3, 'f', 1, 64)
}
