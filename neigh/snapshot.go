package neigh

import (
	"encoding/json"
	"io"
)

// WriteSnapshot writes records (Mirror.Records) in the JSON `ip -j neigh
// show` prints, plus "remembered": true for bindings the kernel has
// deleted: what `listen --dump-neigh` writes, for people and for `replay
// --neigh`, which read it as they read an `ip` snapshot. (The state file
// is the daemon's own memory, compact and with times: Mirror.Save.) name
// maps an interface index to its name.
func WriteSnapshot(w io.Writer, records []Record, name func(int) string) error {
	out := make([]map[string]any, 0, len(records))
	for _, r := range records {
		m := map[string]any{"dst": r.IP.String(), "dev": name(r.IfIndex), "lladdr": r.MAC.String()}
		if r.Remote {
			m["extern_learn"] = nil
			m["state"] = []string{"NOARP"}
		} else {
			m["state"] = []string{"REACHABLE"}
		}
		if !r.Present {
			m["remembered"] = true
		}
		out = append(out, m)
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", " ")
	return enc.Encode(out)
}
