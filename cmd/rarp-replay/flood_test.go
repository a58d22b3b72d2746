package main

import (
	"encoding/binary"
	"math/rand/v2"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rarp-replay/rarp-replay/capture/pcapio"
	"github.com/rarp-replay/rarp-replay/internal/nstest"
	"github.com/rarp-replay/rarp-replay/internal/packet"
)

// TestListenFlood: one port floods RARPs for random MACs (100k frames/s for
// 10 s) while a VM on another port migrates. The migration must still be
// restored, the daemon must survive with bounded memory, and the flood must
// be counted as drops by reason.
func TestListenFlood(t *testing.T) {
	nstest.RequireRoot(t)
	bin := nstest.Binary(t)
	sw := nstest.Namespace(t, "sw")
	vm := nstest.Namespace(t, "vm")
	bad := nstest.Namespace(t, "flood")
	nstest.Sh(t, `
ip -n `+sw+` link add br0 address `+sviMAC+` type bridge
ip -n `+sw+` link set br0 up
ip -n `+sw+` addr add 192.0.2.1/24 dev br0
for p in vm:`+vm+` flood:`+bad+`; do
  ip -n `+sw+` link add ${p%%:*} type veth peer name eth0 netns ${p#*:}
  ip -n `+sw+` link set ${p%%:*} master br0 up
  ip -n ${p#*:} link set eth0 up
done
ip -n `+vm+` link set eth0 address `+vm1MAC+`
ip -n `+vm+` addr add 192.0.2.10/24 dev eth0
ip -n `+sw+` neigh replace 192.0.2.10 lladdr `+vm1MAC+` dev br0 nud noarp extern_learn
`)
	listen := nstest.Start(t, "ip", "netns", "exec", sw, bin, "listen", "-i", "any", "--log-format", "json", "--metrics-addr", "127.0.0.1:9465")
	listen.WaitFor(t, `"msg":"listening"`, 10*time.Second)

	const rate, seconds = 100_000, 10
	flood := exec.Command("ip", "netns", "exec", bad, os.Args[0], "-test.run=^TestHelperFlood$")
	flood.Env = append(os.Environ(), "RR_HELPER_FLOOD="+strconv.Itoa(rate)+","+strconv.Itoa(seconds))
	out := &strings.Builder{}
	flood.Stdout, flood.Stderr = out, out
	if err := flood.Start(); err != nil {
		t.Fatal(err)
	}
	// Wait reaps the sender and waits for its output to be copied: read
	// out only after flooded is closed.
	flooded := make(chan struct{})
	go func() { flood.Wait(); close(flooded) }()
	t.Cleanup(func() { flood.Process.Kill(); <-flooded })

	// Mid-flood, the real migration.
	time.Sleep(3 * time.Second)
	nstest.Run(t, "ip", "netns", "exec", vm, bin, "send-rarp", "--mac", vm1MAC, "-i", "eth0")
	waitLocal(t, sw, vm1MAC, "192.0.2.10")
	var maxRSS int
	sample := time.NewTicker(200 * time.Millisecond)
	defer sample.Stop()
	for sampling := true; sampling; {
		maxRSS = max(maxRSS, rssKB(t, listen.Cmd.Process.Pid))
		select {
		case <-flooded:
			sampling = false
		case <-sample.C:
		}
	}
	t.Logf("flood sender: %s", strings.TrimSpace(out.String()))
	// The flood entered one port; the bridge flooded it out of the others.
	// Only inbound frames may reach a port's capture ring, and the kernel
	// filter drops the rest, so the VM's port counted only its own frames.
	scrape := httpGet(t, sw, "http://127.0.0.1:9465/metrics")
	recv := func(port string) int {
		m := regexp.MustCompile(`rarp_replay_pcap_received_total\{port="` + port + `"\} (\S+)`).FindStringSubmatch(scrape)
		if m == nil {
			t.Fatalf("no pcap_received_total for port %s:\n%s", port, grepLines(scrape, "pcap_received"))
		}
		n, err := strconv.ParseFloat(m[1], 64) // large values come as 1.000001e+06
		if err != nil {
			t.Fatalf("pcap_received_total for port %s: %v", port, err)
		}
		return int(n)
	}
	floodRecv, vmRecv := recv("flood"), recv("vm")
	t.Logf("capture handles received: flood port %d, VM port %d frames", floodRecv, vmRecv)
	if floodRecv < 100_000 {
		t.Errorf("the flood port's handle received %d frames, want the flood (> 100000): the counter proves nothing", floodRecv)
	}
	if vmRecv > 1000 {
		t.Errorf("the VM port's handle received %d frames during a flood on another port: outbound copies reach its ring", vmRecv)
	}
	if listen.Cmd.ProcessState != nil {
		t.Fatalf("the daemon exited during the flood:\n%s", strings.Join(listen.Lines(), "\n"))
	}
	stop := time.Now()
	listen.Stop(t, syscall.SIGTERM, 5*time.Second)
	t.Logf("daemon exited %s after SIGTERM", time.Since(stop).Round(time.Millisecond))
	counters := stoppedCounters(t, listen)
	t.Logf("daemon: max RSS %d kB during the flood; counters %v", maxRSS, counters)
	if counters["drop/unknown-mac"] == 0 {
		t.Error("no unknown-mac drops counted for the flood")
	}
	if counters["drop/unknown-mac"]+counters["drop/port-rate-limit"] < 100_000 {
		t.Errorf("flood frames counted as drops: %d unknown-mac + %d port-rate-limit, want at least 100000",
			counters["drop/unknown-mac"], counters["drop/port-rate-limit"])
	}
	// The bridge learned a million MACs: FDB notifications on the neighbor
	// group, which the kernel filters out of the daemon's socket.
	if n := counters["netlink-resync/neigh"]; n != 0 {
		t.Errorf("the neighbor subscription overflowed %d times during a MAC flood", n)
	}
	// Unbounded growth would show as hundreds of MB after a million frames;
	// the daemon needs a few tens.
	if maxRSS > 256<<10 {
		t.Errorf("daemon RSS reached %d kB during the flood", maxRSS)
	}
}

func rssKB(t *testing.T, pid int) int {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmRSS:" {
			n, _ := strconv.Atoi(f[1])
			return n
		}
	}
	return 0
}

// TestHelperFlood is not a test: TestListenFlood runs it in a namespace to
// send RATE RARPs per second for random MACs out of eth0 for SECONDS.
func TestHelperFlood(t *testing.T) {
	spec := os.Getenv("RR_HELPER_FLOOD")
	if spec == "" {
		t.Skip("helper process for TestListenFlood")
	}
	r, s, _ := strings.Cut(spec, ",")
	rate, _ := strconv.Atoi(r)
	seconds, _ := strconv.Atoi(s)
	h, err := pcapio.OpenSender("eth0")
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	frame, _ := packet.BuildRARP(floodMAC(), nil)
	rng := rand.New(rand.NewPCG(1, 2))
	start := time.Now()
	sent := 0
	for tick := 0; tick < seconds*100; tick++ { // batches every 10 ms
		for range rate / 100 {
			binary.BigEndian.PutUint32(frame[8:12], rng.Uint32())
			copy(frame[22:28], frame[6:12])
			copy(frame[32:38], frame[6:12])
			if err := h.WritePacketData(frame); err == nil {
				sent++
			}
		}
		if d := time.Until(start.Add(time.Duration(tick+1) * 10 * time.Millisecond)); d > 0 {
			time.Sleep(d)
		}
	}
	el := time.Since(start)
	os.Stdout.WriteString("sent " + strconv.Itoa(sent) + " RARPs in " + el.Round(time.Millisecond).String() +
		" (" + strconv.Itoa(int(float64(sent)/el.Seconds())) + "/s)\n")
}

// floodMAC is the first flooded MAC; the sender rewrites its last four bytes.
func floodMAC() []byte { return []byte{2, 0x66, 0, 0, 0, 1} }
