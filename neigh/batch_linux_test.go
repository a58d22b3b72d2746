package neigh

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/rarp-replay/rarp-replay/internal/nstest"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// TestAppendReplace checks the batch encoder against the request
// netlink.NeighSet sends (the one Program uses), byte for byte, for IPv4,
// IPv4-mapped and IPv6 addresses.
func TestAppendReplace(t *testing.T) {
	mac := net.HardwareAddr{0x02, 0x52, 0x53, 0, 0x01, 0xfe}
	for i, ip := range []string{"192.0.2.10", "::ffff:198.51.100.7", "2001:db8::1:2", "fe80::52:53ff:fe00:1fe"} {
		addr := netip.MustParseAddr(ip)
		seq := uint32(1000 + i)
		req := nl.NewNetlinkRequest(unix.RTM_NEWNEIGH, unix.NLM_F_CREATE|unix.NLM_F_REPLACE|unix.NLM_F_ACK)
		fam := netlink.FAMILY_V4
		if addr.Unmap().Is6() {
			fam = netlink.FAMILY_V6
		}
		req.AddData(&netlink.Ndmsg{Family: uint8(fam), Index: 42, State: netlink.NUD_REACHABLE})
		req.AddData(nl.NewRtAttr(unix.NDA_DST, addr.Unmap().AsSlice()))
		req.AddData(nl.NewRtAttr(unix.NDA_LLADDR, mac))
		req.Seq, req.Pid = seq, 0
		want := req.Serialize()
		got := appendReplace([]byte{0xee}, seq, Replace{IfIndex: 42, IP: addr, MAC: mac})
		if got[0] != 0xee || !slices.Equal(got[1:], want) {
			t.Errorf("%s:\n got % x\nwant % x", ip, got[1:], want)
		}
	}
}

// TestProgramBatch programs 300 bindings through one kept-open socket in a
// namespace of its own (three system calls of at most MaxBatch), over NOARP
// extern_learn remote entries and where there was none, with a refused one
// (no such interface) and an invalid one among them, and reads the table
// back: each programmed one is local (no extern_learn), reachable and bound
// to its MAC; only the two bad ones fail, with their own errors.
func TestProgramBatch(t *testing.T) {
	nstest.RequireRoot(t)
	ns := nstest.Namespace(t, "batch")
	nstest.Sh(t, fmt.Sprintf(`ip -n %[1]s link add br0 type bridge && ip -n %[1]s link set br0 up &&
		ip -n %[1]s addr add 198.18.0.1/16 dev br0 && ip -n %[1]s addr add 2001:db8:18::1/64 dev br0 nodad`, ns))
	var bs []Replace
	var batch []string
	for i := range 300 {
		ip := netip.AddrFrom4([4]byte{198, 18, byte(1 + i/250), byte(1 + i%250)})
		if i%3 == 0 {
			ip = netip.MustParseAddr(fmt.Sprintf("2001:db8:18::1:%x", i))
		}
		mac := net.HardwareAddr{2, 0x52, 0x53, 0, byte(i >> 8), byte(i)}
		if i%2 == 0 { // a remote binding EVPN installed, to another MAC
			batch = append(batch, fmt.Sprintf("neigh replace %s lladdr 02:ee:00:00:%02x:%02x dev br0 nud noarp extern_learn", ip, i>>8, i&0xff))
		}
		bs = append(bs, Replace{IP: ip, MAC: mac})
	}
	file := filepath.Join(t.TempDir(), "batch")
	if err := os.WriteFile(file, []byte(strings.Join(batch, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	nstest.Run(t, "ip", "-n", ns, "-batch", file)
	br := ifindexIn(t, ns, "br0")
	for i := range bs {
		bs[i].IfIndex = br
	}
	const refused, invalid = 17, 205
	bs[refused].IfIndex = 9999
	bs[invalid].MAC = bs[invalid].MAC[:4]

	k := NewKernel(nil)
	defer k.Close()
	var errs []error
	nstest.InNamespace(t, ns, func() { errs = k.ProgramBatch(bs) })
	if len(errs) != len(bs) {
		t.Fatalf("%d errors for %d bindings", len(errs), len(bs))
	}
	for i, err := range errs {
		switch i {
		case refused:
			if !errors.Is(err, syscall.ENODEV) {
				t.Errorf("binding on ifindex 9999: err %v, want ENODEV", err)
			}
		case invalid:
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("binding with a 4-byte MAC: err %v, want ErrInvalid", err)
			}
		default:
			if err != nil {
				t.Errorf("binding %d (%s): %v", i, bs[i].IP, err)
			}
		}
	}
	type entry struct {
		Dst    string   `json:"dst"`
		LLAddr string   `json:"lladdr"`
		State  []string `json:"state"`
		Flags  []string `json:"flags"`
	}
	var got []entry
	for _, fam := range []string{"-4", "-6"} {
		var es []entry
		if err := json.Unmarshal([]byte(nstest.Run(t, "ip", "-n", ns, "-j", fam, "neigh", "show", "dev", "br0")), &es); err != nil {
			t.Fatal(err)
		}
		got = append(got, es...)
	}
	byIP := map[string]entry{}
	for _, e := range got {
		byIP[netip.MustParseAddr(e.Dst).String()] = e
	}
	for i, b := range bs {
		e, ok := byIP[b.IP.String()]
		if i == refused || i == invalid {
			if ok && e.LLAddr == b.MAC.String() {
				t.Errorf("%s: bound to %s, but its binding failed", b.IP, e.LLAddr)
			}
			continue
		}
		switch {
		case !ok:
			t.Errorf("%s: not in the table", b.IP)
		case e.LLAddr != b.MAC.String() || !slices.Equal(e.State, []string{"REACHABLE"}) || slices.Contains(e.Flags, "extern_learn"):
			t.Errorf("%s: %+v, want lladdr %s REACHABLE without extern_learn", b.IP, e, b.MAC)
		}
	}
	// The socket stays usable after a batch with refusals.
	var again []error
	nstest.InNamespace(t, ns, func() { again = k.ProgramBatch(bs[:1]) })
	if again[0] != nil {
		t.Errorf("second batch: %v", again[0])
	}
}

func ifindexIn(t *testing.T, ns, name string) int {
	t.Helper()
	var l []struct {
		Index int `json:"ifindex"`
	}
	if err := json.Unmarshal([]byte(nstest.Run(t, "ip", "-n", ns, "-j", "link", "show", name)), &l); err != nil || len(l) != 1 {
		t.Fatalf("ifindex of %s: %v", name, err)
	}
	return l[0].Index
}
