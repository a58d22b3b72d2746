package cmd

import (
	"fmt"
	"io"

	"github.com/rarp-replay/rarp-replay/capture/pcapio"
	"github.com/rarp-replay/rarp-replay/internal/version"
	"github.com/spf13/cobra"
)

func newVersion() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version, commit, Go version and libpcap version",
		Args:  usageArgs(cobra.NoArgs),
		RunE:  func(c *cobra.Command, _ []string) error { return writeVersion(c.OutOrStdout()) },
	}
}

// writeVersion writes which build this is, for `rarp-replay version` and
// `rarp-replay --version`:
//
//	rarp-replay 0.1.0
//	commit:  1a2b3c4d5e6f... (modified)
//	go:      go1.26.8
//	libpcap: libpcap version 1.10.3 (with TPACKET_V3)
func writeVersion(w io.Writer) error {
	v := version.Get()
	commit := v.Commit
	if v.Modified {
		commit += " (modified)"
	}
	_, err := fmt.Fprintf(w, "rarp-replay %s\ncommit:  %s\ngo:      %s\nlibpcap: %s\n", v.Version, commit, v.GoVersion, pcapio.LibVersion())
	return err
}
