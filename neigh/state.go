package neigh

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/netip"
	"strconv"
	"time"
)

// A state file, version 2 (what Save writes), is a JSON header line and then
// one line per binding, six fields separated by one space:
//
//	{"format":"rarp-replay-state","version":2,"saved":"2026-11-26T16:15:00.5+01:00","bindings":2,"fields":"..."}
//	br10 02:00:5e:10:00:0a 192.0.2.10 remote 1795709700500000000 -
//	br10 02:00:5e:10:00:0a 2001:db8:10::10 local 1795709640000000000 1795709690000000000
//
// The fields are the interface name, the MAC, the address, remote (EVPN,
// extern_learn) or local, when the binding was last seen in the kernel and
// when the kernel deleted it (Unix nanoseconds; "-" if it was still in the
// kernel when saved). "bindings" counts the lines: a truncated file is
// refused. Both are written and read as streams, so neither depends on the
// whole file fitting in memory.
//
// Version 1 (read, never written) was a single JSON object:
// {"format":"rarp-replay-state","version":1,"saved":TIME,"bindings":[{"dev",
// "mac","ip","remote","seen","deleted"},...]}; Load reads it binding by
// binding.
const (
	stateFormat  = "rarp-replay-state"
	stateVersion = 2
	stateFields  = "dev mac ip remote|local seen_unix_ns deleted_unix_ns|-"
	maxStateLine = 4 << 10
)

// ErrForeignState is returned by Load for a file that is not a rarp-replay
// state file of a version it reads, or is corrupt.
var ErrForeignState = errors.New("not a rarp-replay state file")

// ErrStateTooLarge is returned by Load for a file over a cap of LoadLimits.
var ErrStateTooLarge = errors.New("state file too large")

// LoadLimits caps what Load reads, so that a damaged or hostile file cannot
// take the daemon's memory or its start-up time.
type LoadLimits struct {
	MaxBytes   int64 // size of the file
	MaxEntries int   // bindings in the file
}

// DefaultLoadLimits are Load's caps: 256 MiB and 2,000,000 bindings (a
// 1,000,000-binding file is about 65 MB).
var DefaultLoadLimits = LoadLimits{MaxBytes: 256 << 20, MaxEntries: 2_000_000}

func (l LoadLimits) sizeErr() error {
	size := fmt.Sprintf("%d bytes", l.MaxBytes)
	if l.MaxBytes >= 1<<20 && l.MaxBytes%(1<<20) == 0 {
		size = fmt.Sprintf("%d MiB", l.MaxBytes>>20)
	}
	return fmt.Errorf("%w: over the size cap of %s", ErrStateTooLarge, size)
}

func (l LoadLimits) entriesErr() error {
	return fmt.Errorf("%w: over the cap of %d bindings", ErrStateTooLarge, l.MaxEntries)
}

// stateHeader is the first line of a version 2 file.
type stateHeader struct {
	Format   string    `json:"format"`
	Version  int       `json:"version"`
	Saved    time.Time `json:"saved"`
	Bindings int       `json:"bindings"`
	Fields   string    `json:"fields"`
}

// stateBinding is one binding of a version 1 file.
type stateBinding struct {
	Dev     string    `json:"dev"`
	MAC     string    `json:"mac"`
	IP      string    `json:"ip"`
	Remote  bool      `json:"remote,omitempty"`
	Seen    time.Time `json:"seen"`
	Deleted time.Time `json:"deleted,omitzero"` // zero: still in the kernel when saved
}

// Save writes the mirror's bindings, present and remembered, so that a
// restarted daemon still knows bindings the kernel forgot. name maps an
// interface index to its name (indexes do not survive a reboot).
//
// Save holds the mirror's read lock only to copy the bindings (56 bytes
// each, in batches: see snapshot); it formats and writes them after, so a
// slow disk never holds off neighbor updates or lookups.
func (m *Mirror) Save(w io.Writer, name func(int) string) error {
	now := m.now()
	snap := m.snapshot(now.UnixNano())

	bw := bufio.NewWriterSize(w, 64<<10)
	hdr, err := json.Marshal(stateHeader{Format: stateFormat, Version: stateVersion, Saved: now, Bindings: len(snap), Fields: stateFields})
	if err != nil {
		return err
	}
	bw.Write(hdr)
	bw.WriteByte('\n')
	names := make(map[int32]string)
	line := make([]byte, 0, 128)
	for i := range snap {
		s := &snap[i]
		dev, ok := names[s.k.ifindex]
		if !ok {
			dev = name(int(s.k.ifindex))
			if !validDev(dev) {
				dev = "ifindex" + strconv.Itoa(int(s.k.ifindex))
			}
			names[s.k.ifindex] = dev
		}
		line = append(line[:0], dev...)
		line = append(line, ' ')
		line = appendMAC(line, s.k.mac)
		line = append(line, ' ')
		line = netip.AddrFrom16(s.b.ip).Unmap().AppendTo(line)
		if s.b.remote {
			line = append(line, " remote "...)
		} else {
			line = append(line, " local "...)
		}
		line = strconv.AppendInt(line, s.b.seen, 10)
		if s.b.present {
			line = append(line, " -\n"...)
		} else {
			line = append(line, ' ')
			line = strconv.AppendInt(line, s.b.deleted, 10)
			line = append(line, '\n')
		}
		if _, err := bw.Write(line); err != nil {
			return err
		}
	}
	return bw.Flush()
}

// validDev reports whether an interface name can be a field of a line.
// Linux refuses names with whitespace, '/' or ':' (dev_valid_name).
func validDev(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] == 0x7f || s[i] == '/' || s[i] == ':' {
			return false
		}
	}
	return true
}

const hexDigits = "0123456789abcdef"

func appendMAC(b []byte, mac [6]byte) []byte {
	for i, x := range mac {
		if i > 0 {
			b = append(b, ':')
		}
		b = append(b, hexDigits[x>>4], hexDigits[x&0xf])
	}
	return b
}

// Load adds the bindings of a state file to the mirror as remembered ones:
// the netlink dump that follows marks those still in the kernel present.
// Bindings deleted longer ago than the retention window, on interfaces that
// no longer exist, or for an address now bound to another MAC are skipped.
// It returns how many it added. A corrupt file is an error wrapping
// ErrForeignState, a file over one of DefaultLoadLimits one wrapping
// ErrStateTooLarge; the mirror is then unchanged.
func (m *Mirror) Load(r io.Reader, index func(name string) (int, bool)) (int, error) {
	return m.LoadLimited(r, index, DefaultLoadLimits)
}

// LoadLimited is Load with other caps. It reads r as a stream: its memory
// is that of the bindings it will add (about 48 bytes each), never the
// file's. A reader with a Stat method (an *os.File) over the size cap is
// refused before it is read.
func (m *Mirror) LoadLimited(r io.Reader, index func(name string) (int, bool), lim LoadLimits) (int, error) {
	if f, ok := r.(interface{ Stat() (fs.FileInfo, error) }); ok {
		if st, err := f.Stat(); err == nil && st.Mode().IsRegular() && st.Size() > lim.MaxBytes {
			return 0, lim.sizeErr()
		}
	}
	cr := &capReader{r: r, max: lim.MaxBytes}
	ld := &loader{index: index, lim: lim}
	err := ld.read(cr)
	if cr.n > cr.max {
		return 0, lim.sizeErr()
	}
	if err != nil {
		return 0, err
	}

	// Keep what is still within the retention window, then add it under
	// the lock.
	now := m.now().UnixNano()
	saved := ld.saved.UnixNano()
	ok := ld.out[:0]
	for _, s := range ld.out {
		if s.deleted == 0 {
			if ld.saved.IsZero() {
				continue // a version 1 file without its time: too old to tell
			}
			s.deleted = saved // in the kernel then; the dump tells whether it still is
		}
		if time.Duration(now-s.deleted) > m.retention {
			continue
		}
		ok = append(ok, s)
	}
	n := 0
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, p := range ok {
		ik := ipKey{p.k.ifindex, p.ip}
		if owner, bound := m.owner[ik]; bound && owner != p.k.mac {
			continue
		}
		set := m.byMAC[p.k]
		i := find(set, p.ip)
		if i >= 0 && set[i].present {
			continue
		}
		b := binding{ip: p.ip, remote: p.remote, seen: p.seen, deleted: p.deleted}
		if i >= 0 {
			set[i] = b
		} else {
			m.byMAC[p.k] = append(set, b)
			m.n++
		}
		m.owner[ik] = p.k.mac
		n++
	}
	return n, nil
}

// capReader reads r until more than max bytes were read.
type capReader struct {
	r      io.Reader
	n, max int64
}

var errOverCap = errors.New("over the size cap")

func (c *capReader) Read(p []byte) (int, error) {
	if c.n > c.max {
		return 0, errOverCap
	}
	if rest := c.max - c.n + 1; int64(len(p)) > rest {
		p = p[:rest]
	}
	n, err := c.r.Read(p)
	c.n += int64(n)
	if c.n > c.max {
		return n, errOverCap
	}
	return n, err
}

// staged is a binding read from a state file, not yet in the mirror.
type staged struct {
	k       macKey
	ip      [16]byte
	remote  bool
	seen    int64
	deleted int64 // 0: in the kernel when saved
}

type loader struct {
	index   func(string) (int, bool)
	lim     LoadLimits
	saved   time.Time
	entries int // bindings in the file
	out     []staged

	// The last interface name looked up: files list one interface's
	// bindings in runs.
	dev      string
	devIndex int
	devFound bool
	devValid bool
}

func foreign(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrForeignState, fmt.Sprintf(format, args...))
}

// add stages one binding of the file.
func (l *loader) add(dev string, mac [6]byte, ip netip.Addr, remote bool, seen, deleted int64) error {
	l.entries++
	if l.entries > l.lim.MaxEntries {
		return l.lim.entriesErr()
	}
	if !l.devValid || dev != l.dev {
		l.dev, l.devValid = dev, true
		l.devIndex, l.devFound = l.index(dev)
	}
	if !l.devFound {
		return nil
	}
	l.out = append(l.out, staged{k: macKey{int32(l.devIndex), mac}, ip: ip.Unmap().As16(), remote: remote, seen: seen, deleted: deleted})
	return nil
}

// read reads a state file: the JSON object that begins both versions token
// by token, then version 2's lines.
func (l *loader) read(r io.Reader) error {
	dec := json.NewDecoder(r)
	dec.UseNumber()
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return foreign("not a JSON object (%v)", err)
	}
	var (
		format  string
		version int
		count   = -1 // version 2's line count
		array   bool // version 1's bindings
	)
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return foreign("%v", err)
		}
		key, _ := t.(string)
		switch key {
		case "format":
			err = dec.Decode(&format)
		case "version":
			err = dec.Decode(&version)
		case "saved":
			err = dec.Decode(&l.saved)
		case "bindings":
			if t, err = dec.Token(); err != nil {
				break
			}
			switch v := t.(type) {
			case json.Number: // version 2
				var c int64
				if c, err = v.Int64(); err == nil && c < 0 {
					err = errors.New("negative count")
				}
				if err == nil && c > int64(l.lim.MaxEntries) {
					return l.lim.entriesErr()
				}
				count = int(c)
			case json.Delim: // version 1
				if v != '[' {
					return foreign("bindings: unexpected %v", v)
				}
				array = true
				if err := l.readV1(dec); err != nil {
					return err
				}
			case nil: // version 1, no bindings
				array = true
			default:
				return foreign("bindings: unexpected %v", v)
			}
		default:
			var skip json.RawMessage
			err = dec.Decode(&skip)
		}
		if err != nil {
			return foreign("%q: %v", key, err)
		}
	}
	if _, err := dec.Token(); err != nil { // '}'
		return foreign("%v", err)
	}
	if format != stateFormat {
		return foreign("format %q version %d", format, version)
	}
	switch {
	case version == 1 && count < 0:
		return nil
	case version == 2 && count >= 0 && !array:
		if l.saved.IsZero() {
			return foreign("no saved time")
		}
		return l.readLines(bufio.NewReaderSize(io.MultiReader(dec.Buffered(), r), 64<<10), count)
	}
	return foreign("format %q version %d", format, version)
}

// readV1 reads the elements of version 1's bindings array, one at a time.
func (l *loader) readV1(dec *json.Decoder) error {
	for i := 1; dec.More(); i++ {
		var b stateBinding
		if err := dec.Decode(&b); err != nil {
			if errors.Is(err, errOverCap) {
				return err
			}
			return foreign("binding %d: %v", i, err)
		}
		ip, err := netip.ParseAddr(b.IP)
		mac, merr := net.ParseMAC(b.MAC)
		if err != nil || merr != nil || len(mac) != 6 {
			return foreign("binding %d: ip %q mac %q", i, b.IP, b.MAC)
		}
		var deleted int64
		if !b.Deleted.IsZero() {
			deleted = b.Deleted.UnixNano()
		}
		if err := l.add(b.Dev, [6]byte(mac), ip, b.Remote, b.Seen.UnixNano(), deleted); err != nil {
			return err
		}
	}
	if _, err := dec.Token(); err != nil { // ']'
		return foreign("%v", err)
	}
	return nil
}

// readLines reads version 2's binding lines after the header.
func (l *loader) readLines(br *bufio.Reader, count int) error {
	// The rest of the header line.
	rest, err := br.ReadSlice('\n')
	if err != nil {
		return lineErr(1, err)
	}
	for _, c := range rest {
		if c != ' ' && c != '\t' && c != '\r' && c != '\n' {
			return foreign("header line: trailing data")
		}
	}
	lines := 0
	for {
		line, err := br.ReadSlice('\n')
		if err == io.EOF && len(line) == 0 {
			break
		}
		if err == nil && len(line) > maxStateLine {
			err = bufio.ErrBufferFull
		}
		if err != nil {
			return lineErr(lines+2, err)
		}
		lines++
		if lines > count {
			return foreign("more than the %d bindings the header counts", count)
		}
		if err := l.parseLine(line[:len(line)-1]); err != nil {
			return fmt.Errorf("line %d: %w", lines+1, err)
		}
	}
	if lines != count {
		return foreign("truncated: %d of the %d bindings the header counts", lines, count)
	}
	return nil
}

// lineErr is the error of reading line n (the header is line 1).
func lineErr(n int, err error) error {
	switch {
	case errors.Is(err, errOverCap):
		return err
	case errors.Is(err, bufio.ErrBufferFull):
		return foreign("line %d: longer than %d bytes", n, maxStateLine)
	case errors.Is(err, io.EOF):
		return foreign("line %d: truncated (no end of line)", n)
	}
	return err // the reader's: the file may be fine
}

// parseLine parses "dev mac ip remote|local seen deleted|-".
func (l *loader) parseLine(line []byte) error {
	var f [6][]byte
	n := 0
	for n < len(f) {
		i := 0
		for i < len(line) && line[i] != ' ' {
			i++
		}
		f[n], n = line[:i], n+1
		if i == len(line) {
			line = nil
			break
		}
		line = line[i+1:]
	}
	if n != len(f) || line != nil {
		return foreign("want 6 fields")
	}
	mac, ok := parseMAC(f[1])
	if !ok {
		return foreign("bad MAC %q", f[1])
	}
	ip, err := netip.ParseAddr(string(f[2]))
	if err != nil || ip.Zone() != "" {
		return foreign("bad address %q", f[2])
	}
	var remote bool
	switch string(f[3]) {
	case "remote":
		remote = true
	case "local":
	default:
		return foreign("want remote or local, not %q", f[3])
	}
	seen, ok := parseNanos(f[4])
	if !ok {
		return foreign("bad seen time %q", f[4])
	}
	var deleted int64
	if string(f[5]) != "-" {
		if deleted, ok = parseNanos(f[5]); !ok {
			return foreign("bad deleted time %q", f[5])
		}
	}
	dev := l.dev
	if !l.devValid || string(f[0]) != l.dev {
		if !validDev(string(f[0])) {
			return foreign("bad interface name %q", f[0])
		}
		dev = string(f[0])
	}
	return l.add(dev, mac, ip, remote, seen, deleted)
}

func parseMAC(b []byte) (mac [6]byte, ok bool) {
	if len(b) != 17 {
		return mac, false
	}
	for i := range mac {
		if i > 0 && b[3*i-1] != ':' {
			return mac, false
		}
		hi, ok1 := unhex(b[3*i])
		lo, ok2 := unhex(b[3*i+1])
		if !ok1 || !ok2 {
			return mac, false
		}
		mac[i] = hi<<4 | lo
	}
	return mac, true
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// parseNanos parses a positive decimal Unix time in nanoseconds.
func parseNanos(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 19 {
		return 0, false
	}
	var v int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + int64(c-'0')
	}
	return v, v > 0 // 19 digits over MaxInt64 wrap below zero
}
