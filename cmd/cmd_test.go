package cmd

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/rarp-replay/rarp-replay/internal/engine"
	"github.com/rarp-replay/rarp-replay/internal/link"
)

// TestArgumentErrors checks that bad arguments are clear errors, raised
// before anything touches the network, and exit with status 2 (a usage
// error); a failure at run time exits 1.
func TestArgumentErrors(t *testing.T) {
	tests := []struct {
		args   []string
		want   string
		status int
	}{
		{[]string{"send-rarp", "--mac", "zz:zz", "-i", "eth0"}, `--mac "zz:zz"`, 2},
		{[]string{"send-rarp", "--mac", "ff:ff:ff:ff:ff:ff", "-i", "eth0"}, "unicast", 2},
		{[]string{"send-rarp", "--mac", "02:00:5e:10:00:0a"}, "-i: name the interface", 2},
		{[]string{"send-rarp", "--mac", "02:00:5e:10:00:0a", "-i", "eth0", "--count", "0"}, "--count 0", 2},
		{[]string{"send-rarp", "--mac", "02:00:5e:10:00:0a", "-i", "eth0", "--count", "many"}, `invalid argument "many"`, 2},
		{[]string{"send-rarp", "--mac", "02:00:5e:10:00:0a", "-i", "rr-nosuch0", "--count", "1"}, "", 1}, // no such device, no permission, or no libpcap
		{[]string{"listen", "--probe-timeout", "0s"}, "--probe-timeout", 2},
		{[]string{"listen", "--probe-retries", "-1"}, "--probe-retries -1", 2},
		{[]string{"listen", "--probe-rate", "-1"}, "--probe-rate", 2},
		{[]string{"listen", "--capture-buffer", "1000"}, "--capture-buffer 1000", 2},
		{[]string{"listen", "--tap-capture-buffer", "1000"}, "--tap-capture-buffer 1000", 2},
		{[]string{"listen", "--max-migrations", "-5"}, "--max-migrations -5", 2},
		{[]string{"listen", "--retention", "soon"}, `invalid argument "soon"`, 2},
		{[]string{"listen", "--log-level", "loud"}, `--log-level "loud"`, 2},
		{[]string{"listen", "--log-format", "xml"}, `--log-format "xml"`, 2},
		{[]string{"listen", "--source", "vlan10"}, `--source "vlan10"`, 2},
		{[]string{"listen", "--source", "vlan10=192.0.2.300"}, `--source "vlan10=192.0.2.300"`, 2},
		{[]string{"listen", "--source", "vlan10=192.0.2.1,01:00:5e:00:00:01"}, "bad MAC", 2},
		{[]string{"listen", "--source", "nosuch0=192.0.2.1"}, "no interface nosuch0", 2},
		{[]string{"listen", "--source", "lo=192.0.2.77"}, "192.0.2.77 is not an address of lo", 2},
		{[]string{"listen", "--state-file", "/nonexistent-dir/state"}, "--state-file /nonexistent-dir/state: directory", 2},
		{[]string{"listen", "--exclude", "swp["}, `--exclude "swp[": syntax error in pattern`, 2},
		{[]string{"listen", "--exclude", "eth0", "--include", "swp[1-"}, `--include "swp[1-": syntax error in pattern`, 2},
		{[]string{"listen", "-i", "swp1", "--exclude", "swp2"}, "--include and --exclude select among -i any", 2},
		{[]string{"listen", "--no-such-flag"}, "unknown flag: --no-such-flag", 2},
		{[]string{"listen", "swp1"}, `unknown command "swp1" for "rarp-replay listen"`, 2},
		{[]string{"lisen"}, "did you mean listen?", 2},
		{[]string{"--log-level", "loud", "version"}, `--log-level "loud"`, 2},
		{[]string{"version", "now"}, `unknown command "now"`, 2},
		{[]string{"status", "--mac", "zz"}, `--mac "zz"`, 2},
		{[]string{"status", "--socket", ""}, "--socket: must not be empty", 2},
		{[]string{"status", "now"}, `unknown command "now"`, 2},
		{[]string{"status", "--socket", "/nonexistent/rr-status.sock"}, "is the daemon running", 1},
		{[]string{"replay"}, "accepts 1 arg", 2},
		{[]string{"replay", "a.pcap", "b.pcap"}, "accepts 1 arg", 2},
		{[]string{"replay", "/nonexistent.pcap"}, "no such file", 1},
		{[]string{"replay", "--svi-addr", "192.0.2.1", "x.pcap"}, "--svi-addr", 2},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			c := New()
			var out bytes.Buffer
			c.SetOut(&out)
			c.SetErr(&out)
			c.SetArgs(tt.args)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			err := c.ExecuteContext(ctx)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error = %v, want one containing %q", err, tt.want)
			}
			if got := exitStatus(err); got != tt.status {
				t.Errorf("exit status %d, want %d (error %v)", got, tt.status, err)
			}
		})
	}
}

func TestExitStatus(t *testing.T) {
	for _, tt := range []struct {
		err  error
		want int
	}{
		{nil, 0},
		{errors.New("capture swp1: permission denied"), 1},
		{&UsageError{Err: errors.New("unknown flag: --x")}, 2},
		{fmt.Errorf("wrapped: %w", &UsageError{Err: errors.New("bad")}), 2},
		{&Interrupted{Signal: syscall.SIGINT}, 130},
		{&Interrupted{Signal: syscall.SIGTERM}, 143},
	} {
		if got := exitStatus(tt.err); got != tt.want {
			t.Errorf("exitStatus(%v) = %d, want %d", tt.err, got, tt.want)
		}
	}
}

// TestVersion: `version` and `--version` print the same four lines.
func TestVersion(t *testing.T) {
	run := func(args ...string) string {
		t.Helper()
		c := New()
		var out bytes.Buffer
		c.SetOut(&out)
		c.SetErr(&out)
		c.SetArgs(args)
		if err := c.Execute(); err != nil {
			t.Fatalf("%s: %v", strings.Join(args, " "), err)
		}
		return out.String()
	}
	got := run("version")
	re := regexp.MustCompile(`^rarp-replay \S+\ncommit:  \S+( \(modified\))?\ngo:      go\S+\nlibpcap: (libpcap version \S+.*|unavailable \(built without libpcap\))\n$`)
	if !re.MatchString(got) {
		t.Errorf("version printed %q, want it to match %s", got, re)
	}
	if flag := run("--version"); flag != got {
		t.Errorf("--version printed %q, version %q", flag, got)
	}
}

// TestSelection: which ports -i any with --include and --exclude serves.
// The filter sees every link the kernel reports; eligibility is the
// capture manager's, after it.
func TestSelection(t *testing.T) {
	links := []string{"swp1", "swp5", "swp50", "swp15", "eth0", "peerlink", "peerlink.4094", "bond1",
		"Ethernet0", "Ethernet48", "PortChannel0001", "ethernet0"}
	tests := []struct {
		name             string
		include, exclude []string
		want             []string
	}{
		{"everything by default", nil, nil, links},
		{"Cumulus uplinks and peer link excluded", nil, []string{"eth0", "swp5*", "peerlink*"},
			[]string{"swp1", "swp15", "bond1", "Ethernet0", "Ethernet48", "PortChannel0001", "ethernet0"}},
		{"exclude wins over include", []string{"swp*"}, []string{"swp5*"}, []string{"swp1", "swp15"}},
		{"SONiC: front panel ports but the uplinks, case-sensitive", []string{"Ethernet*", "PortChannel*"}, []string{"Ethernet48", "PortChannel0001"},
			[]string{"Ethernet0"}},
		{"character class", []string{"swp[1-4]"}, nil, []string{"swp1"}},
		{"include matching nothing", []string{"tap*"}, nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			selected, err := selection("any", tt.include, tt.exclude, link.NewTable())
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for i, name := range links {
				if selected(link.Link{Index: i + 1, Name: name}) {
					got = append(got, name)
				}
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("selected (-want +got)\n%s", diff)
			}
		})
	}
}

func TestQEMUSchedule(t *testing.T) {
	var at time.Duration
	var got []time.Duration
	for i := 1; i < 5; i++ {
		at += gap(i, 0)
		got = append(got, at)
	}
	want := []time.Duration{50 * time.Millisecond, 200 * time.Millisecond, 450 * time.Millisecond, 800 * time.Millisecond}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("RARP times after the first = %v, want %v", got, want)
		}
	}
	if gap(3, 10*time.Millisecond) != 10*time.Millisecond {
		t.Errorf("--interval not honoured")
	}
}

func TestParseSources(t *testing.T) {
	links := link.NewTable()
	links.Replace([]link.Link{
		{Index: 1, Name: "vlan20", Kind: "vlan", MAC: net.HardwareAddr{2, 0, 0, 0, 0, 1}, Up: true},
		{Index: 2, Name: "swp1", Kind: "device", MAC: net.HardwareAddr{2, 0, 0, 0, 0, 2}, Up: true},
	})
	overrides, err := parseSources([]string{"swp1=198.51.100.9", "swp1=2001:db8:20::9,02:00:00:00:00:99"})
	if err != nil {
		t.Fatal(err)
	}
	for svi, o := range overrides {
		links.SetOverride(svi, o)
	}
	p, err := links.Port(2, nil)
	if err != nil {
		t.Fatal(err)
	}
	for target, want := range map[string]string{
		"198.51.100.20":   "198.51.100.9 02:00:00:00:00:99",
		"2001:db8:20::20": "2001:db8:20::9 02:00:00:00:00:99",
	} {
		ip, mac := link.Source(p, netip.MustParseAddr(target))
		if got := ip.String() + " " + mac.String(); got != want {
			t.Errorf("source for %s = %s, want %s", target, got, want)
		}
	}
}

// TestLogReport: a migration that programmed nothing is a WARN giving the
// reason per address; a dry run reports what it would program.
func TestLogReport(t *testing.T) {
	mac := net.HardwareAddr{2, 0, 0x5e, 0x10, 0, 0x0a}
	a, b := netip.MustParseAddr("192.0.2.10"), netip.MustParseAddr("192.0.2.99")
	tests := []struct {
		name   string
		r      engine.Report
		dryRun bool
		want   []string
		not    []string
	}{
		{"programmed", engine.Report{MAC: mac, Verified: []netip.Addr{a}, Programmed: []netip.Addr{a}, Failed: []netip.Addr{b}}, false,
			[]string{`"level":"INFO"`, `"programmed":["192.0.2.10"]`}, []string{"nothing_programmed"}},
		{"nothing programmed", engine.Report{MAC: mac, Verified: []netip.Addr{a}, Failed: []netip.Addr{b}}, false,
			[]string{`"level":"WARN"`, `192.0.2.99: no answer after every retry`, `192.0.2.10: answered, but the kernel refused`}, nil},
		{"dry run", engine.Report{MAC: mac, Verified: []netip.Addr{a}, Failed: []netip.Addr{b}}, true,
			[]string{`"level":"INFO"`, `"would_program":["192.0.2.10"]`}, []string{"nothing_programmed", "refused"}},
		{"dry run, no answer", engine.Report{MAC: mac, Failed: []netip.Addr{b}}, true,
			[]string{`"level":"WARN"`, `192.0.2.99: no answer after every retry`}, []string{"refused"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			logReport(slog.New(slog.NewJSONHandler(&buf, nil)), tt.r, tt.dryRun)
			for _, w := range tt.want {
				if !strings.Contains(buf.String(), w) {
					t.Errorf("log %s lacks %s", buf.String(), w)
				}
			}
			for _, n := range tt.not {
				if strings.Contains(buf.String(), n) {
					t.Errorf("log %s has %s", buf.String(), n)
				}
			}
		})
	}
}

// TestReplayInputs: the replay command's inputs that are missing, of the
// wrong kind, malformed, or matching nothing are usage errors (exit 2)
// naming the flag, in the input's terms, not Go's; a capture cut short is
// replayed and then a warning (exit 1).
func TestReplayInputs(t *testing.T) {
	dir := t.TempDir()
	file := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	const (
		corpus  = "../pcaps/corpus/"
		cumulus = "../pcaps/layouts/cumulus/"
	)
	capture := corpus + "qemu-announce.pcap"
	links, vlans := cumulus+"links.json", cumulus+"bridge-vlan.json"
	neighJSON := corpus + "neigh.json"
	tests := []struct {
		name   string
		args   []string
		status int
		want   []string // all in the message
	}{
		{"neigh: no such file", []string{"--neigh", "/nonexistent/neigh.json", capture}, 2, []string{"--neigh /nonexistent/neigh.json: no such file"}},
		{"neigh: a link dump", []string{"--neigh", links, capture}, 2, []string{"--neigh", "this is an interface dump", "that is what --links reads"}},
		{"neigh: a bridge vlan dump", []string{"--neigh", vlans, capture}, 2, []string{"--neigh", "bridge VLAN dump", "--bridge-vlans"}},
		{"neigh: a capture", []string{"--neigh", capture, capture}, 2, []string{"--neigh", "not a neighbor snapshot"}},
		{"neigh: dst a number", []string{"--neigh", file("n1.json", `[{"dst":5,"dev":"br10"}]`), capture}, 2, []string{"--neigh", `entry 1: "dst" is a number, want a string`}},
		{"neigh: bad address", []string{"--neigh", file("n2.json", `[{"dst":"192.0.2.300","dev":"br10"}]`), capture}, 2, []string{"--neigh", `"192.0.2.300" is not an IP address`}},
		{"neigh: proc flags", []string{"--neigh", file("arp", "IP address HW type Flags HW address Mask Device\n192.0.2.1 0x1 0xZZ 02:00:5e:10:00:0a * br10\n"), capture}, 2, []string{"--neigh", `line 2: flags "0xZZ"`}},
		{"neigh: cut JSON", []string{"--neigh", file("n3.json", `[{"dst":"192.0`), capture}, 2, []string{"--neigh", "not valid JSON"}},
		{"svi: not in the snapshot", []string{"--neigh", neighJSON, "--svi", "vlan99", capture}, 2, []string{"--svi vlan99: no such device", "br10"}},
		{"svi: without a snapshot", []string{"--svi", "br10", capture}, 2, []string{"--svi br10", "no --neigh"}},
		{"svi: several devices", []string{"--neigh", cumulus + "neigh.json", capture}, 2, []string{"--svi: the --neigh snapshot", "say which"}},
		{"svi: with links", []string{"--links", links, "--svi", "vlan10", capture}, 2, []string{"--svi: not with --links"}},
		{"svi-addr: no prefix length", []string{"--svi-addr", "192.0.2.1", capture}, 2, []string{`--svi-addr "192.0.2.1"`, "prefix length"}},
		{"svi-mac: multicast", []string{"--svi-mac", "01:00:5e:00:00:01", capture}, 2, []string{`--svi-mac "01:00:5e:00:00:01"`, "unicast"}},
		{"links: no such file", []string{"--links", "/nonexistent/links.json", capture}, 2, []string{"--links /nonexistent/links.json: no such file"}},
		{"links: a neighbor dump", []string{"--links", neighJSON, capture}, 2, []string{"--links", "this is a neighbor table", "that is what --neigh reads"}},
		{"links: a bridge vlan dump", []string{"--links", vlans, capture}, 2, []string{"--links", "bridge VLAN dump", "that is what --bridge-vlans reads"}},
		{"links: /proc/net/arp", []string{"--links", corpus + "neigh.arp", capture}, 2, []string{"--links", "not JSON"}},
		{"links: ifindex a string", []string{"--links", file("l1.json", `[{"ifindex":"1","ifname":"lo"}]`), capture}, 2, []string{"--links", `entry 1 (lo): "ifindex" is a string, want an integer`}},
		{"links: an object", []string{"--links", file("l2.json", `{"ifindex":1}`), capture}, 2, []string{"--links", "a JSON object"}},
		{"links: without -d", []string{"--links", file("l3.json", `[{"ifindex":2,"ifname":"swp1","master":"br10"},{"ifindex":1,"ifname":"br10"}]`), "--port", "swp1", capture}, 2, []string{"--links", "-d"}},
		{"links: empty", []string{"--links", file("l4.json", `[]`), capture}, 2, []string{"--links", "no entries"}},
		{"links: plain pcap without port", []string{"--links", links, capture}, 2, []string{"--port", "plain pcap"}},
		{"links: no port of the capture", []string{"--links", links, "../pcaps/layouts/sonic/migrations.pcapng"}, 2, []string{"--links", "none of the capture's ports (Ethernet4, Ethernet0, PortChannel01)"}},
		{"links: snapshot devices not in it", []string{"--links", links, "--neigh", neighJSON, "--port", "swp1", capture}, 2, []string{"--neigh", "none of its devices (br10) is in --links"}},
		{"bridge-vlans: without links", []string{"--bridge-vlans", vlans, capture}, 2, []string{"--bridge-vlans: only with --links"}},
		{"bridge-vlans: a link dump", []string{"--links", links, "--bridge-vlans", links, "--port", "swp1", capture}, 2, []string{"--bridge-vlans", "this is an interface dump", "that is what --links reads"}},
		{"bridge-vlans: no port in links", []string{"--links", links, "--bridge-vlans", "../pcaps/layouts/sonic/bridge-vlan.json", "--port", "swp1", capture}, 2, []string{"--bridge-vlans", "none of its ports"}},
		{"bridge-vlans: vlan a string", []string{"--links", links, "--bridge-vlans", file("v1.json", `[{"ifname":"swp1","vlans":[{"vlan":"10"}]}]`), "--port", "swp1", capture}, 2, []string{"--bridge-vlans", `"vlans.vlan" is a string, want an integer`}},
		{"port: without links", []string{"--port", "swp1", capture}, 2, []string{"--port: only with --links"}},
		{"port: not in links", []string{"--links", links, "--port", "swp9", capture}, 2, []string{"--port swp9: no such interface in --links"}},
		{"port: a bridge", []string{"--links", links, "--port", "bridge", capture}, 2, []string{"--port bridge: not an access port", "SVI of its members"}},
		{"port: a vxlan device", []string{"--links", links, "--port", "vni10", capture}, 2, []string{"--port vni10: not an access port", "vxlan"}},
		{"capture: cut short", []string{"--neigh", neighJSON, "../pcaps/cut/qemu-announce-cut-data.pcap"}, 3, []string{"warning: ../pcaps/cut/qemu-announce-cut-data.pcap: capture cut short", "frame 8", "7 complete frames"}},
		{"capture: cut in its header", []string{file("h.pcap", "\xd4\xc3\xb2\xa1\x02\x00")}, 3, []string{"warning:", "capture cut short", "file header"}},
		{"capture: not a capture", []string{neighJSON}, 1, []string{"neigh.json: not a pcap or pcapng capture"}},
		{"whole capture and a good layout", []string{"--links", links, "--bridge-vlans", vlans, "--neigh", cumulus + "neigh.json", cumulus + "migrations.pcapng"}, 0, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := New()
			var out bytes.Buffer
			c.SetOut(&out)
			c.SetErr(&out)
			c.SetArgs(append([]string{"replay"}, tt.args...))
			err := c.ExecuteContext(context.Background())
			if got := exitStatus(err); got != tt.status {
				t.Errorf("exit status %d, want %d (error %v)", got, tt.status, err)
			}
			if err == nil {
				return
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			for _, goism := range []string{"Go struct", "Go value", "unmarshal", "strconv.", "netip.", " json:", "bufio.", "open /"} {
				if strings.Contains(err.Error(), goism) {
					t.Errorf("error %q speaks Go (%q)", err, goism)
				}
			}
		})
	}
}
