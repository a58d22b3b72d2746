package link

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// FuzzIPRoute2 feeds arbitrary `ip -d -j addr show` and `bridge -j vlan
// show` JSON to the link model: an error or a table, never a panic, and the
// table must answer Port for every link it holds.
func FuzzIPRoute2(f *testing.F) {
	for _, layout := range []string{"cumulus", "sonic"} {
		dir := filepath.Join("..", "..", "pcaps", "layouts", layout)
		l, _ := os.ReadFile(filepath.Join(dir, "links.json"))
		v, _ := os.ReadFile(filepath.Join(dir, "bridge-vlan.json"))
		f.Add(l, v, uint16(10))
	}
	f.Add([]byte(`[{"ifindex":1,"ifname":"a","master":"a","link":"a","linkinfo":{"info_kind":"vlan","info_data":{"id":5}}}]`), []byte(`[{"ifname":"a","vlans":[{"vlan":5,"vlanEnd":9}]}]`), uint16(5))
	f.Fuzz(func(t *testing.T, links, vlans []byte, tag uint16) {
		tab, err := FromIPRoute2(bytes.NewReader(links), bytes.NewReader(vlans))
		if err != nil {
			return
		}
		for _, l := range tab.All() {
			p, err := tab.Port(l.Index, []uint16{tag})
			if err == nil && p.SVI.Index == 0 && p.SVI.Name == "" && l.Index != 0 {
				t.Fatalf("port %s resolved to an empty SVI", l.Name)
			}
			tab.Port(l.Index, nil)
			tab.AccessPort(l.Index)
		}
	})
}
