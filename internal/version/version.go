// Package version says which build of rarp-replay is running: the version
// and commit the Makefile stamps into the binary, or, in a binary built
// without the stamp (go build, go install), what the Go toolchain recorded.
package version

import (
	"runtime"
	"runtime/debug"
	"strings"
)

// Stamped by the Makefile's build target:
//
//	go build -ldflags "-X github.com/rarp-replay/rarp-replay/internal/version.version=0.1.0
//	                   -X github.com/rarp-replay/rarp-replay/internal/version.commit=<hash>"
var version, commit string

// Info identifies a build.
type Info struct {
	// Version is the release: git describe --tags without the leading "v"
	// ("0.1.0", or "0.1.0-3-g1a2b3c4" three commits after it); "devel"
	// when neither the Makefile nor the Go toolchain recorded one.
	Version string
	// Commit is the full commit hash; "unknown" when nothing recorded it.
	Commit string
	// Modified reports uncommitted changes in the tree the binary was
	// built from (recorded by the Go toolchain: go build -buildvcs).
	Modified bool
	// GoVersion is the toolchain that built the binary ("go1.26.8").
	GoVersion string
}

// Get returns the running binary's build information.
func Get() Info {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		bi = nil
	}
	return get(version, commit, bi)
}

// get prefers the stamped version and commit, and falls back to the build
// information: the module version the toolchain derived from a VCS tag
// (Go 1.24+), else "devel" plus the revision, else "devel".
func get(stampedVersion, stampedCommit string, bi *debug.BuildInfo) Info {
	info := Info{Version: stampedVersion, Commit: stampedCommit, GoVersion: runtime.Version()}
	var revision string
	if bi != nil {
		if bi.GoVersion != "" {
			info.GoVersion = bi.GoVersion
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				revision = s.Value
			case "vcs.modified":
				info.Modified = s.Value == "true"
			}
		}
	}
	if info.Commit == "" {
		info.Commit = revision
	}
	if info.Commit == "" {
		info.Commit = "unknown"
	}
	if info.Version == "" && bi != nil && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		info.Version = strings.TrimPrefix(bi.Main.Version, "v")
	}
	if info.Version == "" && revision != "" {
		info.Version = "devel-" + revision[:min(12, len(revision))]
		if info.Modified {
			info.Version += "-modified"
		}
	}
	if info.Version == "" {
		info.Version = "devel"
	}
	return info
}
