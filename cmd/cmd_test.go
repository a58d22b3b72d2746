package cmd

import (
	"bytes"
	"context"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/rarp-replay/rarp-replay/internal/link"
)

// TestArgumentErrors checks that bad arguments are clear errors, raised
// before anything touches the network.
func TestArgumentErrors(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"send-rarp", "--mac", "zz:zz", "-i", "eth0"}, `--mac "zz:zz"`},
		{[]string{"send-rarp", "--mac", "ff:ff:ff:ff:ff:ff", "-i", "eth0"}, "unicast"},
		{[]string{"send-rarp", "--mac", "02:00:5e:10:00:0a"}, "-i: name the interface"},
		{[]string{"send-rarp", "--mac", "02:00:5e:10:00:0a", "-i", "eth0", "--count", "0"}, "--count 0"},
		{[]string{"listen", "--probe-timeout", "0s"}, "--probe-timeout"},
		{[]string{"listen", "--probe-retries", "-1"}, "--probe-retries -1"},
		{[]string{"listen", "--probe-rate", "-1"}, "--probe-rate"},
		{[]string{"listen", "--capture-buffer", "1000"}, "--capture-buffer 1000"},
		{[]string{"listen", "--max-migrations", "-5"}, "--max-migrations -5"},
		{[]string{"listen", "--retention", "soon"}, `invalid argument "soon"`},
		{[]string{"listen", "--log-level", "loud"}, `--log-level "loud"`},
		{[]string{"listen", "--log-format", "xml"}, `--log-format "xml"`},
		{[]string{"listen", "--source", "vlan10"}, `--source "vlan10"`},
		{[]string{"listen", "--source", "vlan10=192.0.2.300"}, `--source "vlan10=192.0.2.300"`},
		{[]string{"listen", "--source", "vlan10=192.0.2.1,01:00:5e:00:00:01"}, "bad MAC"},
		{[]string{"replay"}, "accepts 1 arg"},
		{[]string{"replay", "/nonexistent.pcap"}, "no such file"},
		{[]string{"replay", "--svi-addr", "192.0.2.1", "x.pcap"}, "--svi-addr"},
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
