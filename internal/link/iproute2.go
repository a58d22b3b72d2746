package link

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/netip"
	"slices"
)

// The link model's second source, beside netlink: the JSON iproute2 prints.
// Tests and replays use it to model switches this machine's kernel cannot
// build (VLAN-aware bridges, 802.1Q SVIs, VRFs).

type ipLinkJSON struct {
	Index     int      `json:"ifindex"`
	Name      string   `json:"ifname"`
	Flags     []string `json:"flags"`
	OperState string   `json:"operstate"`
	Address   string   `json:"address"`
	Link      string   `json:"link"`
	LinkIndex *int     `json:"link_index"` // the parent, when it is in another namespace
	Master    string   `json:"master"`
	LinkInfo  struct {
		Kind string `json:"info_kind"`
		Data struct {
			ID            *int `json:"id"`
			VLANFiltering *int `json:"vlan_filtering"`
		} `json:"info_data"`
		SlaveKind string `json:"info_slave_kind"`
		SlaveData struct {
			State         string `json:"state"`
			Learning      bool   `json:"learning"`
			Flood         bool   `json:"flood"`
			NeighSuppress bool   `json:"neigh_suppress"`
			Locked        bool   `json:"locked"`
		} `json:"info_slave_data"`
	} `json:"linkinfo"`
	AddrInfo []struct {
		Local     string `json:"local"`
		PrefixLen int    `json:"prefixlen"`
	} `json:"addr_info"`
}

// LoadIPLinks reads the output of `ip -d -j link show` or, with addresses,
// `ip -d -j addr show`.
func LoadIPLinks(r io.Reader) ([]Link, error) {
	var raw []ipLinkJSON
	if err := json.NewDecoder(r).Decode(&raw); err != nil {
		return nil, fmt.Errorf("ip -d -j link show: %w", err)
	}
	// Every interface has a positive ifindex and a name, each its own:
	// masters and parents are found by name.
	byName := make(map[string]int, len(raw))
	byIndex := make(map[int]string, len(raw))
	for i, l := range raw {
		switch other, dup := byIndex[l.Index]; {
		case l.Index <= 0:
			return nil, fmt.Errorf("ip -d -j link show: entry %d (%q): no ifindex", i+1, l.Name)
		case l.Name == "":
			return nil, fmt.Errorf("ip -d -j link show: entry %d (ifindex %d): no ifname", i+1, l.Index)
		case dup:
			return nil, fmt.Errorf("ip -d -j link show: ifindex %d twice (%s and %s)", l.Index, other, l.Name)
		}
		if _, dup := byName[l.Name]; dup {
			return nil, fmt.Errorf("ip -d -j link show: ifname %s twice", l.Name)
		}
		byName[l.Name], byIndex[l.Index] = l.Index, l.Name
	}
	out := make([]Link, 0, len(raw))
	for _, j := range raw {
		l := Link{
			Index: j.Index, Name: j.Name, Kind: j.LinkInfo.Kind,
			MasterIndex: byName[j.Master], ParentIndex: byName[j.Link],
			Loopback: slices.Contains(j.Flags, "LOOPBACK"), Up: slices.Contains(j.Flags, "UP"),
			Running: j.OperState == "UP", Addrs: []netip.Prefix{},
		}
		if l.Kind == "" {
			l.Kind = "device"
		}
		if mac, err := net.ParseMAC(j.Address); err == nil {
			l.MAC = mac
		}
		if id := j.LinkInfo.Data.ID; id != nil && l.Kind == "vlan" {
			l.VLANID = uint16(*id)
		}
		if f := j.LinkInfo.Data.VLANFiltering; f != nil {
			l.VLANFiltering = *f != 0
		}
		if j.Link == "" && j.LinkIndex != nil {
			l.ParentIndex = *j.LinkIndex
		}
		if sd := j.LinkInfo.SlaveData; j.LinkInfo.SlaveKind == "bridge" {
			st, ok := ParseSTPState(sd.State)
			if !ok && sd.State != "" {
				return nil, fmt.Errorf("ip -d -j link show: %s: bridge port state %q", j.Name, sd.State)
			}
			l.PortInfo = PortInfo{State: st, Learning: sd.Learning, Flood: sd.Flood, NeighSuppress: sd.NeighSuppress, Locked: sd.Locked}
		}
		for _, a := range j.AddrInfo {
			ip, err := netip.ParseAddr(a.Local)
			if err != nil {
				return nil, fmt.Errorf("ip -j addr show: %s: address %q", j.Name, a.Local)
			}
			l.Addrs = append(l.Addrs, netip.PrefixFrom(ip, a.PrefixLen))
		}
		out = append(out, l)
	}
	return out, nil
}

type bridgeVLANJSON struct {
	Name  string `json:"ifname"`
	VLANs []struct {
		VLAN    int      `json:"vlan"`
		VLANEnd int      `json:"vlanEnd"`
		Flags   []string `json:"flags"`
	} `json:"vlans"`
}

// LoadBridgeVLANs reads the output of `bridge -j vlan show`: each port's
// VLANs, by port name.
func LoadBridgeVLANs(r io.Reader) (map[string][]PortVLAN, error) {
	var raw []bridgeVLANJSON
	if err := json.NewDecoder(r).Decode(&raw); err != nil {
		return nil, fmt.Errorf("bridge -j vlan show: %w", err)
	}
	out := make(map[string][]PortVLAN, len(raw))
	for _, p := range raw {
		for _, v := range p.VLANs {
			end := max(v.VLANEnd, v.VLAN)
			if v.VLAN < 1 || end > 4094 {
				return nil, fmt.Errorf("bridge -j vlan show: %s: VLAN %d-%d", p.Name, v.VLAN, end)
			}
			for vid := v.VLAN; vid <= end; vid++ {
				out[p.Name] = append(out[p.Name], PortVLAN{
					VID:      uint16(vid),
					PVID:     slices.Contains(v.Flags, "PVID"),
					Untagged: slices.Contains(v.Flags, "Egress Untagged"),
				})
			}
		}
	}
	return out, nil
}

// FromIPRoute2 builds a table from `ip -d -j addr show` (or link show) and,
// when vlans is not nil, `bridge -j vlan show`.
func FromIPRoute2(links, vlans io.Reader) (*Table, error) {
	ls, err := LoadIPLinks(links)
	if err != nil {
		return nil, err
	}
	if vlans != nil {
		vs, err := LoadBridgeVLANs(vlans)
		if err != nil {
			return nil, err
		}
		for i := range ls {
			ls[i].VLANs = vs[ls[i].Name]
		}
	}
	t := NewTable()
	t.Replace(ls)
	return t, nil
}
