package replay

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"

	"github.com/rarp-replay/rarp-replay/internal/link"
)

// The switch's tables a replay reads come as the JSON iproute2 prints with
// -j: an array of objects, one per neighbor, interface or bridge port. The
// dumps look alike, and each command-line input wants one kind; a dump of
// another kind is refused saying which kind it is, and a malformed one
// saying what is wrong where, in the dump's own terms.

// Dump is a kind of iproute2 JSON dump.
type Dump int

// Dump kinds.
const (
	DumpUnknown     Dump = iota
	DumpNeighbors        // ip -j neigh show
	DumpLinks            // ip -d -j link show, ip -d -j addr show
	DumpBridgeVLANs      // bridge -j vlan show
	DumpFDB              // bridge -j fdb show
	DumpRoutes           // ip -j route show
	DumpState            // the daemon's --state-file
)

var dumpNames = map[Dump]string{
	DumpUnknown:     "an unknown JSON dump",
	DumpNeighbors:   "a neighbor table (`ip -j neigh show`)",
	DumpLinks:       "an interface dump (`ip -d -j addr show` or `ip -d -j link show`)",
	DumpBridgeVLANs: "a bridge VLAN dump (`bridge -j vlan show`)",
	DumpFDB:         "a bridge FDB dump (`bridge -j fdb show`)",
	DumpRoutes:      "a route table (`ip -j route show`)",
	DumpState:       "a rarp-replay state file (`listen --state-file`; `listen --dump-neigh` writes a snapshot)",
}

func (d Dump) String() string { return dumpNames[d] }

// kind tells what dump an entry comes from by the keys iproute2 gives it.
func kind(entry map[string]json.RawMessage) Dump {
	has := func(keys ...string) bool {
		for _, k := range keys {
			if _, ok := entry[k]; ok {
				return true
			}
		}
		return false
	}
	switch {
	case has("seen"):
		return DumpState
	case has("ifindex"):
		return DumpLinks
	case has("vlans"):
		return DumpBridgeVLANs
	case has("mac"):
		return DumpFDB
	case has("gateway", "protocol", "scope", "prefsrc", "metric"):
		return DumpRoutes
	case has("dst"):
		return DumpNeighbors
	}
	return DumpUnknown
}

// WrongDumpError is a dump of another kind than the one wanted.
type WrongDumpError struct {
	Want, Got Dump
	Entry     int // 1-based: the first entry of the wrong kind
}

func (e *WrongDumpError) Error() string {
	if e.Got == DumpUnknown {
		return fmt.Sprintf("entry %d is not from %s", e.Entry, e.Want)
	}
	return fmt.Sprintf("this is %s, not %s", e.Got, e.Want)
}

// ErrEmptyDump is returned for a dump that holds no entry where one is
// needed.
var ErrEmptyDump = errors.New("no entries")

// readDump reads a JSON dump of kind want: its bytes and its entries. A
// file that is not a JSON array of objects, or has an entry of another
// kind, is an error saying so.
func readDump(r io.Reader, want Dump) ([]byte, []map[string]json.RawMessage, error) {
	b, err := io.ReadAll(io.LimitReader(r, 256<<20))
	if err != nil {
		return nil, nil, err
	}
	t := bytes.TrimSpace(b)
	switch {
	case len(t) == 0:
		return nil, nil, fmt.Errorf("empty, want %s", want)
	case t[0] == '{':
		return nil, nil, fmt.Errorf("a JSON object; want %s, a JSON array", want)
	case t[0] != '[':
		return nil, nil, fmt.Errorf("not JSON, want %s", want)
	}
	var entries []map[string]json.RawMessage
	if err := json.Unmarshal(t, &entries); err != nil {
		return nil, nil, fmt.Errorf("want %s: %s", want, explainJSON(err))
	}
	for i, e := range entries {
		if k := kind(e); k != want {
			return nil, nil, &WrongDumpError{Want: want, Got: k, Entry: i + 1}
		}
	}
	return t, entries, nil
}

// explainJSON says what a JSON decoding error found, in the data's terms:
// where the syntax breaks, or which field holds what instead of what.
func explainJSON(err error) string {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return fmt.Sprintf("not valid JSON at byte %d: %s", se.Offset, se.Error())
	case errors.As(err, &te):
		got := te.Value
		if i := strings.IndexByte(got, ' '); i > 0 {
			got = got[:i] // "number 1e99"
		}
		article := "a "
		if strings.ContainsAny(got[:1], "aeiou") {
			article = "an "
		}
		what := article + got + ", want " + jsonType(te.Type)
		if te.Value != got {
			what = te.Value[len(got)+1:] + ", want " + jsonType(te.Type)
		}
		if te.Field == "" {
			return "an entry is " + what
		}
		return fmt.Sprintf("%q is %s", te.Field, what)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return "the JSON ends early (cut short?)"
	}
	return err.Error()
}

// jsonType names the JSON a Go type decodes from.
func jsonType(t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return "an integer"
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a non-negative integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Slice, reflect.Array:
		return "an array"
	}
	return "an object"
}

// LoadLinks reads the switch's interfaces: the JSON `ip -d -j addr show`
// (or `ip -d -j link show`) prints. A dump of another kind is a
// *WrongDumpError; one without the details -d adds (bridge membership
// kinds), no interfaces, or a malformed entry is an error saying so.
func LoadLinks(r io.Reader) ([]link.Link, error) {
	b, entries, err := readDump(r, DumpLinks)
	if err != nil {
		return nil, err
	}
	if len(entries) == 0 {
		return nil, fmt.Errorf("%w: want %s", ErrEmptyDump, DumpLinks)
	}
	enslaved, detailed := false, false
	for _, e := range entries {
		_, m := e["master"]
		_, d := e["linkinfo"]
		enslaved, detailed = enslaved || m, detailed || d
	}
	if enslaved && !detailed {
		return nil, errors.New("no interface details (kinds, bridge ports): dump with `ip -d -j addr show`, with -d")
	}
	links, err := link.LoadIPLinks(bytes.NewReader(b))
	if err == nil {
		return links, nil
	}
	// Find the entry at fault, to name it.
	for i, e := range entries {
		one, _ := json.Marshal([]map[string]json.RawMessage{e})
		if _, eerr := link.LoadIPLinks(bytes.NewReader(one)); eerr != nil {
			var name string
			json.Unmarshal(e["ifname"], &name)
			return nil, fmt.Errorf("entry %d (%s): %s", i+1, name, explainJSON(unwrapAll(eerr)))
		}
	}
	return nil, errors.New(explainJSON(unwrapAll(err)))
}

// LoadBridgeVLANs reads the bridge ports' VLANs: the JSON `bridge -j vlan
// show` prints. A dump of another kind is a *WrongDumpError, a malformed
// entry an error saying what is wrong where.
func LoadBridgeVLANs(r io.Reader) (map[string][]link.PortVLAN, error) {
	b, entries, err := readDump(r, DumpBridgeVLANs)
	if err != nil {
		return nil, err
	}
	vlans, err := link.LoadBridgeVLANs(bytes.NewReader(b))
	if err == nil {
		return vlans, nil
	}
	for i, e := range entries {
		one, _ := json.Marshal([]map[string]json.RawMessage{e})
		if _, eerr := link.LoadBridgeVLANs(bytes.NewReader(one)); eerr != nil {
			var name string
			json.Unmarshal(e["ifname"], &name)
			return nil, fmt.Errorf("entry %d (%s): %s", i+1, name, explainJSON(unwrapAll(eerr)))
		}
	}
	return nil, errors.New(explainJSON(unwrapAll(err)))
}

// unwrapAll returns the JSON error inside err, or err when there is none
// (link's own errors are already in the dump's terms).
func unwrapAll(err error) error {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return se
	case errors.As(err, &te):
		return te
	}
	return err
}

// LinkTable builds the link model of a switch from its interfaces and its
// bridge ports' VLANs (nil: none known), as `listen` would see it.
func LinkTable(links []link.Link, vlans map[string][]link.PortVLAN) *link.Table {
	for i := range links {
		links[i].VLANs = vlans[links[i].Name]
	}
	t := link.NewTable()
	t.Replace(links)
	return t
}
