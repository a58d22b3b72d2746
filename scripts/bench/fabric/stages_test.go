//go:build linux

package main

import (
	"math"
	"strings"
	"testing"
)

// TestStageQuantiles: quantiles read from a /metrics text as
// histogram_quantile computes them: linear within the bucket, the highest
// finite bound past it, nothing without observations; either label order.
func TestStageQuantiles(t *testing.T) {
	text := `# HELP rarp_replay_binding_stage_seconds ...
rarp_replay_binding_stage_seconds_bucket{stage="answer",le="0.001"} 50
rarp_replay_binding_stage_seconds_bucket{stage="answer",le="0.0025"} 90
rarp_replay_binding_stage_seconds_bucket{stage="answer",le="0.005"} 100
rarp_replay_binding_stage_seconds_bucket{stage="answer",le="+Inf"} 100
rarp_replay_binding_stage_seconds_sum{stage="answer"} 0.2
rarp_replay_binding_stage_seconds_bucket{le="0.01",stage="program"} 1
rarp_replay_binding_stage_seconds_bucket{le="+Inf",stage="program"} 4
rarp_replay_binding_stage_seconds_bucket{stage="probe",le="0.001"} 0
rarp_replay_binding_stage_seconds_bucket{stage="probe",le="+Inf"} 0
rarp_replay_rarp_to_programmed_seconds_bucket{le="0.001"} 7
`
	hs, err := parseStageBuckets(strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		stage string
		q     float64
		want  string
	}{
		{"answer", 0.5, "1.0"},   // all of the first bucket: its bound
		{"answer", 0.99, "4.8"},  // 9 of the 10 in (2.5, 5] ms
		{"answer", 0.1, "0.2"},   // 10 of the 50 in (0, 1] ms
		{"program", 0.5, "10.0"}, // in the +Inf bucket: the highest finite bound
		{"probe", 0.5, "-"},      // no observations
		{"handle", 0.5, "-"},     // not served at all
	} {
		if got := msOrDash(hs[c.stage].quantile(c.q)); got != c.want {
			t.Errorf("%s q%v = %s ms, want %s", c.stage, c.q, got, c.want)
		}
	}
	if n := hs["answer"].count(); n != 100 {
		t.Errorf("answer: %v observations, want 100", n)
	}
	if _, ok := hs["rarp_to_programmed"]; ok || len(hs) != 3 {
		t.Errorf("parsed %d histograms %v, want the 3 stages served", len(hs), hs)
	}
	if !math.IsNaN(buckets(nil).quantile(0.5)) {
		t.Error("quantile of no buckets is a number, want NaN")
	}
}
