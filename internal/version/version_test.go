package version

import (
	"runtime"
	"runtime/debug"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestGet(t *testing.T) {
	const rev = "0123456789abcdef0123456789abcdef01234567"
	vcs := func(modified string, main string) *debug.BuildInfo {
		return &debug.BuildInfo{GoVersion: "go1.99.1", Main: debug.Module{Version: main}, Settings: []debug.BuildSetting{
			{Key: "vcs", Value: "git"}, {Key: "vcs.revision", Value: rev}, {Key: "vcs.modified", Value: modified},
		}}
	}
	tests := []struct {
		name            string
		version, commit string
		bi              *debug.BuildInfo
		want            Info
	}{
		{"stamped by make", "0.1.0", rev, vcs("false", "(devel)"),
			Info{Version: "0.1.0", Commit: rev, GoVersion: "go1.99.1"}},
		{"stamped, tree modified", "0.1.0-2-g0123456", rev, vcs("true", "(devel)"),
			Info{Version: "0.1.0-2-g0123456", Commit: rev, Modified: true, GoVersion: "go1.99.1"}},
		{"go build on a tag", "", "", vcs("false", "v0.1.0"),
			Info{Version: "0.1.0", Commit: rev, GoVersion: "go1.99.1"}},
		{"go build, no module version", "", "", vcs("true", "(devel)"),
			Info{Version: "devel-0123456789ab-modified", Commit: rev, Modified: true, GoVersion: "go1.99.1"}},
		{"go build -buildvcs=false", "", "", &debug.BuildInfo{GoVersion: "go1.99.1", Main: debug.Module{Version: "(devel)"}},
			Info{Version: "devel", Commit: "unknown", GoVersion: "go1.99.1"}},
		{"no build information", "", "", nil,
			Info{Version: "devel", Commit: "unknown", GoVersion: runtime.Version()}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, get(tt.version, tt.commit, tt.bi)); diff != "" {
				t.Errorf("(-want +got)\n%s", diff)
			}
		})
	}
}
