package test

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/v6dp/v6dp/test/topo"
)

// statusJSON is the part of `v6dp status --json` the repair tests read.
type statusJSON struct {
	Pins []struct {
		Path      string `json:"path"`
		Kind      string `json:"kind"`
		ID        uint32 `json:"id"`
		Hook      string `json:"hook"`
		Ifindex   int    `json:"ifindex"`
		ProgramID uint32 `json:"program_id"`
		Defunct   bool   `json:"defunct"`
		Interface string `json:"interface"`
		Mode      string `json:"mode"`
	} `json:"pins"`
	LastRepair *struct {
		What   string `json:"what"`
		Detail string `json:"detail"`
	} `json:"last_repair"`
	Repairs int `json:"repairs"`
}

func (s *seed) status(t *testing.T) statusJSON {
	t.Helper()
	out := s.mustV6dp(t, "status", "--json")
	var st statusJSON
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("status --json: %v: %s", err, out)
	}
	return st
}

// waitRepaired waits for a "repaired" log line of the daemon, after the
// first `after` lines, whose text matches re.
func (d *daemon) waitRepaired(t *testing.T, after int, re string) {
	t.Helper()
	rx := regexp.MustCompile(`msg=repaired what=` + re)
	eventually(t, 10*time.Second, func() error {
		lines := d.logLines()
		for _, l := range lines[min(after, len(lines)):] {
			if rx.MatchString(l) {
				return nil
			}
		}
		return fmt.Errorf("no log line matching %q", rx)
	})
}

// Everything v6dp set up comes back after someone removes or changes it,
// each with a "repaired" log line, within one resync interval; what is
// not v6dp's stays as it is.
func TestRepair(t *testing.T) {
	s := newSeed(t, "2001:db8::c008/125")
	d := s.startDaemon(t, s.daemonArgs("tc", "--resync-interval", "1s", "--default-gateway-v6", "2001:db8::c00f"))
	c := s.name("rep")
	addr := s.addContainer(t, c)
	s.waitLive(t, addr, true)
	veth := s.endpoints(t)[addr].Veth

	cases := []struct {
		name    string
		breakIt func(t *testing.T)
		log     string
		check   func() error
	}{
		// First: a bridge set down loses every IPv6 address, the ones
		// that are not v6dp's too (added after this case).
		{"bridge down", func(t *testing.T) { s.MustRun(s.Host, "ip", "link", "set", "docker0", "down") },
			`"bridge up" bridge=docker0`, func() error {
				return s.contains(s.MustRun(s.Host, "ip", "link", "show", "docker0"), ",UP")
			}},
		{"proxy entry", func(t *testing.T) { s.MustRun(s.Host, "ip", "-6", "neigh", "del", "proxy", addr, "dev", "eth0") },
			`"proxy entry" addr=` + addr, func() error {
				return s.contains(s.MustRun(s.Host, "ip", "-6", "neigh", "show", "proxy", "dev", "eth0"), addr)
			}},
		{"bridge fe80::1", func(t *testing.T) { s.MustRun(s.Host, "ip", "addr", "del", "fe80::1/64", "dev", "docker0") },
			`"bridge address" dev=docker0 addr=fe80::1/64`, func() error {
				return s.contains(s.MustRun(s.Host, "ip", "-6", "addr", "show", "dev", "docker0"), "inet6 fe80::1/64")
			}},
		{"gateway address", func(t *testing.T) { s.MustRun(s.Host, "ip", "addr", "del", "2001:db8::c00f/125", "dev", "docker0") },
			`"gateway address" dev=docker0 addr=2001:db8::c00f/125`, func() error {
				return s.contains(s.MustRun(s.Host, "ip", "-6", "addr", "show", "dev", "docker0"), "inet6 2001:db8::c00f/125")
			}},
		{"prefix route", func(t *testing.T) { s.MustRun(s.Host, "ip", "-6", "route", "del", s.Prefix, "dev", "docker0") },
			`"prefix route" dst=2001:db8::c008/125 dev=docker0`, func() error {
				return s.contains(s.MustRun(s.Host, "ip", "-6", "route", "show", s.Prefix), "dev docker0")
			}},
		{"forwarding", func(t *testing.T) { s.Sysctl(s.Host, "net.ipv6.conf.all.forwarding", "0") },
			`sysctl key=net.ipv6.conf.all.forwarding from=0 to=1`, func() error {
				return s.sysctlIs("net.ipv6.conf.all.forwarding", "1")
			}},
		{"proxy_ndp", func(t *testing.T) { s.Sysctl(s.Host, "net.ipv6.conf.eth0.proxy_ndp", "0") },
			`sysctl key=net.ipv6.conf.eth0.proxy_ndp from=0 to=1`, func() error {
				return s.sysctlIs("net.ipv6.conf.eth0.proxy_ndp", "1")
			}},
		{"proxy_delay", func(t *testing.T) { s.Sysctl(s.Host, "net.ipv6.neigh.eth0.proxy_delay", "80") },
			`sysctl key=net.ipv6.neigh.eth0.proxy_delay from=80 to=0`, func() error {
				return s.sysctlIs("net.ipv6.neigh.eth0.proxy_delay", "0")
			}},
		{"accept_ra", func(t *testing.T) { s.Sysctl(s.Host, "net.ipv6.conf.eth0.accept_ra", "1") },
			`sysctl key=net.ipv6.conf.eth0.accept_ra from=1 to=2`, func() error {
				return s.sysctlIs("net.ipv6.conf.eth0.accept_ra", "2")
			}},
		{"port disable_ipv6", func(t *testing.T) { s.Sysctl(s.Host, "net.ipv6.conf."+veth+".disable_ipv6", "0") },
			`sysctl key=net.ipv6.conf.` + veth + `.disable_ipv6 from=0 to=1`, func() error {
				return s.sysctlIs("net.ipv6.conf."+veth+".disable_ipv6", "1")
			}},
		{"uplink program", func(t *testing.T) { s.detachLink(t, "uplink") },
			`"uplink program" uplink=eth0 mode=tcx`, func() error { return s.linkLive(t, "uplink") }},
		{"endpoint program", func(t *testing.T) { s.MustRun(s.Host, "tc", "filter", "del", "dev", veth, "ingress") },
			`"endpoint program" port=` + veth, func() error {
				if out := s.MustRun(s.Host, "tc", "filter", "show", "dev", veth, "ingress"); !strings.Contains(out, "v6dp_tc_endpoint") {
					return fmt.Errorf("no v6dp filter on %s: %s", veth, out)
				}
				return nil
			}},
		{"bpf endpoint", func(t *testing.T) {
			s.MustRun("", append([]string{"bpftool", "map", "delete", "pinned", s.PinDir + "/v6dp_endpoints", "key", "hex"}, addrBytes(addr)...)...)
		}, `"bpf endpoint" addr=` + addr, func() error {
			return s.contains(s.MustRun("", "bpftool", "map", "dump", "pinned", s.PinDir+"/v6dp_endpoints"), strings.Join(decBytes(addr), ","))
		}},
		{"devmap entry", func(t *testing.T) {
			s.MustRun("", append([]string{"bpftool", "map", "delete", "pinned", s.PinDir + "/v6dp_devmap", "key"}, le32(s.mustIfindex(t, veth))...)...)
		}, `"devmap entry" ifindex=\d+ addr=` + addr, func() error {
			i := s.mustIfindex(t, veth)
			key := fmt.Sprintf("key: %02x %02x %02x %02x", i&0xff, i>>8&0xff, i>>16&0xff, i>>24&0xff)
			return s.contains(s.MustRun("", "bpftool", "map", "dump", "pinned", s.PinDir+"/v6dp_devmap"), key)
		}},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			n := len(d.logLines())
			c.breakIt(t)
			d.waitRepaired(t, n, c.log)
			eventually(t, 5*time.Second, c.check)
		})
		if i == 0 {
			// Not v6dp's: a proxy entry outside the prefix, an address on
			// the bridge, and (below) the uplink's accept_ra set to 0.
			s.MustRun(s.Host, "ip", "-6", "neigh", "add", "proxy", "2001:db8::99", "dev", "eth0")
			s.MustRun(s.Host, "ip", "addr", "add", "2001:db8:ffff::1/64", "dev", "docker0", "nodad")
		}
	}
	// The container is still answered and reached through all of it.
	s.waitLive(t, addr, true)
	s.MustRun(s.Router, "ping", "-c", "1", "-W", "2", addr)
	st := s.status(t)
	if st.LastRepair == nil || st.Repairs < len(cases) {
		t.Errorf("status: last repair %+v, %d repairs; want at least %d", st.LastRepair, st.Repairs, len(cases))
	}
	// What is not v6dp's is as it was.
	if err := s.contains(s.MustRun(s.Host, "ip", "-6", "neigh", "show", "proxy", "dev", "eth0"), "2001:db8::99"); err != nil {
		t.Errorf("a proxy entry outside the prefix was removed: %v", err)
	}
	if err := s.contains(s.MustRun(s.Host, "ip", "-6", "addr", "show", "dev", "docker0"), "2001:db8:ffff::1/64"); err != nil {
		t.Errorf("an address on the bridge that is not v6dp's was removed: %v", err)
	}
	n := len(d.logLines())
	s.Sysctl(s.Host, "net.ipv6.conf.eth0.accept_ra", "0")
	time.Sleep(2500 * time.Millisecond) // more than two resync intervals
	if err := s.sysctlIs("net.ipv6.conf.eth0.accept_ra", "0"); err != nil {
		t.Errorf("accept_ra set to 0 on purpose was changed: %v", err)
	}
	for _, l := range d.logLines()[n:] {
		if strings.Contains(l, "msg=repaired") {
			t.Errorf("a repair with nothing broken: %s", l)
		}
	}
}

func (s *seed) contains(out, want string) error {
	if !strings.Contains(out, want) {
		return fmt.Errorf("%q not in:\n%s", want, out)
	}
	return nil
}

func (s *seed) sysctlIs(key, want string) error {
	got, err := s.Run(s.Host, "sysctl", "-n", key)
	if err != nil {
		return err
	}
	if strings.TrimSpace(got) != want {
		return fmt.Errorf("%s = %s, want %s", key, strings.TrimSpace(got), want)
	}
	return nil
}

// detachLink detaches v6dp's pinned link for hook with bpftool, as an
// operator's `bpftool link detach` does: the pin stays, the link is defunct.
func (s *seed) detachLink(t *testing.T, hook string) {
	t.Helper()
	for _, p := range s.status(t).Pins {
		if p.Kind == "link" && p.Hook == hook && !p.Defunct {
			s.MustRun(s.Host, "bpftool", "link", "detach", "id", fmt.Sprint(p.ID))
			return
		}
	}
	t.Fatalf("no live %s link pinned:\n%s", hook, s.mustV6dp(t, "status"))
}

func (s *seed) linkLive(t *testing.T, hook string) error {
	for _, p := range s.status(t).Pins {
		if p.Kind == "link" && p.Hook == hook && !p.Defunct && p.Interface != "" {
			return nil
		}
	}
	return fmt.Errorf("no live %s link", hook)
}

// addrBytes and decBytes write an IPv6 address as bpftool takes it (hex
// bytes) and prints it (decimal bytes).
func addrBytes(a string) []string {
	b := netip.MustParseAddr(a).As16()
	out := make([]string, len(b))
	for i, x := range b {
		out[i] = fmt.Sprintf("%02x", x)
	}
	return out
}

func decBytes(a string) []string {
	b := netip.MustParseAddr(a).As16()
	out := make([]string, len(b))
	for i, x := range b {
		out[i] = fmt.Sprint(x)
	}
	return out
}

// le32 writes a u32 map key as bpftool takes it (little-endian bytes).
func le32(v int) []string {
	return []string{fmt.Sprint(v & 0xff), fmt.Sprint(v >> 8 & 0xff), fmt.Sprint(v >> 16 & 0xff), fmt.Sprint(v >> 24 & 0xff)}
}

func (s *seed) mustIfindex(t *testing.T, dev string) int {
	t.Helper()
	idx, err := s.ifindex(dev)
	if err != nil {
		t.Fatal(err)
	}
	return int(idx)
}

// A detached XDP program on the uplink is attached again at the next
// resync (the kernel sends no link event when an XDP link is detached)
// and answers again.
func TestRepairXDPProgram(t *testing.T) {
	s := newSeed(t, "2001:db8::c008/125")
	d := s.startDaemon(t, s.daemonArgs("xdp", "--resync-interval", "1s"))
	addr := s.addContainer(t, s.name("rx"))
	s.waitLive(t, addr, true)
	n := len(d.logLines())
	s.detachLink(t, "uplink")
	d.waitRepaired(t, n, `"uplink program" uplink=eth0 mode=xdp-generic`)
	eventually(t, 5*time.Second, func() error { return s.linkLive(t, "uplink") })
	conn, err := topo.ListenNDP(s.Router, s.RouterIf)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	before := s.counters(t, "xdp")
	s.answeredWith(t, conn, addr, s.hostMAC(t), 5*time.Second)
	if after := s.counters(t, "xdp"); after["ns_answered"] <= before["ns_answered"] {
		t.Errorf("after the repair XDP did not answer (ns_answered %d -> %d)", before["ns_answered"], after["ns_answered"])
	}
}

// Nothing broken, nothing repaired: on every dataplane a daemon with
// containers logs no repair over several resyncs.
func TestNoRepairWhenIntact(t *testing.T) {
	for _, dp := range append(dataplanes(), "auto") {
		t.Run(dp, func(t *testing.T) {
			s := newSeed(t, "2001:db8::c008/125")
			d := s.startDaemon(t, s.daemonArgs(dp, "--resync-interval", "500ms"))
			for _, n := range []string{"i1", "i2"} {
				s.waitLive(t, s.addContainer(t, s.name(n)), dp != "kernel")
			}
			time.Sleep(2 * time.Second)
			for _, l := range d.logLines() {
				if strings.Contains(l, "msg=repaired") || strings.Contains(l, "level=WARN") {
					t.Errorf("intact host: %s", l)
				}
			}
		})
	}
}
