package main

import (
	"encoding/json"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/rarp-replay/rarp-replay/internal/compat"
	"github.com/rarp-replay/rarp-replay/internal/nstest"
	"github.com/rarp-replay/rarp-replay/internal/packet"
	"github.com/rarp-replay/rarp-replay/internal/status"
)

const (
	vrrMAC    = "00:00:5e:00:01:01" // the VRR / anycast gateway MAC
	hvMAC     = "02:00:5e:10:00:f0" // the trunk hypervisor's own NIC
	remoteMAC = "02:00:5e:10:00:28" // a VM behind another leaf: its RARP comes over VXLAN
)

// liveLayout is one switch layout TestLayouts builds in namespaces. Every
// layout has a VLAN-aware bridge with SVIs for VLANs 10 and 20 in a VRF, a
// VXLAN device on the bridge (VLAN 10) whose far end is a remote leaf, a
// trunk port with two VMs tagged 10 and 20 (one hypervisor namespace with
// eth0.10 and eth0.20), and an access port with PVID 10 and one untagged VM.
type liveLayout struct {
	name, id                       string // id: the row of README's compatibility table (scripts/gen-compat)
	bridge, vrf, vxlan             string
	svi10, svi20                   string
	trunk, access                  string // the bridge ports
	anycast                        string // the macvlan anycast gateway on svi10 (Cumulus); "": the SVIs carry vrrMAC themselves (SONiC)
	bondSlave                      string // the trunk is a bond with this veth as its slave
	bondMode                       string // active-backup, or 802.3ad (the hypervisor's NIC is then an LACP bond too)
	lateAccess                     bool   // the access port appears, is enslaved and comes up 10 ms before its VM's RARP
	singleVXLAN                    bool   // one VXLAN device for all VNIs (external vnifilter, VLAN-to-VNI tunnel mapping), as Cumulus 5 and SONiC run it
	gw10MAC, gw20MAC               string // the MAC probes in VLAN 10 and 20 must come from
	gw10v4, gw10v6, gw20v4, gw20v6 string // and the addresses
}

func cumulus(name string) liveLayout {
	return liveLayout{
		name: name, id: "cumulus", bridge: "bridge", vrf: "tenant1", vxlan: "vni10",
		svi10: "vlan10", svi20: "vlan20", trunk: "swp1", access: "swp2", anycast: "vlan10-v0",
		gw10MAC: vrrMAC, gw20MAC: sviMAC,
		gw10v4: "192.0.2.1", gw10v6: "2001:db8:10::1", gw20v4: "198.51.100.1", gw20v6: "2001:db8:20::1",
	}
}

// TestLayouts migrates VMs live on the leaf layouts of README "Switch
// layouts", built in namespaces: Cumulus-style (VLAN-aware `bridge`, trunk
// swp1, access swp2, `vlan10`/`vlan20` in VRF tenant1, anycast macvlan
// vlan10-v0), SONiC-style names (`Bridge`, `Ethernet0`, `Vlan10` carrying the
// anycast MAC itself), the trunk as an active-backup bond and as an 802.3ad
// bond negotiating LACP with the hypervisor's, an access port
// created 10 ms before the RARP, and a single VXLAN device for all VNIs
// (external vnifilter, VLAN-to-VNI tunnel mapping). Each VM announces itself the way QEMU
// does; every binding of its MAC is probed tagged or untagged as the port
// carries its VLAN, from the gateway address and MAC; the ones it owns are
// programmed local on the SVI (or the macvlan) they were found on, the decoy
// is not; the VXLAN device is never a port, never carries a probe, and a
// RARP arriving through it probes nothing.
//
// The host kernel may lack 802.1Q, VLAN filtering, VRF or bonding: the test
// then skips, and `make test-uml` runs it in user-mode Linux, where
// RARP_REPLAY_UML=1 turns a missing feature into a failure.
func TestLayouts(t *testing.T) {
	nstest.RequireRoot(t)
	requireLayoutKernel(t, "cumulus", "sonic", "bond-trunk", "late-port", "single-vxlan")
	if _, err := exec.LookPath("tcpdump"); err != nil {
		t.Fatal("tcpdump is missing: apt-get install tcpdump")
	}
	bonded := cumulus("Cumulus, bond trunk")
	bonded.id, bonded.trunk, bonded.bondSlave, bonded.bondMode = "bond-trunk", "bond1", "swp3", "active-backup"
	lacp := cumulus("Cumulus, 802.3ad bond trunk")
	lacp.id, lacp.trunk, lacp.bondSlave, lacp.bondMode = "bond-trunk", "bond1", "swp3", "802.3ad"
	late := cumulus("Cumulus, access port created 10 ms before the RARP")
	late.id, late.lateAccess = "late-port", true
	svd := cumulus("Cumulus, single VXLAN device")
	svd.id, svd.vxlan, svd.singleVXLAN = "single-vxlan", "vxlan48", true
	for _, l := range []liveLayout{
		cumulus("Cumulus"),
		{
			name: "SONiC", id: "sonic", bridge: "Bridge", vrf: "Vrf_tenant1", vxlan: "vtep-10",
			svi10: "Vlan10", svi20: "Vlan20", trunk: "Ethernet0", access: "Ethernet4",
			gw10MAC: vrrMAC, gw20MAC: vrrMAC,
			gw10v4: "192.0.2.1", gw10v6: "2001:db8:10::1", gw20v4: "198.51.100.1", gw20v6: "2001:db8:20::1",
		},
		bonded,
		lacp,
		late,
		svd,
	} {
		t.Run(l.name, func(t *testing.T) {
			compat.Note(t, l.id, compat.Live)
			testLayout(t, l)
		})
	}
}

// requireLayoutKernel probes for the kernel features the layouts need, as
// newModel does, and skips (fails under RARP_REPLAY_UML=1) when one is
// missing, recording the skip for the layouts ids (README's compatibility
// table).
func requireLayoutKernel(t *testing.T, ids ...string) {
	ns := nstest.Namespace(t, "probe")
	nstest.Run(t, "ip", "-n", ns, "link", "add", "pv0", "type", "veth", "peer", "name", "pv1")
	var missing []string
	for _, f := range []struct {
		name string
		args []string
	}{
		{"802.1Q vlan devices", []string{"link", "add", "link", "pv0", "name", "p0", "type", "vlan", "id", "10"}},
		{"bridge VLAN filtering", []string{"link", "add", "p0", "type", "bridge", "vlan_filtering", "1"}},
		{"VRF", []string{"link", "add", "p0", "type", "vrf", "table", "10"}},
		{"bonding", []string{"link", "add", "p0", "type", "bond", "mode", "active-backup"}},
		{"macvlan", []string{"link", "add", "link", "pv0", "name", "p0", "type", "macvlan", "mode", "private"}},
		{"VXLAN", []string{"link", "add", "p0", "type", "vxlan", "id", "10", "dstport", "4789"}},
		{"VXLAN vnifilter (single VXLAN device)", []string{"link", "add", "p0", "type", "vxlan", "dstport", "4789", "external", "vnifilter"}},
	} {
		if _, err := nstest.Output("ip", append([]string{"-n", ns}, f.args...)...); err != nil {
			missing = append(missing, f.name)
			continue
		}
		nstest.Run(t, "ip", "-n", ns, "link", "del", "p0")
	}
	if len(missing) == 0 {
		return
	}
	msg := "kernel lacks " + strings.Join(missing, ", ") + ": runs in make test-uml (user-mode Linux)"
	for _, id := range ids {
		compat.Note(t, id, compat.Live)
	}
	if os.Getenv("RARP_REPLAY_UML") == "1" {
		t.Fatal("RARP_REPLAY_UML=1: " + msg)
	}
	t.Skip(msg)
}

// layoutScript builds the switch (sw), the trunk hypervisor (hv), the
// access VM (vm3, its port in park when it appears late) and the remote
// leaf (rl). Bindings are installed as FRR installs remote EVPN ones.
const layoutScript = `
for n in $sw $hv $vm3 $rl; do
  ip netns exec $n sysctl -qw net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0
done
addrs() { # NS DEV ADDR...
  ns=$1 dev=$2; shift 2
  for a in "$@"; do
    case $a in *:*) ip -n $ns addr add $a dev $dev nodad ;; *) ip -n $ns addr add $a dev $dev ;; esac
  done
}
# The VLAN-aware bridge; the bridge itself (the CPU port) in VLANs 10 and 20.
ip -n $sw link add $br address $brmac type bridge vlan_filtering 1
bridge -n $sw vlan add dev $br vid 10 self
bridge -n $sw vlan add dev $br vid 20 self
ip -n $sw link set $br up
ip -n $sw link add $vrf type vrf table 1001
ip -n $sw link set $vrf up
# The SVIs, in the VRF.
for v in 10:$svi10 20:$svi20; do
  vid=${v%%:*} svi=${v#*:}
  if [ -n "$svimac" ]; then
    ip -n $sw link add link $br name $svi address $svimac type vlan id $vid
    bridge -n $sw fdb replace $svimac dev $br self local vlan $vid
  else
    ip -n $sw link add link $br name $svi type vlan id $vid
  fi
  ip -n $sw link set $svi master $vrf
  ip netns exec $sw sysctl -qw net.ipv6.conf.$svi.accept_dad=0
  ip -n $sw link set $svi up
done
if [ -n "$anycast" ]; then
  addrs $sw $svi10 192.0.2.2/24 2001:db8:10::2/64
  ip -n $sw link add link $svi10 name $anycast address $vrr type macvlan mode private
  bridge -n $sw fdb replace $vrr dev $br self local vlan 10
  ip -n $sw link set $anycast master $vrf
  ip netns exec $sw sysctl -qw net.ipv6.conf.$anycast.accept_dad=0
  ip -n $sw link set $anycast up
  addrs $sw $anycast 192.0.2.1/24 2001:db8:10::1/64
else
  addrs $sw $svi10 192.0.2.1/24 2001:db8:10::1/64
fi
addrs $sw $svi20 198.51.100.1/24 2001:db8:20::1/64

# The VXLAN device, VLAN 10 untagged, and its far end: a remote leaf.
ip -n $sw link add uplink type veth peer name eth0 netns $rl
ip -n $sw link set uplink up
ip -n $sw addr add 198.18.0.1/31 dev uplink
if [ "$svd" = 1 ]; then
  # One device for every VNI: VLAN 10 <-> VNI 10, VLAN 20 <-> VNI 20, the
  # remote leaf as each VNI's flood destination.
  ip -n $sw link add $vx type vxlan local 198.18.0.1 dstport 4789 nolearning external vnifilter
  ip -n $sw link set $vx master $br
  bridge -n $sw link set dev $vx vlan_tunnel on neigh_suppress on learning off
  for v in 10 20; do
    bridge -n $sw vlan add dev $vx vid $v
    bridge -n $sw vlan add dev $vx vid $v tunnel_info id $v
    bridge -n $sw vni add dev $vx vni $v remote 198.18.0.0
  done
else
  ip -n $sw link add $vx type vxlan id 10 local 198.18.0.1 remote 198.18.0.0 dstport 4789 nolearning
  ip -n $sw link set $vx master $br
  bridge -n $sw vlan add dev $vx vid 10 pvid untagged
fi
bridge -n $sw vlan del dev $vx vid 1
ip -n $sw link set $vx up
ip -n $rl link set eth0 up
ip -n $rl addr add 198.18.0.0/31 dev eth0
ip -n $rl link add vx10 type vxlan id 10 local 198.18.0.0 remote 198.18.0.1 dstport 4789 nolearning
ip -n $rl link set vx10 address 02:00:5e:20:00:01 up

# The trunk: VMs tagged 10 and 20 behind one hypervisor NIC.
if [ "$bondmode" = 802.3ad ]; then
  # LACP on both ends: the hypervisor's eth0 is a bond as well.
  ip -n $sw link add $slave type veth peer name nic0 netns $hv
  ip -n $hv link add eth0 type bond mode 802.3ad miimon 100 lacp_rate fast
  ip -n $hv link set nic0 master eth0
  ip -n $sw link add $trunk type bond mode 802.3ad miimon 100 lacp_rate fast
  ip -n $sw link set $slave master $trunk
  ip -n $sw link set $slave up
elif [ -n "$slave" ]; then
  ip -n $sw link add $slave type veth peer name eth0 netns $hv
  ip -n $sw link add $trunk type bond mode $bondmode miimon 100
  ip -n $sw link set $slave master $trunk
  ip -n $sw link set $slave up
else
  ip -n $sw link add $trunk type veth peer name eth0 netns $hv
fi
ip -n $sw link set $trunk master $br
bridge -n $sw vlan add dev $trunk vid 10
bridge -n $sw vlan add dev $trunk vid 20
bridge -n $sw vlan del dev $trunk vid 1
ip -n $sw link set $trunk up
ip -n $hv link set eth0 address $hvmac up
ip -n $hv link add link eth0 name eth0.10 address $vm1 type vlan id 10
ip -n $hv link add link eth0 name eth0.20 address $vm2 type vlan id 20
ip -n $hv link set eth0.10 up
ip -n $hv link set eth0.20 up
addrs $hv eth0.10 192.0.2.10/24 192.0.2.11/24 192.0.2.12/24 2001:db8:10::10/64
addrs $hv eth0.20 198.51.100.20/24 2001:db8:20::20/64

# The access port, PVID 10 untagged (created in park when it appears late).
if [ "$late" = 1 ]; then
  ip -n $park link add $access type veth peer name eth0 netns $vm3
else
  ip -n $sw link add $access type veth peer name eth0 netns $vm3
  ip -n $sw link set $access master $br
  bridge -n $sw vlan add dev $access vid 10 pvid untagged
  bridge -n $sw vlan del dev $access vid 1
  ip -n $sw link set $access up
fi
ip -n $vm3 link set eth0 address $vm3mac up
addrs $vm3 eth0 192.0.2.30/24 2001:db8:10::30/64

# The bindings, as FRR installs remote EVPN ones; .99 and ::99 are bound
# to vm1's MAC but nobody owns them (decoys); .40 is the remote VM's.
for a in 192.0.2.10 192.0.2.11 192.0.2.99 2001:db8:10::10 2001:db8:10::99; do
  ip -n $sw neigh replace $a lladdr $vm1 dev $svi10 nud noarp extern_learn
done
if [ -n "$anycast" ]; then
  ip -n $sw neigh replace 192.0.2.12 lladdr $vm1 dev $anycast nud noarp
else
  ip -n $sw neigh replace 192.0.2.12 lladdr $vm1 dev $svi10 nud noarp extern_learn
fi
for a in 198.51.100.20 2001:db8:20::20; do
  ip -n $sw neigh replace $a lladdr $vm2 dev $svi20 nud noarp extern_learn
done
for a in 192.0.2.30 2001:db8:10::30; do
  ip -n $sw neigh replace $a lladdr $vm3mac dev $svi10 nud noarp extern_learn
done
ip -n $sw neigh replace 192.0.2.40 lladdr $remote dev $svi10 nud noarp extern_learn
`

// layoutVM is one VM of a layout and what must happen to it.
type layoutVM struct {
	mac, port, svi string
	owned          map[string]string // address -> the device its binding is programmed on
	decoys         []string
	wantVLAN       uint16 // the tag probes must carry; 0: untagged
	v4src, v6src   string // "address MAC" probes must come from
}

func testLayout(t *testing.T, l liveLayout) {
	bin := nstest.Binary(t)
	sw := nstest.Namespace(t, "sw")
	hv := nstest.Namespace(t, "hv")
	vm3 := nstest.Namespace(t, "vm3")
	rl := nstest.Namespace(t, "rl")
	park := nstest.Namespace(t, "park")
	svimac, late, svd := "", "0", "0"
	if l.anycast == "" {
		svimac = vrrMAC
	}
	if l.lateAccess {
		late = "1"
	}
	if l.singleVXLAN {
		svd = "1"
	}
	vars := map[string]string{
		"sw": sw, "hv": hv, "vm3": vm3, "rl": rl, "park": park,
		"br": l.bridge, "brmac": sviMAC, "vrf": l.vrf, "vx": l.vxlan,
		"svi10": l.svi10, "svi20": l.svi20, "svimac": svimac, "anycast": l.anycast, "vrr": vrrMAC,
		"trunk": l.trunk, "slave": l.bondSlave, "bondmode": l.bondMode, "access": l.access, "late": late, "svd": svd,
		"hvmac": hvMAC, "vm1": vm1MAC, "vm2": vm2MAC, "vm3mac": vm3MAC, "remote": remoteMAC,
	}
	var script strings.Builder
	for _, k := range slices.Sorted(maps.Keys(vars)) {
		fmt.Fprintf(&script, "%s=%q\n", k, vars[k])
	}
	script.WriteString(layoutScript)
	nstest.Sh(t, script.String())
	switch l.bondMode {
	case "active-backup":
		waitActiveSlave(t, sw, l.trunk, l.bondSlave)
	case "802.3ad":
		waitDistributing(t, sw, l.bondSlave)
		waitDistributing(t, hv, "nic0")
	}

	at12 := l.svi10
	if l.anycast != "" {
		at12 = l.anycast
	}
	vms := []layoutVM{
		{mac: vm1MAC, port: l.trunk, svi: l.svi10, wantVLAN: 10,
			owned:  map[string]string{"192.0.2.10": l.svi10, "192.0.2.11": l.svi10, "192.0.2.12": at12, "2001:db8:10::10": l.svi10},
			decoys: []string{"192.0.2.99", "2001:db8:10::99"},
			v4src:  l.gw10v4 + " " + l.gw10MAC, v6src: l.gw10v6 + " " + l.gw10MAC},
		{mac: vm2MAC, port: l.trunk, svi: l.svi20, wantVLAN: 20,
			owned: map[string]string{"198.51.100.20": l.svi20, "2001:db8:20::20": l.svi20},
			v4src: l.gw20v4 + " " + l.gw20MAC, v6src: l.gw20v6 + " " + l.gw20MAC},
		{mac: vm3MAC, port: l.access, svi: l.svi10,
			owned: map[string]string{"192.0.2.30": l.svi10, "2001:db8:10::30": l.svi10},
			v4src: l.gw10v4 + " " + l.gw10MAC, v6src: l.gw10v6 + " " + l.gw10MAC},
	}

	dir := t.TempDir()
	tcpdump := func(ns, dev, file string, args ...string) *nstest.Proc {
		p := nstest.Start(t, "ip", append([]string{"netns", "exec", ns, "tcpdump", "--immediate-mode", "-i", dev, "-U", "-n", "-w", file}, args...)...)
		p.WaitFor(t, "listening on", 10*time.Second)
		return p
	}
	captures := map[string]string{"hv": dir + "/hv.pcap", "vm3": dir + "/vm3.pcap", "vxlan": dir + "/vxlan.pcap"}
	dumps := []*nstest.Proc{
		tcpdump(hv, "eth0", captures["hv"], "-Q", "in"),
		tcpdump(vm3, "eth0", captures["vm3"], "-Q", "in"),
		tcpdump(sw, l.vxlan, captures["vxlan"]),
	}
	monitor := nstest.Start(t, "ip", "-n", sw, "monitor", "neigh")
	sock := dir + "/status.sock"
	listen := nstest.Start(t, "ip", "netns", "exec", sw, bin, "listen", "-i", "any", "--log-format", "json", "--log-level", "debug",
		"--probe-timeout", "100ms", "--probe-retries", "2", "--status-socket", sock)
	listen.WaitFor(t, `"msg":"listening"`, 10*time.Second)
	t.Cleanup(func() {
		if t.Failed() || os.Getenv("RR_DEBUG") != "" {
			t.Logf("daemon log:\n%s", strings.Join(listen.Lines(), "\n"))
		}
	})

	// A VM that lives behind the remote leaf announces itself: its RARP
	// arrives through the VXLAN device (and is flooded to every port in
	// VLAN 10). It must probe nothing. The daemon skips it without a log
	// line, so this is checked at the end, after the local migrations.
	nstest.Run(t, "ip", "netns", "exec", rl, bin, "send-rarp", "--mac", remoteMAC, "-i", "vx10", "--count", "1")

	if l.lateAccess {
		m, _ := net.ParseMAC(vm3MAC)
		frame, err := packet.BuildRARP(m, nil)
		if err != nil {
			t.Fatal(err)
		}
		helper := sendFrames(t, vm3, true, frame)
		nstest.Run(t, "ip", "-n", park, "link", "set", l.access, "netns", sw)
		nstest.Sh(t, `ip -n `+sw+` link set `+l.access+` master `+l.bridge+`
bridge -n `+sw+` vlan add dev `+l.access+` vid 10 pvid untagged
bridge -n `+sw+` vlan del dev `+l.access+` vid 1`)
		nstest.Run(t, "ip", "-n", sw, "link", "set", l.access, "up")
		time.Sleep(10 * time.Millisecond) // the migration's timing, not a wait for a result
		helper.release(t)
	}
	// The migrations, announced as QEMU does (five RARPs over 800 ms), all
	// at once: the trunk VMs tagged by the hypervisor, the access VM
	// untagged.
	send := `ip netns exec ` + hv + ` ` + bin + ` send-rarp --mac ` + vm1MAC + ` -i eth0 --vlan 10 & a=$!
ip netns exec ` + hv + ` ` + bin + ` send-rarp --mac ` + vm2MAC + ` -i eth0 --vlan 20 & b=$!
`
	if !l.lateAccess {
		send += `ip netns exec ` + vm3 + ` ` + bin + ` send-rarp --mac ` + vm3MAC + ` -i eth0 & c=$!
wait $c
`
	}
	nstest.Sh(t, send+"wait $a\nwait $b\n")

	// The daemon logs a migration once its probe cycle is over (the
	// decoys given up); a slow guest gets a generous deadline here, so
	// that the bindings are already in place when waitLocalOn looks.
	for _, vm := range vms {
		listen.WaitFor(t, `"msg":"migration handled","mac":"`+vm.mac+`"`, 20*time.Second)
	}
	for _, vm := range vms {
		byDev := map[string][]string{}
		for ip, dev := range vm.owned {
			byDev[dev] = append(byDev[dev], ip)
		}
		for dev, ips := range byDev {
			waitLocalOn(t, sw, dev, vm.mac, ips...)
		}
	}
	migrations := waitMigrations(t, listen, len(vms))
	statusOut := nstest.Run(t, bin, "status", "--json", "--socket", sock)
	listen.Stop(t, syscall.SIGTERM, 5*time.Second)
	for _, d := range dumps {
		d.Stop(t, syscall.SIGINT, 5*time.Second)
	}
	monitor.Stop(t, syscall.SIGTERM, 5*time.Second)
	logs := listen.Lines()

	t.Run("one migration line per VM, on its port and SVI", func(t *testing.T) {
		count := map[string]int{}
		for _, line := range logs {
			for _, vm := range vms {
				if strings.Contains(line, `"msg":"migration handled"`) && strings.Contains(line, `"mac":"`+vm.mac+`"`) {
					count[vm.mac]++
				}
			}
		}
		for _, vm := range vms {
			m := migrations[vm.mac]
			if m == nil {
				t.Errorf("%s: no migration line", vm.mac)
				continue
			}
			if count[vm.mac] != 1 {
				t.Errorf("%s: %d migration lines, want one (one probe cycle)", vm.mac, count[vm.mac])
			}
			owned := sortedAddrs(slices.Collect(maps.Keys(vm.owned)))
			want := migration{MAC: vm.mac, Port: vm.port, SVI: vm.svi, Verified: owned, Failed: sortedAddrs(vm.decoys), Programmed: owned}
			got := *m
			got.Verified, got.Failed, got.Programmed, got.LatencyMS = sortedAddrs(got.Verified), sortedAddrs(got.Failed), sortedAddrs(got.Programmed), 0
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("%s: migration (-want +got):\n%s", vm.mac, diff)
			}
		}
	})

	t.Run("probes tagged as the port carries the VLAN, from the gateway", func(t *testing.T) {
		got := map[string][]string{}
		for k, v := range vlanProbes(t, captures["hv"]) {
			got[k] = append(got[k], v...)
		}
		for k, v := range vlanProbes(t, captures["vm3"]) {
			got[k] = append(got[k], v...)
		}
		for _, vm := range vms {
			for _, ip := range append(slices.Collect(maps.Keys(vm.owned)), vm.decoys...) {
				src := vm.v4src
				if strings.Contains(ip, ":") {
					src = vm.v6src
				}
				want := []string{fmt.Sprintf("%s vlan %d", src, vm.wantVLAN)}
				if diff := cmp.Diff(want, got[ip]); diff != "" {
					t.Errorf("probes for %s of %s (-want +got):\n%s", ip, vm.mac, diff)
				}
			}
		}
		if p := got["192.0.2.40"]; len(p) != 0 {
			t.Errorf("the remote VM's address was probed: %v", p)
		}
	})

	t.Run("status says which SVI serves each VLAN of each port", func(t *testing.T) {
		var d status.Doc
		if err := json.Unmarshal([]byte(statusOut), &d); err != nil {
			t.Fatalf("status --json: %v\n%s", err, statusOut)
		}
		got := map[string]string{}
		for _, p := range d.Ports {
			if p.Name == "uplink" { // the underlay: routed, served by default (--routed-ports)
				if !strings.HasPrefix(p.Why, "stand-alone") || p.Bridge != "" {
					t.Errorf("the routed uplink: %+v, want a stand-alone interface", p)
				}
				continue
			}
			if p.Bridge != l.bridge {
				t.Errorf("port %s: bridge %q, want %s", p.Name, p.Bridge, l.bridge)
			}
			var vs []string
			for _, v := range p.VLANs {
				vs = append(vs, fmt.Sprintf("%d pvid=%v untagged=%v %s", v.VID, v.PVID, v.Untagged, v.SVI))
			}
			got[p.Name] = strings.Join(vs, "; ")
		}
		want := map[string]string{
			l.trunk:  fmt.Sprintf("10 pvid=false untagged=false %s; 20 pvid=false untagged=false %s", l.svi10, l.svi20),
			l.access: fmt.Sprintf("10 pvid=true untagged=true %s", l.svi10),
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("ports served and their VLANs (-want +got):\n%s", diff)
		}
	})

	t.Run("decoys never programmed", func(t *testing.T) {
		for _, line := range monitor.Lines() {
			for _, a := range []string{"192.0.2.99", "2001:db8:10::99", "192.0.2.40"} {
				if strings.HasPrefix(line, a+" ") && !strings.Contains(line, "extern_learn") {
					t.Errorf("neighbor event for a binding that must not change: %q", line)
				}
			}
		}
		for _, a := range []string{"192.0.2.99", "2001:db8:10::99", "192.0.2.40"} {
			if out := nstest.Run(t, "ip", "-n", sw, "neigh", "show", a, "dev", l.svi10); !strings.Contains(out, "extern_learn") {
				t.Errorf("%s is now %q, want it left extern_learn", a, out)
			}
		}
		if !slices.ContainsFunc(monitor.Lines(), func(s string) bool {
			return strings.HasPrefix(s, "192.0.2.10 ") && strings.Contains(s, "REACHABLE")
		}) {
			t.Errorf("ip monitor saw no event for 192.0.2.10: it was not working; events:\n%s", strings.Join(monitor.Lines(), "\n"))
		}
	})

	t.Run("VXLAN device never a port, never carries a probe", func(t *testing.T) {
		for _, line := range logs {
			for _, dev := range []string{l.vxlan, l.bondSlave} {
				if dev != "" && strings.Contains(line, `"msg":"port added","ifname":"`+dev+`"`) {
					t.Errorf("served %s: %s", dev, line)
				}
			}
			if strings.Contains(line, `"mac":"`+remoteMAC+`"`) && !strings.Contains(line, `"msg":"drop"`) {
				t.Errorf("the remote VM's RARP (it came over VXLAN) did more than a drop: %s", line)
			}
		}
		if !slices.ContainsFunc(logs, func(s string) bool { return strings.Contains(s, `"msg":"port added","ifname":"`+l.access+`"`) }) {
			t.Errorf("no port added line for %s: the check above proves nothing", l.access)
		}
		probes := vlanProbes(t, captures["vxlan"])
		if len(probes) != 0 {
			t.Errorf("probes through the VXLAN device: %v", probes)
		}
		// The capture worked: the VMs' RARPs in VLAN 10 were flooded
		// through it, the remote VM's arrived through it.
		rarps := rarpsIn(t, captures["vxlan"])
		for _, mac := range []string{vm1MAC, remoteMAC} {
			if !rarps[mac] {
				t.Errorf("the VXLAN capture has no RARP for %s (has %v): it proves nothing", mac, rarps)
			}
		}
	})
}

// waitActiveSlave waits until the bond in ns has slave as its active slave.
func waitActiveSlave(t *testing.T, ns, bond, slave string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	var got string
	for time.Now().Before(deadline) {
		got, _ = nstest.Output("ip", "netns", "exec", ns, "cat", "/sys/class/net/"+bond+"/bonding/active_slave")
		if strings.TrimSpace(got) == slave {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s: active slave %q, want %s within 5s", bond, strings.TrimSpace(got), slave)
}

// waitDistributing waits until the 802.3ad bond member slave in ns and its
// LACP partner both collect and distribute (port state bits 0x10 and 0x20):
// before that the bond drops what it is given to send (ENOBUFS).
func waitDistributing(t *testing.T, ns, slave string) {
	t.Helper()
	const ready = 0x30
	deadline := time.Now().Add(10 * time.Second)
	var actor, partner string
	for time.Now().Before(deadline) {
		actor, _ = nstest.Output("ip", "netns", "exec", ns, "cat", "/sys/class/net/"+slave+"/bonding_slave/ad_actor_oper_port_state")
		partner, _ = nstest.Output("ip", "netns", "exec", ns, "cat", "/sys/class/net/"+slave+"/bonding_slave/ad_partner_oper_port_state")
		a, errA := strconv.Atoi(strings.TrimSpace(actor))
		p, errP := strconv.Atoi(strings.TrimSpace(partner))
		if errA == nil && errP == nil && a&ready == ready && p&ready == ready {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s: LACP not distributing within 10s (actor port state %q, partner %q)", slave, strings.TrimSpace(actor), strings.TrimSpace(partner))
}

// sortedAddrs returns the addresses in address order (IPv4 first); nil
// for none.
func sortedAddrs(as []string) []string {
	if len(as) == 0 {
		return nil
	}
	out := slices.Clone(as)
	slices.SortFunc(out, func(a, b string) int {
		return netip.MustParseAddr(a).Compare(netip.MustParseAddr(b))
	})
	return out
}

// vlanProbes returns, for every address probed by an ARP request or a
// Neighbor Solicitation (hop limit 255) in a capture, the distinct
// "source-IP source-MAC vlan N" it was probed with (N 0: untagged).
func vlanProbes(t *testing.T, path string) map[string][]string {
	t.Helper()
	got := map[string][]string{}
	add := func(target netip.Addr, src netip.Addr, fr captureFrame) {
		s := fmt.Sprintf("%s %s vlan %d", src, fr.src, fr.vlan)
		if !slices.Contains(got[target.String()], s) {
			got[target.String()] = append(got[target.String()], s)
		}
	}
	for _, fr := range readFrames(t, path) {
		if target, src, ok := probeIn(fr); ok {
			add(target, src, fr)
		}
	}
	for k := range got {
		slices.Sort(got[k])
	}
	return got
}

// rarpsIn returns the MACs announced by the RARPs in a capture.
func rarpsIn(t *testing.T, path string) map[string]bool {
	t.Helper()
	got := map[string]bool{}
	for _, fr := range readFrames(t, path) {
		if fr.etherType == 0x8035 {
			got[fr.src.String()] = true
		}
	}
	return got
}
