package neigh

import (
	"bytes"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

func benchMAC(i int) net.HardwareAddr {
	return net.HardwareAddr{2, 0, byte(i >> 24), byte(i >> 16), byte(i >> 8), byte(i)}
}

func benchIP(i int) netip.Addr {
	return netip.AddrFrom4([4]byte{198, 18 + byte(i>>16), byte(i >> 8), byte(i)})
}

func TestProcARPResolver(t *testing.T) {
	var b bytes.Buffer
	writeProcARP(&b, "br10", 3, benchMAC, benchIP)
	b.WriteString("198.18.9.9       0x1         0x0         00:00:00:00:00:00     *        br10\n")
	path := filepath.Join(t.TempDir(), "arp")
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	r := ProcARP{Path: path, Names: map[int]string{5: "br10", 6: "br20"}}
	if got := r.Lookup(5, benchMAC(1)); len(got) != 1 || got[0].IP != benchIP(1) {
		t.Errorf("Lookup(br10, mac 1) = %v, want %v", got, benchIP(1))
	}
	if got := r.Lookup(6, benchMAC(1)); len(got) != 0 {
		t.Errorf("Lookup on another interface = %v", got)
	}
}

// BenchmarkResolver compares the cost of one RARP's lookup: the netlink
// mirror (a map access) against reading /proc/net/arp per RARP (the design
// card's resolver), at 1k, 10k and 100k IPv4 bindings. The /proc file is a
// generated copy in the same format (the real one holds at most gc_thresh3
// entries and needs root to fill).
func BenchmarkResolver(b *testing.B) {
	for _, n := range []int{1_000, 10_000, 100_000} {
		m := NewMirror(time.Minute)
		for i := range n {
			m.Update(Entry{IfIndex: 5, IP: benchIP(i), MAC: benchMAC(i), State: NUDNoARP, Flags: NTFExtLearned})
		}
		var buf bytes.Buffer
		writeProcARP(&buf, "br10", n, benchMAC, benchIP)
		path := filepath.Join(b.TempDir(), "arp")
		if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
			b.Fatal(err)
		}
		proc := ProcARP{Path: path, Names: map[int]string{5: "br10"}}
		target := benchMAC(n / 2)
		b.Run("mirror/"+strconv.Itoa(n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if len(m.Lookup(5, target)) != 1 {
					b.Fatal("lookup missed")
				}
			}
		})
		b.Run("procarp/"+strconv.Itoa(n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if len(proc.Lookup(5, target)) != 1 {
					b.Fatal("lookup missed")
				}
			}
		})
	}
}
