package neigh

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

var (
	vm    = net.HardwareAddr{2, 0, 0x5e, 0x10, 0, 0x0a}
	other = net.HardwareAddr{2, 0, 0x5e, 0x10, 0, 0x0b}
	v4    = netip.MustParseAddr("192.0.2.10")
	v4b   = netip.MustParseAddr("192.0.2.11")
	v6    = netip.MustParseAddr("2001:db8:10::10")
)

type clock struct{ t time.Time }

func (c *clock) now() time.Time          { return c.t }
func (c *clock) advance(d time.Duration) { c.t = c.t.Add(d) }

func newTestMirror(retention time.Duration) (*Mirror, *clock) {
	c := &clock{t: time.Unix(1_700_000_000, 0)}
	m := NewMirror(retention)
	m.now = c.now
	return m, c
}

func ips(bs []Binding) []string {
	var out []string
	for _, b := range bs {
		s := b.IP.String()
		if !b.Present {
			s += " (remembered)"
		}
		if b.Remote {
			s += " remote"
		}
		out = append(out, s)
	}
	return out
}

func remote(ifindex int, ip netip.Addr, mac net.HardwareAddr) Entry {
	return Entry{IfIndex: ifindex, IP: ip, MAC: mac, State: NUDNoARP, Flags: NTFExtLearned}
}

func TestMirrorLookup(t *testing.T) {
	m, _ := newTestMirror(time.Minute)
	m.Update(remote(5, v6, vm))
	m.Update(remote(5, v4b, vm))
	m.Update(Entry{IfIndex: 5, IP: v4, MAC: vm, State: NUDReachable})
	m.Update(remote(6, netip.MustParseAddr("198.51.100.10"), vm)) // another SVI
	m.Update(remote(5, netip.MustParseAddr("192.0.2.20"), other))
	m.Update(Entry{IfIndex: 5, IP: netip.MustParseAddr("ff02::1"), MAC: vm, State: NUDNoARP}) // multicast: ignored
	want := []string{"192.0.2.10", "192.0.2.11 remote", "2001:db8:10::10 remote"}
	if diff := cmp.Diff(want, ips(m.Lookup(5, vm))); diff != "" {
		t.Errorf("Lookup(5, vm) (-want +got):\n%s", diff)
	}
	if got := m.Lookup(7, vm); len(got) != 0 {
		t.Errorf("Lookup on an interface without bindings = %v", got)
	}
	if got := m.Lookup(5, net.HardwareAddr{1, 2, 3}); got != nil {
		t.Errorf("Lookup(bad mac) = %v", got)
	}
}

func TestMirrorRemembersDeleted(t *testing.T) {
	m, c := newTestMirror(15 * time.Minute)
	m.Update(remote(5, v4, vm))
	m.Delete(remote(5, v4, vm))
	c.advance(14 * time.Minute)
	if diff := cmp.Diff([]string{"192.0.2.10 (remembered) remote"}, ips(m.Lookup(5, vm))); diff != "" {
		t.Errorf("within retention (-want +got):\n%s", diff)
	}
	c.advance(2 * time.Minute)
	if got := m.Lookup(5, vm); len(got) != 0 {
		t.Errorf("after retention Lookup = %v, want none", ips(got))
	}
	if n := m.Prune(); n != 1 {
		t.Errorf("Prune() = %d, want 1", n)
	}
	if n := m.Len(); n != 0 {
		t.Errorf("Len() after prune = %d, want 0", n)
	}
}

func TestMirrorFailedIsDeleted(t *testing.T) {
	m, _ := newTestMirror(time.Minute)
	m.Update(Entry{IfIndex: 5, IP: v4, MAC: vm, State: NUDReachable})
	m.Update(Entry{IfIndex: 5, IP: v4, State: NUDFailed}) // FAILED entries come without lladdr
	if diff := cmp.Diff([]string{"192.0.2.10 (remembered)"}, ips(m.Lookup(5, vm))); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestMirrorAddressMovesToAnotherMAC(t *testing.T) {
	m, _ := newTestMirror(time.Minute)
	m.Update(remote(5, v4, vm))
	m.Delete(remote(5, v4, vm))
	m.Update(remote(5, v4, other))
	if got := m.Lookup(5, vm); len(got) != 0 {
		t.Errorf("old MAC still has %v after the address moved", ips(got))
	}
	if diff := cmp.Diff([]string{"192.0.2.10 remote"}, ips(m.Lookup(5, other))); diff != "" {
		t.Errorf("new MAC (-want +got):\n%s", diff)
	}
}

func TestMirrorSync(t *testing.T) {
	m, _ := newTestMirror(time.Minute)
	m.Update(remote(5, v4, vm))
	m.Update(remote(5, v6, vm))
	// A fresh dump after a netlink overflow no longer lists v4.
	m.Sync([]Entry{remote(5, v6, vm), remote(5, v4b, vm)})
	want := []string{"192.0.2.10 (remembered) remote", "192.0.2.11 remote", "2001:db8:10::10 remote"}
	if diff := cmp.Diff(want, ips(m.Lookup(5, vm))); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestStateRoundTrip(t *testing.T) {
	m, c := newTestMirror(15 * time.Minute)
	m.Update(remote(5, v4, vm))
	m.Update(remote(5, v6, vm))
	m.Delete(remote(5, v4, vm)) // EVPN withdrew it; only the mirror knows it
	c.advance(time.Minute)
	m.Update(remote(7, v4b, other))
	names := map[int]string{5: "br10", 7: "br20"}
	var buf bytes.Buffer
	if err := m.Save(&buf, func(i int) string { return names[i] }); err != nil {
		t.Fatal(err)
	}

	// A restart: interface indexes changed, br20 is gone.
	r, rc := newTestMirror(15 * time.Minute)
	rc.t = c.t.Add(2 * time.Minute)
	n, err := r.Load(bytes.NewReader(buf.Bytes()), func(name string) (int, bool) {
		if name == "br10" {
			return 50, true
		}
		return 0, false
	})
	if err != nil {
		t.Fatal(err)
	}
	if n != 2 {
		t.Errorf("Load() = %d, want 2", n)
	}
	want := []string{"192.0.2.10 (remembered) remote", "2001:db8:10::10 (remembered) remote"}
	if diff := cmp.Diff(want, ips(r.Lookup(50, vm))); diff != "" {
		t.Errorf("after restart (-want +got):\n%s", diff)
	}
	// The kernel still has v6: the dump marks it present again.
	r.Sync([]Entry{remote(50, v6, vm)})
	want = []string{"192.0.2.10 (remembered) remote", "2001:db8:10::10 remote"}
	if diff := cmp.Diff(want, ips(r.Lookup(50, vm))); diff != "" {
		t.Errorf("after the dump (-want +got):\n%s", diff)
	}
	// The retention window counts from the original deletion.
	rc.advance(13 * time.Minute)
	if diff := cmp.Diff([]string{"2001:db8:10::10 remote"}, ips(r.Lookup(50, vm))); diff != "" {
		t.Errorf("15 min after the deletion (-want +got):\n%s", diff)
	}
}

func TestStateRejectsForeignFiles(t *testing.T) {
	for name, in := range map[string]string{
		"empty":       "",
		"garbage":     "\x00\x01not json",
		"other json":  `{"hello":"world"}`,
		"new version": `{"format":"rarp-replay-state","version":99,"bindings":[]}`,
		"bad binding": `{"format":"rarp-replay-state","version":1,"bindings":[{"dev":"br10","mac":"zz","ip":"192.0.2.1"}]}`,
	} {
		m, _ := newTestMirror(time.Minute)
		m.Update(remote(5, v4, vm))
		_, err := m.Load(strings.NewReader(in), func(string) (int, bool) { return 5, true })
		if !errors.Is(err, ErrForeignState) {
			t.Errorf("%s: error %v, want ErrForeignState", name, err)
		}
		if m.Len() != 1 {
			t.Errorf("%s: a rejected file changed the mirror", name)
		}
	}
}

// saveV1 writes m's bindings in the version 1 format (what Save wrote
// before version 2): one JSON object.
func saveV1(t testing.TB, m *Mirror, w io.Writer, name func(int) string) {
	t.Helper()
	type stateFile struct {
		Format   string         `json:"format"`
		Version  int            `json:"version"`
		Saved    time.Time      `json:"saved"`
		Bindings []stateBinding `json:"bindings"`
	}
	now := m.now()
	st := stateFile{Format: stateFormat, Version: 1, Saved: now}
	for _, s := range m.snapshot(now.UnixNano()) {
		sb := stateBinding{
			Dev: name(int(s.k.ifindex)), MAC: net.HardwareAddr(s.k.mac[:]).String(), IP: netip.AddrFrom16(s.b.ip).Unmap().String(),
			Remote: s.b.remote, Seen: time.Unix(0, s.b.seen),
		}
		if !s.b.present {
			sb.Deleted = time.Unix(0, s.b.deleted)
		}
		st.Bindings = append(st.Bindings, sb)
	}
	if err := json.NewEncoder(w).Encode(st); err != nil {
		t.Fatal(err)
	}
}

// records lists a mirror's bindings in a comparable form.
func records(m *Mirror) []string {
	var out []string
	for _, r := range m.Records() {
		out = append(out, fmt.Sprintf("%d %s %s present=%t remote=%t seen=%d", r.IfIndex, r.MAC, r.IP, r.Present, r.Remote, r.Seen.UnixNano()))
	}
	return out
}

// sorted lists m's bindings exactly; those present are listed as deleted at
// savedAt unless it is zero.
func sorted(m *Mirror, savedAt time.Time) []string {
	var out []string
	for _, s := range m.snapshot(m.now().UnixNano()) {
		if s.b.present && !savedAt.IsZero() {
			s.b.present, s.b.deleted = false, savedAt.UnixNano()
		}
		out = append(out, fmt.Sprintf("%+v", s))
	}
	slices.Sort(out)
	return out
}

// stateMirror holds bindings of every kind: present and remembered, remote
// and local, IPv4 and IPv6, on two interfaces, some MACs with several.
func stateMirror(t testing.TB) (*Mirror, *clock) {
	m, c := newTestMirror(15 * time.Minute)
	for i := range 50 {
		m.Update(remote(5, benchIP(i), benchMAC(i)))
		m.Update(Entry{IfIndex: 7, IP: netip.MustParseAddr(fmt.Sprintf("2001:db8::%x", i)), MAC: benchMAC(i), State: NUDReachable})
		c.advance(time.Second)
	}
	for i := range 10 {
		m.Delete(remote(5, benchIP(i), benchMAC(i)))
		c.advance(time.Second)
	}
	m.Update(Entry{IfIndex: 5, IP: v4, MAC: vm, State: NUDStale})
	m.Delete(Entry{IfIndex: 5, IP: v4, MAC: vm})
	return m, c
}

var stateNames = map[int]string{5: "br10", 7: "br20"}

func stateName(i int) string { return stateNames[i] }

func stateIndex(name string) (int, bool) {
	for i, n := range stateNames {
		if n == name {
			return i, true
		}
	}
	return 0, false
}

// TestStateFormat: Save writes a JSON header line and one line per binding.
func TestStateFormat(t *testing.T) {
	m, c := newTestMirror(15 * time.Minute)
	m.Update(remote(5, v4, vm))
	c.advance(time.Second)
	m.Update(Entry{IfIndex: 5, IP: v6, MAC: vm, State: NUDReachable})
	c.advance(time.Second)
	m.Delete(remote(5, v4, vm))
	var buf bytes.Buffer
	if err := m.Save(&buf, stateName); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(buf.String(), "\n")
	if len(lines) != 4 || lines[3] != "" {
		t.Fatalf("Save wrote %q, want a header and two lines", buf.String())
	}
	var h stateHeader
	if err := json.Unmarshal([]byte(lines[0]), &h); err != nil || h.Format != "rarp-replay-state" || h.Version != 2 || h.Bindings != 2 || !h.Saved.Equal(c.t) {
		t.Errorf("header %s (%v)", lines[0], err)
	}
	t0 := time.Unix(1_700_000_000, 0).UnixNano()
	want := []string{
		fmt.Sprintf("br10 02:00:5e:10:00:0a 192.0.2.10 remote %d %d", t0, t0+2e9),
		fmt.Sprintf("br10 02:00:5e:10:00:0a 2001:db8:10::10 local %d -", t0+1e9),
	}
	got := lines[1:3]
	if got[0] > got[1] {
		got[0], got[1] = got[1], got[0]
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("bindings (-want +got):\n%s", diff)
	}
}

// TestStateRoundTripAll: every kind of binding survives Save and Load
// unchanged, in both formats.
func TestStateRoundTripAll(t *testing.T) {
	m, c := stateMirror(t)
	want := records(m)
	for _, version := range []int{2, 1} {
		var buf bytes.Buffer
		if version == 2 {
			if err := m.Save(&buf, stateName); err != nil {
				t.Fatal(err)
			}
		} else {
			saveV1(t, m, &buf, stateName)
		}
		r, rc := newTestMirror(15 * time.Minute)
		rc.t = c.t
		n, err := r.Load(&buf, stateIndex)
		if err != nil || n != len(want) {
			t.Fatalf("version %d: Load() = %d, %v; want %d", version, n, err, len(want))
		}
		// Load adds bindings as remembered (the dump marks them present),
		// deleted when saved if they were present.
		if diff := cmp.Diff(sorted(m, c.t), sorted(r, time.Time{})); diff != "" {
			t.Errorf("version %d: after Load (-want +got):\n%s", version, diff)
		}
	}
}

// TestStateLoadsVersion1: a file the previous release wrote still loads.
func TestStateLoadsVersion1(t *testing.T) {
	const old = `{"format":"rarp-replay-state","version":1,"saved":"2023-11-14T22:15:00+01:00","bindings":[` +
		`{"dev":"br10","mac":"02:00:5e:10:00:0a","ip":"192.0.2.10","remote":true,"seen":"2023-11-14T22:10:00+01:00","deleted":"2023-11-14T22:12:00+01:00"},` +
		`{"dev":"br10","mac":"02:00:5e:10:00:0a","ip":"2001:db8:10::10","seen":"2023-11-14T22:14:00+01:00"},` +
		`{"dev":"gone","mac":"02:00:5e:10:00:0b","ip":"192.0.2.11","seen":"2023-11-14T22:14:00+01:00"}]}` + "\n"
	m, c := newTestMirror(15 * time.Minute)
	c.t = time.Date(2023, 11, 14, 21, 20, 0, 0, time.UTC)
	n, err := m.Load(strings.NewReader(old), stateIndex)
	if err != nil || n != 2 {
		t.Fatalf("Load() = %d, %v; want 2", n, err)
	}
	want := []string{"192.0.2.10 (remembered) remote", "2001:db8:10::10 (remembered)"}
	if diff := cmp.Diff(want, ips(m.Lookup(5, vm))); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	for _, empty := range []string{
		`{"format":"rarp-replay-state","version":1,"saved":"2023-11-14T22:15:00+01:00","bindings":null}`,
		`{"format":"rarp-replay-state","version":1,"saved":"2023-11-14T22:15:00+01:00","bindings":[]}`,
	} {
		if n, err := m.Load(strings.NewReader(empty), stateIndex); n != 0 || err != nil {
			t.Errorf("Load(%s) = %d, %v", empty, n, err)
		}
	}
}

// TestStateCaps: a file over the size cap or the binding cap is refused
// with an error naming the cap, in both formats, and the mirror unchanged.
func TestStateCaps(t *testing.T) {
	m, _ := stateMirror(t)
	var v2, v1 bytes.Buffer
	if err := m.Save(&v2, stateName); err != nil {
		t.Fatal(err)
	}
	saveV1(t, m, &v1, stateName)
	n := m.Len()
	for _, tt := range []struct {
		name string
		file []byte
		lim  LoadLimits
		want string
	}{
		{"v2 size", v2.Bytes(), LoadLimits{MaxBytes: int64(v2.Len() - 1), MaxEntries: n}, fmt.Sprintf("over the size cap of %d bytes", v2.Len()-1)},
		{"v1 size", v1.Bytes(), LoadLimits{MaxBytes: int64(v1.Len() - 1), MaxEntries: n}, fmt.Sprintf("over the size cap of %d bytes", v1.Len()-1)},
		{"v2 entries", v2.Bytes(), LoadLimits{MaxBytes: 1 << 20, MaxEntries: n - 1}, fmt.Sprintf("over the cap of %d bindings", n-1)},
		{"v1 entries", v1.Bytes(), LoadLimits{MaxBytes: 1 << 20, MaxEntries: n - 1}, fmt.Sprintf("over the cap of %d bindings", n-1)},
		{"padded", append(bytes.Repeat([]byte(" "), 1<<20), v2.Bytes()...), LoadLimits{MaxBytes: 1 << 20, MaxEntries: n}, "over the size cap of 1 MiB"},
		{"default size", nil, DefaultLoadLimits, "over the size cap of 256 MiB"},
	} {
		r, _ := newTestMirror(15 * time.Minute)
		r.Update(remote(5, v4b, other))
		var err error
		if tt.file == nil { // a sparse file: refused from its size, unread
			path := filepath.Join(t.TempDir(), "state")
			f, ferr := os.Create(path)
			if ferr != nil {
				t.Fatal(ferr)
			}
			f.Write(v2.Bytes())
			if ferr := f.Truncate(900 << 20); ferr != nil {
				t.Fatal(ferr)
			}
			f.Seek(0, io.SeekStart)
			_, err = r.Load(f, stateIndex)
			f.Close()
		} else {
			_, err = r.LoadLimited(bytes.NewReader(tt.file), stateIndex, tt.lim)
		}
		if !errors.Is(err, ErrStateTooLarge) || !strings.Contains(fmt.Sprint(err), tt.want) {
			t.Errorf("%s: error %v, want ErrStateTooLarge %q", tt.name, err, tt.want)
		}
		if r.Len() != 1 {
			t.Errorf("%s: a refused file changed the mirror", tt.name)
		}
		// Exactly at the caps, the file loads.
		if tt.file != nil && !strings.HasPrefix(tt.name, "padded") {
			if _, err := r.LoadLimited(bytes.NewReader(tt.file), stateIndex, LoadLimits{MaxBytes: int64(len(tt.file)), MaxEntries: n}); err != nil {
				t.Errorf("%s: at the caps: %v", tt.name, err)
			}
		}
	}
}

// TestStateRejectsDamagedLines: a version 2 file damaged after its header is
// refused, the mirror unchanged.
func TestStateRejectsDamagedLines(t *testing.T) {
	m, _ := stateMirror(t)
	var buf bytes.Buffer
	if err := m.Save(&buf, stateName); err != nil {
		t.Fatal(err)
	}
	good := buf.String()
	hdr, body, _ := strings.Cut(good, "\n")
	lines := strings.Split(strings.TrimSuffix(body, "\n"), "\n")
	for name, in := range map[string]string{
		"truncated line":  good[:len(good)-5],
		"missing line":    hdr + "\n" + strings.Join(lines[1:], "\n") + "\n",
		"extra line":      good + lines[0] + "\n",
		"no newline":      strings.TrimSuffix(good, "\n"),
		"blank line":      good + "\n",
		"long line":       hdr + "\n" + strings.Repeat("x", 5000) + "\n",
		"5 fields":        hdr + "\n" + "br10 02:00:5e:10:00:0a 192.0.2.10 remote 1\n",
		"7 fields":        hdr + "\n" + "br10 02:00:5e:10:00:0a 192.0.2.10 remote 1 - x\n",
		"bad mac":         hdr + "\n" + "br10 02:00:5e:10:00 192.0.2.10 remote 1 -\n",
		"bad ip":          hdr + "\n" + "br10 02:00:5e:10:00:0a 192.0.2.300 remote 1 -\n",
		"zone":            hdr + "\n" + "br10 02:00:5e:10:00:0a fe80::1%br10 remote 1 -\n",
		"bad kind":        hdr + "\n" + "br10 02:00:5e:10:00:0a 192.0.2.10 evpn 1 -\n",
		"negative seen":   hdr + "\n" + "br10 02:00:5e:10:00:0a 192.0.2.10 remote -1 -\n",
		"overflow seen":   hdr + "\n" + "br10 02:00:5e:10:00:0a 192.0.2.10 remote 9999999999999999999 -\n",
		"empty dev":       hdr + "\n" + " 02:00:5e:10:00:0a 192.0.2.10 remote 1 -\n",
		"no count":        strings.Replace(good, `"bindings":`, `"count":`, 1),
		"array in v2":     `{"format":"rarp-replay-state","version":2,"saved":"2023-11-14T22:15:00Z","bindings":[]}` + "\n",
		"header trailing": strings.Replace(good, "}\n", "} x\n", 1),
	} {
		r, _ := newTestMirror(15 * time.Minute)
		r.Update(remote(5, v4b, other))
		_, err := r.Load(strings.NewReader(in), stateIndex)
		if !errors.Is(err, ErrForeignState) {
			t.Errorf("%s: error %v, want ErrForeignState", name, err)
		}
		if r.Len() != 1 {
			t.Errorf("%s: a rejected file changed the mirror", name)
		}
	}
}

// blockedWriter blocks in Write until its pipe is read (never, here),
// after telling that Save got there.
type blockedWriter struct {
	writing chan struct{}
	once    bool
	w       io.Writer
}

func (b *blockedWriter) Write(p []byte) (int, error) {
	if !b.once {
		b.once = true
		close(b.writing)
	}
	return b.w.Write(p)
}

// TestSaveDoesNotHoldTheLock: while Save is stuck writing (a full disk, a
// hung NFS server), neighbor updates and lookups go on.
func TestSaveDoesNotHoldTheLock(t *testing.T) {
	m := benchMirror(20_000) // more than Save's buffer holds
	pr, pw := io.Pipe()
	w := &blockedWriter{writing: make(chan struct{}), w: pw}
	saved := make(chan error)
	go func() { saved <- m.Save(w, stateName) }()
	<-w.writing

	updated := make(chan struct{})
	go func() {
		m.Update(remote(5, v4, vm))
		m.Delete(remote(5, v4b, other))
		m.Prune()
		m.Lookup(5, vm)
		close(updated)
	}()
	select {
	case <-updated:
	case err := <-saved:
		t.Fatalf("Save returned %v before its writer was read", err)
	case <-time.After(10 * time.Second):
		t.Fatal("Mirror.Update is blocked while Save writes")
	}
	pr.CloseWithError(errors.New("disk gone"))
	if err := <-saved; err == nil || !strings.Contains(err.Error(), "disk gone") {
		t.Errorf("Save() = %v, want the writer's error", err)
	}
}

// TestSnapshotWhileUpdating: the snapshot releases the lock between
// batches of MACs while writers add, move, delete and prune bindings
// (run with -race). Every binding no writer touches is copied exactly once.
func TestSnapshotWhileUpdating(t *testing.T) {
	defer func(old int) { snapshotBatch = old }(snapshotBatch)
	snapshotBatch = 3
	m := NewMirror(time.Hour)
	const stable = 2000
	for i := range stable {
		m.Update(remote(5, benchIP(i), benchMAC(i)))
	}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			// New MACs (the map grows while the snapshot walks it), an
			// address moving to another MAC (a MAC leaves the map), deletes.
			ip := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
			m.Update(remote(6, ip, benchMAC(2*i)))
			m.Update(remote(6, ip, benchMAC(2*i+1)))
			m.Delete(remote(6, ip, benchMAC(2*i+1)))
			if i%100 == 0 {
				m.Prune()
			}
		}
	}()
	for range 20 {
		seen := make(map[[16]byte]int)
		for _, s := range m.snapshot(m.now().UnixNano()) {
			if s.k.ifindex == 5 {
				seen[s.b.ip]++
			}
		}
		if len(seen) != stable {
			t.Fatalf("snapshot holds %d of the %d stable bindings", len(seen), stable)
		}
		for ip, n := range seen {
			if n != 1 {
				t.Fatalf("%v copied %d times", netip.AddrFrom16(ip).Unmap(), n)
			}
		}
	}
	close(stop)
	<-done
}

// FuzzStateLoad feeds arbitrary state files to Load: an error leaves the
// mirror unchanged, success adds only valid bindings.
func FuzzStateLoad(f *testing.F) {
	m, _ := newTestMirror(15 * time.Minute)
	m.Update(remote(5, v4, vm))
	m.Update(remote(5, v6, vm))
	var buf bytes.Buffer
	m.Save(&buf, func(int) string { return "br10" })
	f.Add(buf.Bytes())
	var v1 bytes.Buffer
	saveV1(f, m, &v1, func(int) string { return "br10" })
	f.Add(v1.Bytes())
	f.Add([]byte(`{"format":"rarp-replay-state","version":1,"bindings":[{"dev":"br10","mac":"02:00:00:00:00:01","ip":"::ffff:192.0.2.1"}]}`))
	f.Add([]byte(`{"format":"rarp-replay-state","version":2,"saved":"2023-11-14T22:15:00Z","bindings":1}` + "\n" +
		"br10 02:00:00:00:00:01 ::ffff:192.0.2.1 local 1700000000000000000 -\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, _ := newTestMirror(15 * time.Minute)
		r.Update(remote(5, v4b, other))
		n, err := r.Load(bytes.NewReader(data), func(string) (int, bool) { return 5, true })
		if err != nil {
			if r.Len() != 1 {
				t.Fatalf("a rejected file changed the mirror to %d bindings", r.Len())
			}
			return
		}
		if r.Len() > 1+n {
			t.Fatalf("Load added %d but the mirror holds %d", n, r.Len())
		}
		for _, rec := range r.Records() {
			if !rec.IP.IsValid() || len(rec.MAC) != 6 {
				t.Fatalf("invalid binding %+v", rec)
			}
		}
	})
}

// TestLenCounts: Len and Counts, kept as bindings are added, deleted and
// forgotten, equal a count of the mirror through random updates, moves,
// deletes, prunes, syncs and a load.
func TestLenCounts(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, 1))
	now := time.Unix(1_700_000_000, 0)
	m := NewMirror(time.Minute)
	m.now = func() time.Time { return now }
	count := func() int {
		n := 0
		for _, set := range m.byMAC {
			n += len(set)
		}
		return n
	}
	check := func(step string) {
		t.Helper()
		present := 0
		for _, set := range m.byMAC {
			for _, b := range set {
				if b.present {
					present++
				}
			}
		}
		if got, want := m.Len(), count(); got != want {
			t.Fatalf("%s: Len() = %d, the mirror holds %d", step, got, want)
		}
		if kernel, remembered := m.Counts(); kernel != present || kernel+remembered != m.Len() {
			t.Fatalf("%s: Counts() = %d in the kernel, %d remembered; the mirror holds %d present of %d", step, kernel, remembered, present, m.Len())
		}
	}
	entry := func() Entry {
		return Entry{IfIndex: 1 + r.IntN(2), IP: netip.AddrFrom4([4]byte{192, 0, 2, byte(r.IntN(40))}),
			MAC: net.HardwareAddr{2, 0, 0, 0, 0, byte(1 + r.IntN(5))}, State: NUDReachable}
	}
	for i := range 5000 {
		e := entry()
		switch r.IntN(12) {
		case 0, 1:
			m.Delete(e)
		case 2, 3:
			now = now.Add(time.Duration(r.IntN(30)) * time.Second)
			m.Prune()
		case 4: // a resync: a dump of some entries
			dump := make([]Entry, r.IntN(20))
			for j := range dump {
				dump[j] = entry()
			}
			m.Sync(dump)
		case 5:
			e.State = NUDFailed
			m.Update(e)
		default:
			m.Update(e)
		}
		check(fmt.Sprintf("step %d", i))
	}
	var buf bytes.Buffer
	if err := m.Save(&buf, func(i int) string { return fmt.Sprint("if", i) }); err != nil {
		t.Fatal(err)
	}
	fresh := NewMirror(time.Minute)
	fresh.now = m.now
	if _, err := fresh.Load(&buf, func(name string) (int, bool) { return int(name[2] - '0'), true }); err != nil {
		t.Fatal(err)
	}
	m = fresh
	check("after Load")
}
