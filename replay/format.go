package replay

import (
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"strings"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
)

// JSONLine is the machine-readable form of one decision (`replay --json`).
type JSONLine struct {
	Frame   int      `json:"frame"`
	TimeMS  float64  `json:"time_ms"` // since the first frame
	Port    string   `json:"port,omitempty"`
	Kind    string   `json:"kind,omitempty"`
	MAC     string   `json:"mac,omitempty"`
	IP      string   `json:"ip,omitempty"`
	Verdict string   `json:"verdict"`
	Reason  string   `json:"reason,omitempty"`
	Probes  []string `json:"probes,omitempty"`
}

// JSONMigration is the machine-readable form of one migration.
type JSONMigration struct {
	Migration  string   `json:"migration"` // the MAC
	Port       string   `json:"port"`
	SVI        string   `json:"svi"`
	Verified   []string `json:"verified"`
	Failed     []string `json:"failed"`
	Programmed []string `json:"programmed"`
	LatencyMS  float64  `json:"rarp_to_programmed_ms"`
}

func ms(d interface{ Microseconds() int64 }) float64 { return float64(d.Microseconds()) / 1000 }

func strs(as []netip.Addr) []string {
	out := make([]string, len(as))
	for i, a := range as {
		out[i] = a.String()
	}
	return out
}

func (res Result) jsonLines() []JSONLine {
	out := make([]JSONLine, 0, len(res.Lines))
	for _, l := range res.Lines {
		d := l.Decision
		j := JSONLine{Frame: l.N, TimeMS: ms(l.Time.Sub(res.Lines[0].Time)), Port: d.Port, Verdict: string(d.Verdict), Reason: d.Reason}
		if d.Kind != 0 {
			j.Kind = d.Kind.String()
		}
		if d.MAC != nil {
			j.MAC = d.MAC.String()
		}
		if d.IP.IsValid() {
			j.IP = d.IP.String()
		}
		if len(d.Probes) > 0 {
			j.Probes = strs(d.Probes)
		}
		out = append(out, j)
	}
	return out
}

func (res Result) jsonMigrations() []JSONMigration {
	out := make([]JSONMigration, 0, len(res.Reports))
	for _, r := range res.Reports {
		out = append(out, JSONMigration{Migration: r.MAC.String(), Port: r.Port, SVI: r.SVI,
			Verified: strs(r.Verified), Failed: strs(r.Failed), Programmed: strs(r.Programmed), LatencyMS: ms(r.Latency)})
	}
	return out
}

// WriteText prints one line per frame (number, time since the first frame,
// verdict, kind, MAC, port, then the drop reason, the addresses probed or the
// address verified) and one line per migration.
func (res Result) WriteText(w io.Writer) error {
	for _, j := range res.jsonLines() {
		line := fmt.Sprintf("#%d +%.1fms %s", j.Frame, j.TimeMS, j.Verdict)
		for _, kv := range [][2]string{{"", j.Kind}, {"mac=", j.MAC}, {"port=", j.Port}, {"reason=", j.Reason}, {"probes=", strings.Join(j.Probes, ",")}} {
			if kv[1] != "" {
				line += " " + kv[0] + kv[1]
			}
		}
		if j.IP != "" && j.Verdict != "drop" || j.IP != "" && j.Reason == "unsolicited-reply" {
			line += " ip=" + j.IP
		}
		if _, err := fmt.Fprintln(w, line); err != nil {
			return err
		}
	}
	for _, m := range res.jsonMigrations() {
		if _, err := fmt.Fprintf(w, "migration mac=%s port=%s svi=%s verified=%s failed=%s programmed=%s\n",
			m.Migration, m.Port, m.SVI, list(m.Verified), list(m.Failed), list(m.Programmed)); err != nil {
			return err
		}
	}
	return res.writeProgrammed(w)
}

// writeProgrammed prints what would have been programmed, in the words of
// the equivalent command.
func (res Result) writeProgrammed(w io.Writer) error {
	for _, p := range res.Programmed {
		if _, err := fmt.Fprintf(w, "program ip neigh replace %s lladdr %s dev %s nud reachable\n", p.IP, p.MAC, p.Dev); err != nil {
			return err
		}
	}
	return nil
}

func list(s []string) string {
	if len(s) == 0 {
		return "-"
	}
	return strings.Join(s, ",")
}

// WriteJSON prints one JSON object per line: a JSONLine per frame, then a
// JSONMigration per migration.
func (res Result) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	for _, j := range res.jsonLines() {
		if err := enc.Encode(j); err != nil {
			return err
		}
	}
	for _, m := range res.jsonMigrations() {
		if err := enc.Encode(m); err != nil {
			return err
		}
	}
	for _, p := range res.Programmed {
		if err := enc.Encode(JSONProgram{Program: p.IP.String(), LLAddr: p.MAC.String(), Dev: p.Dev}); err != nil {
			return err
		}
	}
	return nil
}

// JSONProgram is the machine-readable form of a binding the daemon would
// have programmed.
type JSONProgram struct {
	Program string `json:"program"` // the address
	LLAddr  string `json:"lladdr"`
	Dev     string `json:"dev"`
}

// WriteProbes writes the frames the daemon would have sent as a pcap file.
func (res Result) WriteProbes(w io.Writer) error {
	pw := pcapgo.NewWriterNanos(w)
	if err := pw.WriteFileHeader(65535, layers.LinkTypeEthernet); err != nil {
		return err
	}
	for _, p := range res.Probes {
		ci := gopacket.CaptureInfo{Timestamp: p.Time, CaptureLength: len(p.Frame), Length: len(p.Frame)}
		if err := pw.WritePacket(ci, p.Frame); err != nil {
			return err
		}
	}
	return nil
}
