//go:build linux

package main

import (
	"bufio"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
)

// event is one line of "ip -ts monitor neigh" or "bridge -timestamp monitor
// fdb", with its time.
type event struct {
	t       time.Time
	deleted bool
	fields  []string
	line    string
}

// readMonitor parses a monitor's output. "ip -ts" prefixes each line with
// [YYYY-mm-ddTHH:MM:SS.usec]; "bridge -timestamp" (and "ip -t") prints a
// "Timestamp: <ctime> <usec> usec" line before each message. Both are the
// monitor's local time when it read the message from its netlink socket.
func readMonitor(path string) ([]event, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var evs []event
	var cur time.Time
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		l := sc.Text()
		if rest, ok := strings.CutPrefix(l, "Timestamp: "); ok {
			fs := strings.Fields(rest) // Thu Nov 26 18:30:00 2026 123456 usec
			if len(fs) >= 6 {
				t, err := time.ParseInLocation("Mon Jan 2 15:04:05 2006", strings.Join(fs[:5], " "), time.Local)
				us, err2 := strconv.Atoi(fs[5])
				if err == nil && err2 == nil {
					cur = t.Add(time.Duration(us) * time.Microsecond)
				}
			}
			continue
		}
		if strings.HasPrefix(l, "[") {
			if i := strings.Index(l, "] "); i > 0 {
				if t, err := time.ParseInLocation("2006-01-02T15:04:05.000000", l[1:i], time.Local); err == nil {
					cur = t
				}
				l = l[i+2:]
			}
		}
		e := event{t: cur, line: l}
		if rest, ok := strings.CutPrefix(l, "Deleted "); ok {
			e.deleted, l = true, rest
		}
		e.fields = strings.Fields(l)
		if len(e.fields) > 0 && !cur.IsZero() {
			evs = append(evs, e)
		}
	}
	return evs, sc.Err()
}

// lladdr returns the word after "lladdr", lower case.
func lladdr(fs []string) string {
	for i := 0; i+1 < len(fs); i++ {
		if fs[i] == "lladdr" {
			return strings.ToLower(fs[i+1])
		}
	}
	return ""
}

func readPairs(path string) (map[string]string, []string, error) {
	m := map[string]string{}
	var keys []string
	if path == "" {
		return m, nil, nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, err
	}
	for _, l := range strings.Split(string(b), "\n") {
		fs := strings.Fields(l)
		if len(fs) >= 2 {
			m[strings.ToLower(fs[0])] = fs[1]
			keys = append(keys, strings.ToLower(fs[0]))
		}
	}
	return m, keys, nil
}

type dist []float64

func (d dist) q(p float64) string {
	if p == 0 && len(d) > 0 {
		return fmt.Sprintf("%.0f", slices.Min(d))
	}
	if len(d) == 0 {
		return "-"
	}
	s := slices.Clone(d)
	slices.Sort(s)
	i := int(p*float64(len(s))+0.999999) - 1 // nearest rank
	i = max(0, min(i, len(s)-1))
	return fmt.Sprintf("%.1f", s[i])
}

// qi is q for counts: no decimals.
func (d dist) qi(p float64) string { return strings.TrimSuffix(d.q(p), ".0") }

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1e3 }

// analyze prints shell assignments (for eval) summarising the old leaf's
// view of a fabric migration, and writes per-binding rows to -rows.
func analyze(args []string) error {
	fs := flag.NewFlagSet("analyze", flag.ContinueOnError)
	vmsPath := fs.String("vms", "", "VM file")
	decoysPath := fs.String("decoys", "", "\"addr mac\" per decoy")
	rarpPath := fs.String("rarp", "", "\"mac first-send-unix-ns\" per VM (announce -out)")
	fdbPath := fs.String("fdb", "", "old leaf: bridge -timestamp monitor fdb")
	neighPath := fs.String("neigh", "", "old leaf: ip -ts monitor neigh")
	neigh2Path := fs.String("neigh2", "", "new leaf: ip -ts monitor neigh")
	finalPath := fs.String("final", "", "old leaf: ip neigh show dev SVI at the end")
	tunnel := fs.String("tunnel", "vx10", "the old leaf's VXLAN device")
	since := fs.Int64("since", 0, "migration start, unix ns: earlier events are ignored")
	rowsPath := fs.String("rows", "", "write per-binding rows here")
	if err := fs.Parse(args); err != nil {
		return err
	}
	vms, err := readVMs(*vmsPath)
	if err != nil {
		return err
	}
	rarps, _, err := readPairs(*rarpPath)
	if err != nil {
		return err
	}
	decoys, decoyList, err := readPairs(*decoysPath)
	if err != nil {
		return err
	}
	from := time.Unix(0, *since)
	fdb, err := readMonitor(*fdbPath)
	if err != nil {
		return err
	}
	neigh, err := readMonitor(*neighPath)
	if err != nil {
		return err
	}
	var neigh2 []event
	if *neigh2Path != "" {
		if neigh2, err = readMonitor(*neigh2Path); err != nil {
			return err
		}
	}
	// MAC-only route on the old leaf: zebra installs the remote MAC on the
	// tunnel (first non-deletion event for the MAC on it).
	macOnly := map[string]time.Time{}
	for _, e := range fdb {
		if e.deleted || e.t.Before(from) || len(e.fields) < 3 || e.fields[1] != "dev" || e.fields[2] != *tunnel {
			continue
		}
		m := strings.ToLower(e.fields[0])
		if _, ok := macOnly[m]; !ok {
			macOnly[m] = e.t
		}
	}
	// MAC+IP route on the old leaf: zebra installs the remote binding
	// (extern_learn) for the address.
	type remote struct {
		t   time.Time
		mac string
	}
	macIP := map[string]remote{}
	for _, e := range neigh {
		if e.deleted || e.t.Before(from) || !slices.Contains(e.fields, "extern_learn") {
			continue
		}
		a := e.fields[0]
		if _, ok := macIP[a]; !ok {
			macIP[a] = remote{e.t, lladdr(e.fields)}
		}
	}
	final := map[string]string{} // addr -> lladdr of an extern_learn entry at the end
	if *finalPath != "" {
		b, err := os.ReadFile(*finalPath)
		if err != nil {
			return err
		}
		for _, l := range strings.Split(string(b), "\n") {
			f := strings.Fields(l)
			if len(f) > 0 && slices.Contains(f, "extern_learn") {
				final[f[0]] = lladdr(f)
			}
		}
	}
	var toMO, toMI, lag dist
	var rows strings.Builder
	restored, vmsRestored, moSeen, wrong := 0, 0, 0, 0
	var wrongs []string
	for _, v := range vms {
		mac := strings.ToLower(v.mac.String())
		var tr time.Time
		if ns, err := strconv.ParseInt(rarps[mac], 10, 64); err == nil {
			tr = time.Unix(0, ns)
		}
		mo, hasMO := macOnly[mac]
		if hasMO {
			moSeen++
			if !tr.IsZero() {
				toMO = append(toMO, ms(mo.Sub(tr)))
			}
		}
		all := true
		for _, a := range v.addrs {
			r, ok := macIP[a.String()]
			row := fmt.Sprintf("%s\t%s", mac, a)
			switch {
			case !ok:
				all = false
				row += "\tnever"
			case r.mac != mac:
				all = false
				wrong++
				wrongs = append(wrongs, a.String()+"->"+r.mac)
				row += "\twrong-mac " + r.mac
			default:
				ok := *finalPath == "" || final[a.String()] == mac
				if ok {
					restored++
				} else {
					all = false
				}
				if !tr.IsZero() {
					toMI = append(toMI, ms(r.t.Sub(tr)))
					row += fmt.Sprintf("\trarp->macip %.1f", ms(r.t.Sub(tr)))
				}
				if hasMO {
					lag = append(lag, ms(r.t.Sub(mo)))
					row += fmt.Sprintf("\tmacip-maconly %.1f", ms(r.t.Sub(mo)))
				}
				if !ok {
					row += "\tgone-at-end"
				}
			}
			rows.WriteString(row + "\n")
		}
		if all {
			vmsRestored++
		}
	}
	// Decoys: bound to a VM's MAC on the old leaf, owned by no VM. Any remote
	// MAC+IP route for one on the old leaf, or a local binding of one on the
	// new leaf, is a wrong route.
	for _, d := range decoyList {
		if r, ok := macIP[d]; ok {
			wrong++
			wrongs = append(wrongs, d+"(decoy of "+decoys[d]+") remote on the old leaf via "+r.mac)
		}
		for _, e := range neigh2 {
			if e.deleted || e.t.Before(from) || len(e.fields) == 0 || e.fields[0] != d ||
				slices.Contains(e.fields, "extern_learn") || !slices.ContainsFunc(e.fields, func(s string) bool {
				return s == "REACHABLE" || s == "PERMANENT" || s == "NOARP"
			}) {
				continue
			}
			wrong++
			wrongs = append(wrongs, d+" bound on the new leaf: "+e.line)
			break
		}
	}
	if *rowsPath != "" {
		if err := os.WriteFile(*rowsPath, []byte(rows.String()), 0o644); err != nil {
			return err
		}
	}
	fmt.Printf("A_VMS=%d A_BINDINGS=%d A_RESTORED=%d A_VMS_RESTORED=%d A_MO_SEEN=%d A_WRONG=%d A_DECOYS=%d\n",
		len(vms), 3*len(vms), restored, vmsRestored, moSeen, wrong, len(decoyList))
	fmt.Printf("A_MO_P50=%s A_MO_P99=%s A_MI_P50=%s A_MI_P99=%s A_MI_MAX=%s\n",
		toMO.q(.5), toMO.q(.99), toMI.q(.5), toMI.q(.99), toMI.q(1))
	fmt.Printf("A_LAG_P50=%s A_LAG_P99=%s A_LAG_MAX=%s A_LAG_N=%d\n", lag.q(.5), lag.q(.99), lag.q(1), len(lag))
	fmt.Printf("A_WRONG_LIST=%q\n", strings.Join(wrongs, "; "))
	return nil
}

// loss prints shell assignments summarising the client's stream: per target
// packets sent, received (by any responder) and lost, and, when the stream's
// tail was lost, from when on (ms after -ref).
func loss(args []string) error {
	fs := flag.NewFlagSet("loss", flag.ContinueOnError)
	sentPath := fs.String("sent", "", "stream -out file")
	rxList := fs.String("rx", "", "comma-separated respond -rx files")
	ref := fs.Int64("ref", 0, "reference time, unix ns (the first RARP)")
	rowsPath := fs.String("rows", "", "write per-target rows here")
	if err := fs.Parse(args); err != nil {
		return err
	}
	got := map[string]map[uint32]bool{}
	for _, p := range strings.Split(*rxList, ",") {
		if p == "" {
			continue
		}
		b, err := os.ReadFile(p)
		if err != nil {
			continue // a responder that never wrote (killed): it received nothing we can count
		}
		for _, l := range strings.Split(string(b), "\n") {
			f := strings.Fields(l)
			if len(f) != 2 {
				continue
			}
			s := got[f[0]]
			if s == nil {
				s = map[uint32]bool{}
				got[f[0]] = s
			}
			for _, r := range strings.Split(f[1], ",") {
				a, b, _ := strings.Cut(r, "-")
				x, _ := strconv.ParseUint(a, 10, 32)
				y, _ := strconv.ParseUint(b, 10, 32)
				for i := x; i <= y; i++ {
					s[uint32(i)] = true
				}
			}
		}
	}
	b, err := os.ReadFile(*sentPath)
	if err != nil {
		return err
	}
	var lost, paused, tailAfter dist
	var rows strings.Builder
	sentTotal, lostTotal, tails, interval := 0, 0, 0, int64(0)
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) != 4 {
			continue
		}
		if _, err := netip.ParseAddr(f[0]); err != nil {
			continue
		}
		n, _ := strconv.Atoi(f[1])
		start, _ := strconv.ParseInt(f[2], 10, 64)
		interval, _ = strconv.ParseInt(f[3], 10, 64)
		s := got[f[0]]
		// Packets sent before the first RARP fell into the VM's pause (the
		// migration's downtime): lost whatever announces the VM; counted apart.
		miss, pause, last := 0, 0, -1
		firstMiss := -1
		for i := 0; i < n; i++ {
			switch {
			case s[uint32(i)]:
				last = i
			case start+int64(i)*interval < *ref:
				pause++
			default:
				miss++
				if firstMiss < 0 {
					firstMiss = i
				}
			}
		}
		sentTotal += n
		lostTotal += miss
		lost = append(lost, float64(miss))
		paused = append(paused, float64(pause))
		row := fmt.Sprintf("%s\tsent %d\tlost %d\tpause %d", f[0], n, miss, pause)
		if firstMiss >= 0 {
			row += fmt.Sprintf("\tfirst lost at %.0f ms", ms(time.Duration(start+int64(firstMiss)*interval-*ref)))
		}
		if last < n-1 {
			tails++
			at := ms(time.Duration(start + int64(last+1)*interval - *ref))
			tailAfter = append(tailAfter, at)
			row += fmt.Sprintf("\tall lost after %.0f ms", at)
		}
		rows.WriteString(row + "\n")
	}
	if *rowsPath != "" {
		if err := os.WriteFile(*rowsPath, []byte(rows.String()), 0o644); err != nil {
			return err
		}
	}
	fmt.Printf("L_TARGETS=%d L_SENT=%d L_LOST=%d L_P50=%s L_MAX=%s L_PAUSE_P50=%s L_TAILS=%d L_TAIL_MIN_MS=%s L_INTERVAL_MS=%.0f\n",
		len(lost), sentTotal, lostTotal, lost.qi(.5), lost.qi(1), paused.qi(.5), tails, tailAfter.q(0), ms(time.Duration(interval)))
	return nil
}
