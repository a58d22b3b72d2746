package replay

import (
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"strings"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
	"github.com/rarp-replay/rarp-replay/internal/engine"
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

// jsonLine renders a frame's decision; since is its time since the first
// frame.
func jsonLine(l Line, since time.Duration) JSONLine {
	d := l.Decision
	j := JSONLine{Frame: l.N, TimeMS: ms(since), Port: d.Port, Verdict: string(d.Verdict), Reason: d.Reason}
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
	return j
}

func jsonMigration(r engine.Report) JSONMigration {
	return JSONMigration{Migration: r.MAC.String(), Port: r.Port, SVI: r.SVI,
		Verified: strs(r.Verified), Failed: strs(r.Failed), Programmed: strs(r.Programmed), LatencyMS: ms(r.Latency)}
}

// clock measures times from the first frame.
type clock struct {
	t0      time.Time
	started bool
}

func (c *clock) since(t time.Time) time.Duration {
	if !c.started {
		c.t0, c.started = t, true
	}
	return t.Sub(c.t0)
}

// TextWriter is a Sink that prints a replay for humans as it happens: one
// line per frame (number, time since the first frame, verdict, kind, MAC,
// port, then the drop reason, the addresses probed or the address verified),
// one per binding programmed, in the words of the equivalent command, and
// one per migration when it ends. Probes are not printed.
type TextWriter struct {
	w     io.Writer
	clock clock
}

// NewTextWriter returns a TextWriter printing to w.
func NewTextWriter(w io.Writer) *TextWriter { return &TextWriter{w: w} }

// Frame prints a frame's line.
func (tw *TextWriter) Frame(l Line) error {
	j := jsonLine(l, tw.clock.since(l.Time))
	line := fmt.Sprintf("#%d +%.1fms %s", j.Frame, j.TimeMS, j.Verdict)
	for _, kv := range [][2]string{{"", j.Kind}, {"mac=", j.MAC}, {"port=", j.Port}, {"reason=", j.Reason}, {"probes=", strings.Join(j.Probes, ",")}} {
		if kv[1] != "" {
			line += " " + kv[0] + kv[1]
		}
	}
	if j.IP != "" && j.Verdict != "drop" || j.IP != "" && j.Reason == "unsolicited-reply" {
		line += " ip=" + j.IP
	}
	_, err := fmt.Fprintln(tw.w, line)
	return err
}

// Migration prints a migration's line.
func (tw *TextWriter) Migration(r engine.Report) error {
	m := jsonMigration(r)
	_, err := fmt.Fprintf(tw.w, "migration mac=%s port=%s svi=%s verified=%s failed=%s programmed=%s\n",
		m.Migration, m.Port, m.SVI, list(m.Verified), list(m.Failed), list(m.Programmed))
	return err
}

// Program prints what would have been programmed.
func (tw *TextWriter) Program(p Programmed) error {
	_, err := fmt.Fprintf(tw.w, "program ip neigh replace %s lladdr %s dev %s nud reachable\n", p.IP, p.MAC, p.Dev)
	return err
}

// Probe prints nothing (see ProbeWriter).
func (tw *TextWriter) Probe(Probe) error { return nil }

func list(s []string) string {
	if len(s) == 0 {
		return "-"
	}
	return strings.Join(s, ",")
}

// JSONWriter is a Sink that prints a replay as JSON lines as it happens: a
// JSONLine per frame, a JSONProgram per binding programmed and a
// JSONMigration per migration, in the order of TextWriter's lines.
type JSONWriter struct {
	enc   *json.Encoder
	clock clock
}

// NewJSONWriter returns a JSONWriter printing to w.
func NewJSONWriter(w io.Writer) *JSONWriter { return &JSONWriter{enc: json.NewEncoder(w)} }

// Frame prints a frame's JSONLine.
func (jw *JSONWriter) Frame(l Line) error {
	return jw.enc.Encode(jsonLine(l, jw.clock.since(l.Time)))
}

// Migration prints a JSONMigration.
func (jw *JSONWriter) Migration(r engine.Report) error { return jw.enc.Encode(jsonMigration(r)) }

// Program prints a JSONProgram.
func (jw *JSONWriter) Program(p Programmed) error {
	return jw.enc.Encode(JSONProgram{Program: p.IP.String(), LLAddr: p.MAC.String(), Dev: p.Dev})
}

// Probe prints nothing (see ProbeWriter).
func (jw *JSONWriter) Probe(Probe) error { return nil }

// JSONProgram is the machine-readable form of a binding the daemon would
// have programmed.
type JSONProgram struct {
	Program string `json:"program"` // the address
	LLAddr  string `json:"lladdr"`
	Dev     string `json:"dev"`
}

// ProbeWriter is a Sink that writes the frames the daemon would have sent
// as a pcap file, with the times it would have sent them.
type ProbeWriter struct {
	pw *pcapgo.Writer
}

// NewProbeWriter writes a pcap file header to w and returns a ProbeWriter
// writing the probes after it.
func NewProbeWriter(w io.Writer) (*ProbeWriter, error) {
	pw := pcapgo.NewWriterNanos(w)
	if err := pw.WriteFileHeader(65535, layers.LinkTypeEthernet); err != nil {
		return nil, err
	}
	return &ProbeWriter{pw: pw}, nil
}

// Probe writes a probe.
func (w *ProbeWriter) Probe(p Probe) error {
	ci := gopacket.CaptureInfo{Timestamp: p.Time, CaptureLength: len(p.Frame), Length: len(p.Frame)}
	return w.pw.WritePacket(ci, p.Frame)
}

// Frame writes nothing.
func (w *ProbeWriter) Frame(Line) error { return nil }

// Migration writes nothing.
func (w *ProbeWriter) Migration(engine.Report) error { return nil }

// Program writes nothing.
func (w *ProbeWriter) Program(Programmed) error { return nil }
