// Command gen-docs writes rarp-replay's manual pages and its configuration
// reference (docs/CONFIG.md) from the cobra commands, so neither can drift
// from the flags the binary accepts.
//
//	go run ./scripts/gen-docs -config docs/CONFIG.md
//	go run ./scripts/gen-docs -man build/man -version 0.1.0
//
// The man pages are dated by -date (YYYY-MM-DD), else SOURCE_DATE_EPOCH,
// else today; the package build passes the commit's date, so a rebuild of
// one commit writes the same pages. The test in this directory fails when
// docs/CONFIG.md differs from what this command writes.
package main

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/rarp-replay/rarp-replay/cmd"
	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"
	"github.com/spf13/pflag"
)

func main() {
	config := flag.String("config", "", "write the configuration reference (markdown) to this file")
	man := flag.String("man", "", "write one section 1 manual page per command into this directory")
	version := flag.String("version", "", "the version the manual pages name (default: none)")
	date := flag.String("date", "", "the manual pages' date, YYYY-MM-DD (default: SOURCE_DATE_EPOCH, else today)")
	flag.Parse()
	if flag.NArg() > 0 || (*config == "" && *man == "") {
		fmt.Fprintln(os.Stderr, "usage: gen-docs [-config FILE] [-man DIR [-version V] [-date YYYY-MM-DD]]")
		os.Exit(2)
	}
	if err := run(*config, *man, *version, *date); err != nil {
		fmt.Fprintln(os.Stderr, "gen-docs:", err)
		os.Exit(1)
	}
}

func run(config, man, version, date string) error {
	if config != "" {
		if err := os.WriteFile(config, configReference(root()), 0o644); err != nil {
			return err
		}
	}
	if man != "" {
		var d *time.Time
		if date != "" {
			t, err := time.Parse(time.DateOnly, date)
			if err != nil {
				return fmt.Errorf("-date %q: want YYYY-MM-DD", date)
			}
			d = &t
		}
		if err := os.MkdirAll(man, 0o755); err != nil {
			return err
		}
		return manPages(root(), man, version, d)
	}
	return nil
}

// root is rarp-replay's command tree as the binary runs it: with the
// completion command cobra adds at Execute, and without cobra's
// "auto generated on <date>" trailer.
func root() *cobra.Command {
	r := cmd.New()
	r.InitDefaultCompletionCmd()
	r.DisableAutoGenTag = true
	return r
}

// manPages writes rarp-replay.1, rarp-replay-listen.1, ... into dir: one
// page per command a user can run (help excluded), each with its flags,
// the global flags and the related pages.
func manPages(root *cobra.Command, dir, version string, date *time.Time) error {
	source := "rarp-replay"
	if version != "" {
		source += " " + version
	}
	return doc.GenManTree(root, &doc.GenManHeader{
		Section: "1",
		Source:  source,
		Manual:  "rarp-replay manual",
		Date:    date,
	}, dir)
}

// referenced are the commands whose flags configure something; the
// reference covers them and the global flags.
func referenced(root *cobra.Command) []*cobra.Command {
	var cs []*cobra.Command
	for _, c := range root.Commands() {
		if c.IsAvailableCommand() && c.Name() != "completion" && c.HasAvailableLocalFlags() {
			cs = append(cs, c)
		}
	}
	return cs
}

// configReference is docs/CONFIG.md: for the global flags and for each
// command with flags, a table of every flag with its default and help.
func configReference(root *cobra.Command) []byte {
	var b bytes.Buffer
	b.WriteString(`# Configuration reference

<!-- Generated from the commands' flags by scripts/gen-docs; do not edit.
     Regenerate with: go run ./scripts/gen-docs -config docs/CONFIG.md -->

Every flag of every ` + "`rarp-replay`" + ` command, with its default. The packaged
daemon (` + "`systemctl start rarp-replay`" + `) runs ` + "`rarp-replay listen $RARP_REPLAY_OPTS`" + `,
the options set in ` + "`/etc/default/rarp-replay`" + `; a change takes effect at
` + "`systemctl restart rarp-replay`" + `. The same text is in the manual pages
(` + "`man rarp-replay-listen`" + ` and so on) and in ` + "`rarp-replay COMMAND --help`" + `.

Durations are Go durations (` + "`200ms`, `1.5s`, `15m`" + `). A wrong value is a usage
error naming the flag (exit status 2), reported before any socket opens.

`)
	b.WriteString("## Global flags\n\nAccepted by every command.\n\n")
	flagTable(&b, root.PersistentFlags())
	for _, c := range referenced(root) {
		fmt.Fprintf(&b, "\n## rarp-replay %s\n\n", c.Name())
		fmt.Fprintf(&b, "`%s`: %s.\n\n", c.UseLine(), c.Short)
		flagTable(&b, c.LocalNonPersistentFlags())
	}
	return b.Bytes()
}

// flagTable writes fs as a markdown table, in the order of the names.
func flagTable(b *bytes.Buffer, fs *pflag.FlagSet) {
	b.WriteString("| flag | default | meaning |\n| --- | --- | --- |\n")
	fs.VisitAll(func(f *pflag.Flag) {
		if f.Hidden {
			return
		}
		name := "`--" + f.Name
		if t := flagType(f); t != "" {
			name += " " + t
		}
		name += "`"
		if f.Shorthand != "" {
			name = "`-" + f.Shorthand + "`, " + name
		}
		def := f.DefValue
		switch {
		case def == "" || def == "[]":
			def = "(none)"
		default:
			def = "`" + def + "`"
		}
		fmt.Fprintf(b, "| %s | %s | %s |\n", name, def, cell(f.Usage))
	})
}

// flagType is the placeholder of a flag's value, as pflag prints it in
// --help (a back-quoted word in the help text, else the type), empty for a
// boolean.
func flagType(f *pflag.Flag) string {
	name, _ := pflag.UnquoteUsage(f)
	return name
}

// cell makes s safe inside a markdown table cell.
func cell(s string) string {
	s = strings.ReplaceAll(s, "|", `\|`)
	return strings.ReplaceAll(s, "\n", " ")
}

// manFiles lists the pages manPages writes, for the tests: one per
// runnable command, named after its path with dashes.
func manFiles(root *cobra.Command) []string {
	var names []string
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		if !c.IsAvailableCommand() && c != root {
			return
		}
		names = append(names, strings.ReplaceAll(c.CommandPath(), " ", "-")+".1")
		for _, s := range c.Commands() {
			walk(s)
		}
	}
	walk(root)
	return names
}
