package ctrl

import (
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/vishvananda/netlink"

	"github.com/v6dp/v6dp/ctrl/rules"
)

// The endpoint lifecycle as tables of kernel states and events, against a
// fake kernel that records what it was asked to do. No root needed.

const fakeBridge = 2

var fakeRules = rules.Port{Prefix: netip.MustParsePrefix("2001:db8:1::/64"), Gateway: netip.MustParseAddr("2001:db8:1::1"), MaxAddrs: 4}

// fakePort is a port as the fake kernel has it.
type fakePort struct {
	name   string
	master int
	nsid   int
	addrs  []rules.Addr
	ll     netip.Addr
	broken bool // reads fail (not gone)
}

type fakeKernel struct {
	ports   map[int]*fakePort
	bridges map[int]string
	scanErr error
	did     []string // what the lifecycle asked for, in order
	pub     map[netip.Addr]int
	// entries are the ports Publish was last given, as "index:link-local".
	entries  []string
	prepared map[string]bool
}

func newFakeKernel() *fakeKernel {
	return &fakeKernel{ports: map[int]*fakePort{}, bridges: map[int]string{fakeBridge: "br0"},
		pub: map[netip.Addr]int{}, prepared: map[string]bool{}}
}

func (k *fakeKernel) endpoint(idx int, p *fakePort) *Endpoint {
	ep := &Endpoint{Name: p.name, HostIf: p.name, HostIndex: idx, NetnsID: p.nsid, PeerIf: "eth0",
		MAC: net.HardwareAddr{2, 0, 0, 0, 0, byte(idx)}, MTU: 1500, LinkLocal: p.ll}
	for _, a := range p.addrs {
		ep.Held = append(ep.Held, a.Addr)
	}
	sort.Slice(ep.Held, func(i, j int) bool { return ep.Held[i].Less(ep.Held[j]) })
	ep.Addrs, ep.Refused = fakeRules.Publishable(p.addrs)
	return ep
}

func (k *fakeKernel) Scan() ([]Endpoint, error) {
	if k.scanErr != nil {
		return nil, k.scanErr
	}
	var out []Endpoint
	for idx, p := range k.ports {
		if _, ok := k.bridges[p.master]; !ok {
			continue
		}
		ep := k.endpoint(idx, p)
		if p.broken {
			ep = &Endpoint{HostIf: p.name, HostIndex: idx, Err: errors.New("read failed")}
		}
		out = append(out, *ep)
	}
	return out, nil
}

func (k *fakeKernel) Port(idx int) (*Endpoint, error) {
	p, ok := k.ports[idx]
	if !ok {
		return nil, netlink.LinkNotFoundError{}
	}
	if _, ok := k.bridges[p.master]; !ok {
		return nil, ErrNotPort
	}
	if p.broken {
		return nil, errors.New("read failed")
	}
	return k.endpoint(idx, p), nil
}

func (k *fakeKernel) IsPort(idx int) (bool, error) {
	p, ok := k.ports[idx]
	if !ok {
		return false, netlink.LinkNotFoundError{}
	}
	_, ok = k.bridges[p.master]
	return ok, nil
}

func (k *fakeKernel) Bridges() map[int]string {
	out := map[int]string{}
	for idx, name := range k.bridges {
		out[idx] = name
	}
	return out
}

func (k *fakeKernel) PreparePorts(names []string) error {
	for _, name := range names {
		k.prepared[name] = true
	}
	return nil
}

func (k *fakeKernel) Publish(eps map[int]*Endpoint, want map[netip.Addr]bool) error {
	next := map[netip.Addr]int{}
	for idx, ep := range eps {
		for _, a := range ep.Addrs {
			if !want[a] {
				return fmt.Errorf("%s published but not wanted", a)
			}
			if old, dup := next[a]; dup {
				return fmt.Errorf("%s published for ports %d and %d", a, old, idx)
			}
			next[a] = idx
		}
	}
	if len(next) != len(want) {
		return fmt.Errorf("want has %d addresses, endpoints %d", len(want), len(next))
	}
	k.pub = next
	k.entries = nil
	for idx, ep := range eps {
		k.entries = append(k.entries, fmt.Sprintf("%d:%s", idx, ep.LinkLocal))
	}
	sort.Strings(k.entries)
	return nil
}

func (k *fakeKernel) Conflicts(cs []rules.Conflict, found map[int]*Endpoint) {
	for _, c := range cs {
		k.did = append(k.did, fmt.Sprintf("conflict %s %s>%s", c.Addr, found[c.Owner].HostIf, found[c.Claimant].HostIf))
	}
	if len(cs) == 0 {
		k.did = append(k.did, "no conflicts")
	}
}

func (k *fakeKernel) Announce(fresh, gone []netip.Addr) {
	for _, a := range fresh {
		k.did = append(k.did, "announce "+a.String())
	}
	for _, a := range gone {
		k.did = append(k.did, "withdraw "+a.String())
	}
}

// published renders what is published as "addr@port" strings.
func (k *fakeKernel) published() []string {
	var out []string
	for a, idx := range k.pub {
		out = append(out, fmt.Sprintf("%s@%d", a, idx))
	}
	sort.Strings(out)
	return out
}

func (k *fakeKernel) takeDid() []string {
	d := k.did
	k.did = nil
	return d
}

func A(s string) rules.Addr { return rules.Addr{Addr: netip.MustParseAddr(s)} }

func tentative(s string) rules.Addr {
	return rules.Addr{Addr: netip.MustParseAddr(s), Flags: rules.FlagTentative}
}

// step is one thing that happens: the kernel changes (set), then an event
// reaches the lifecycle (ev), then what must be published and announced.
type step struct {
	what string
	set  func(k *fakeKernel)
	ev   func(l *lifecycle) bool
	pub  []string // nil: nothing published
	did  []string
	// conflicts is the lifecycle's conflict count after the step.
	conflicts uint64
}

func addPort(idx int, nsid int, addrs ...rules.Addr) func(k *fakeKernel) {
	return func(k *fakeKernel) {
		k.ports[idx] = &fakePort{name: fmt.Sprintf("veth%d", idx), master: fakeBridge, nsid: nsid, addrs: addrs}
	}
}

func linkNew(idx int) func(l *lifecycle) bool {
	return func(l *lifecycle) bool {
		return l.Link(linkEvent{Index: idx, Name: fmt.Sprintf("veth%d", idx), Master: fakeBridge, Veth: true})
	}
}

func linkDel(idx int) func(l *lifecycle) bool {
	return func(l *lifecycle) bool { return l.Link(linkEvent{Index: idx, Deleted: true}) }
}

// linkPartial is a notification with neither master nor kind.
func linkPartial(idx int) func(l *lifecycle) bool {
	return func(l *lifecycle) bool { return l.Link(linkEvent{Index: idx, Name: fmt.Sprintf("veth%d", idx)}) }
}

func addrEvent(nsid int) func(l *lifecycle) bool {
	return func(l *lifecycle) bool { return l.Addrs(nsid) }
}

func resync(l *lifecycle) bool { return l.Resync(true) }

// all delivers several events; Apply is due if any says so.
func all(evs ...func(l *lifecycle) bool) func(l *lifecycle) bool {
	return func(l *lifecycle) bool {
		changed := false
		for _, ev := range evs {
			changed = ev(l) || changed
		}
		return changed
	}
}

// quiet sends the lifecycle's log lines to the test log.
func quiet(t *testing.T) {
	old := slog.Default()
	slog.SetDefault(slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn})))
	t.Cleanup(func() { slog.SetDefault(old) })
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(b)))
	return len(b), nil
}

func TestLifecycle(t *testing.T) {
	quiet(t)
	for _, tc := range []struct {
		name  string
		steps []step
	}{
		{name: "a port with an address is learned and announced", steps: []step{
			{what: "new port", set: addPort(5, 1, A("2001:db8:1::10")), ev: linkNew(5),
				pub: []string{"2001:db8:1::10@5"}, did: []string{"announce 2001:db8:1::10"}},
			{what: "deleted", set: func(k *fakeKernel) { delete(k.ports, 5) }, ev: linkDel(5),
				did: []string{"withdraw 2001:db8:1::10"}},
		}},
		{name: "a link message without its master withdraws nothing (the past bug)", steps: []step{
			{what: "two ports", set: func(k *fakeKernel) { addPort(5, 1, A("2001:db8:1::10"))(k); addPort(6, 2, A("2001:db8:1::11"))(k) },
				ev:  all(linkNew(5), linkNew(6)),
				pub: []string{"2001:db8:1::10@5", "2001:db8:1::11@6"}, did: []string{"announce 2001:db8:1::10", "announce 2001:db8:1::11"}},
			{what: "partial messages for both", ev: all(linkPartial(5), linkPartial(6)),
				pub: []string{"2001:db8:1::10@5", "2001:db8:1::11@6"}},
			{what: "port 6 really leaves the bridge", set: func(k *fakeKernel) { k.ports[6].master = 0 }, ev: linkPartial(6),
				pub: []string{"2001:db8:1::10@5"}, did: []string{"withdraw 2001:db8:1::11"}},
		}},
		{name: "the address comes after the port", steps: []step{
			{what: "port without address", set: addPort(5, 1), ev: linkNew(5)},
			{what: "address added", set: func(k *fakeKernel) { k.ports[5].addrs = []rules.Addr{A("2001:db8:1::10")} }, ev: addrEvent(1),
				pub: []string{"2001:db8:1::10@5"}, did: []string{"announce 2001:db8:1::10"}},
		}},
		{name: "a second address comes and goes by address events", steps: []step{
			{what: "port", set: addPort(5, 1, A("2001:db8:1::10")), ev: linkNew(5),
				pub: []string{"2001:db8:1::10@5"}, did: []string{"announce 2001:db8:1::10"}},
			{what: "second address", set: func(k *fakeKernel) { k.ports[5].addrs = append(k.ports[5].addrs, A("2001:db8:1::20")) }, ev: addrEvent(1),
				pub: []string{"2001:db8:1::10@5", "2001:db8:1::20@5"}, did: []string{"announce 2001:db8:1::20"}},
			{what: "an event of another namespace reads nothing", set: func(k *fakeKernel) { k.ports[5].addrs = k.ports[5].addrs[:1] }, ev: addrEvent(9),
				pub: []string{"2001:db8:1::10@5", "2001:db8:1::20@5"}},
			{what: "removed", ev: addrEvent(1),
				pub: []string{"2001:db8:1::10@5"}, did: []string{"withdraw 2001:db8:1::20"}},
		}},
		{name: "tentative addresses wait for DAD", steps: []step{
			{what: "tentative", set: addPort(5, 1, tentative("2001:db8:1::10")), ev: linkNew(5)},
			{what: "DAD done", set: func(k *fakeKernel) { k.ports[5].addrs = []rules.Addr{A("2001:db8:1::10")} }, ev: addrEvent(1),
				pub: []string{"2001:db8:1::10@5"}, did: []string{"announce 2001:db8:1::10"}},
		}},
		{name: "gateway, anycast and over-cap addresses are never published", steps: []step{
			{what: "port claims them", set: addPort(5, 1, A("2001:db8:1::"), A("2001:db8:1::1"), A("2001:db8:1::a"), A("2001:db8:1::b"),
				A("2001:db8:1::c"), A("2001:db8:1::d"), A("2001:db8:1::e")), ev: linkNew(5),
				pub: []string{"2001:db8:1::a@5", "2001:db8:1::b@5", "2001:db8:1::c@5", "2001:db8:1::d@5"},
				did: []string{"announce 2001:db8:1::a", "announce 2001:db8:1::b", "announce 2001:db8:1::c", "announce 2001:db8:1::d"}},
		}},
		{name: "a second claimant gets nothing until the owner lets go", steps: []step{
			{what: "owner", set: addPort(8, 1, A("2001:db8:1::10")), ev: linkNew(8),
				pub: []string{"2001:db8:1::10@8"}, did: []string{"announce 2001:db8:1::10"}},
			{what: "claimant with a lower ifindex", set: addPort(4, 2, A("2001:db8:1::10"), A("2001:db8:1::11")), ev: linkNew(4),
				pub: []string{"2001:db8:1::10@8", "2001:db8:1::11@4"}, did: []string{"conflict 2001:db8:1::10 veth8>veth4", "announce 2001:db8:1::11"}, conflicts: 1},
			{what: "resync counts it once", ev: resync,
				pub: []string{"2001:db8:1::10@8", "2001:db8:1::11@4"}, conflicts: 1},
			{what: "owner deleted", set: func(k *fakeKernel) { delete(k.ports, 8) }, ev: linkDel(8),
				pub: []string{"2001:db8:1::10@4", "2001:db8:1::11@4"}, did: []string{"no conflicts"}, conflicts: 1},
		}},
		{name: "a failed scan or an unreadable port keeps what is known", steps: []step{
			{what: "port", set: addPort(5, 1, A("2001:db8:1::10")), ev: linkNew(5),
				pub: []string{"2001:db8:1::10@5"}, did: []string{"announce 2001:db8:1::10"}},
			{what: "scan fails", set: func(k *fakeKernel) { k.scanErr = errors.New("dump failed") }, ev: resync,
				pub: []string{"2001:db8:1::10@5"}},
			{what: "port unreadable", set: func(k *fakeKernel) { k.scanErr = nil; k.ports[5].broken = true }, ev: resync,
				pub: []string{"2001:db8:1::10@5"}},
			{what: "unreadable after an address event", ev: addrEvent(1), pub: []string{"2001:db8:1::10@5"}},
			{what: "port gone", set: func(k *fakeKernel) { delete(k.ports, 5) }, ev: resync,
				did: []string{"withdraw 2001:db8:1::10"}},
		}},
		{name: "an engine's bridge made after the daemon started is adopted with its ports", steps: []step{
			{what: "port on br0", set: addPort(5, 1, A("2001:db8:1::10")), ev: linkNew(5),
				pub: []string{"2001:db8:1::10@5"}, did: []string{"announce 2001:db8:1::10"}},
			{what: "a port on a bridge not (yet) served", set: func(k *fakeKernel) {
				k.ports[21] = &fakePort{name: "veth21", master: 20, nsid: 3, addrs: []rules.Addr{A("2001:db8:1::21")}}
			}, ev: func(l *lifecycle) bool { return l.Link(linkEvent{Index: 21, Name: "veth21", Master: 20, Veth: true}) },
				pub: []string{"2001:db8:1::10@5"}},
			{what: "the engine's bridge appears", set: func(k *fakeKernel) { k.bridges[20] = "br-app" },
				ev:  func(l *lifecycle) bool { return l.Link(linkEvent{Index: 20, Name: "br-app"}) },
				pub: []string{"2001:db8:1::10@5", "2001:db8:1::21@21"}, did: []string{"announce 2001:db8:1::21"}},
			{what: "another port joins it", set: func(k *fakeKernel) {
				k.ports[22] = &fakePort{name: "veth22", master: 20, nsid: 4, addrs: []rules.Addr{A("2001:db8:1::22")}}
			}, ev: func(l *lifecycle) bool { return l.Link(linkEvent{Index: 22, Name: "veth22", Master: 20, Veth: true}) },
				pub: []string{"2001:db8:1::10@5", "2001:db8:1::21@21", "2001:db8:1::22@22"}, did: []string{"announce 2001:db8:1::22"}},
			{what: "the engine removes its bridge", set: func(k *fakeKernel) {
				delete(k.bridges, 20)
				k.ports[21].master, k.ports[22].master = 0, 0
			}, ev: all(func(l *lifecycle) bool { return l.Link(linkEvent{Index: 20, Name: "br-app", Deleted: true}) }, linkPartial(21), linkPartial(22)),
				pub: []string{"2001:db8:1::10@5"}, did: []string{"withdraw 2001:db8:1::21", "withdraw 2001:db8:1::22"}},
		}},
		{name: "resync finds what events missed", steps: []step{
			{what: "two ports appear unseen", set: func(k *fakeKernel) { addPort(5, 1, A("2001:db8:1::10"))(k); addPort(6, 2, A("2001:db8:1::11"))(k) },
				ev: resync, pub: []string{"2001:db8:1::10@5", "2001:db8:1::11@6"}, did: []string{"announce 2001:db8:1::10", "announce 2001:db8:1::11"}},
			{what: "one goes unseen", set: func(k *fakeKernel) { delete(k.ports, 6) }, ev: resync,
				pub: []string{"2001:db8:1::10@5"}, did: []string{"withdraw 2001:db8:1::11"}},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k := newFakeKernel()
			l := newLifecycle(k, []string{"br0", "br-app"})
			for _, s := range tc.steps {
				if s.set != nil {
					s.set(k)
				}
				if s.ev(l) {
					l.Apply()
				}
				if diff := cmp.Diff(s.pub, k.published()); diff != "" {
					t.Errorf("%s: published (-want +got):\n%s", s.what, diff)
				}
				if diff := cmp.Diff(s.did, k.takeDid()); diff != "" {
					t.Errorf("%s: announcements (-want +got):\n%s", s.what, diff)
				}
				if l.conflicts != s.conflicts {
					t.Errorf("%s: %d conflicts counted, want %d", s.what, l.conflicts, s.conflicts)
				}
			}
		})
	}
}

// TestLifecycleRandomOrder delivers the events of a busy minute (ports
// made and deleted, addresses added late and removed, partial link
// messages) in random orders; the kernel answers with its final state, as
// it does when events queue up. Whatever the order, once every event is
// in, what is published is exactly the final state's addresses.
func TestLifecycleRandomOrder(t *testing.T) {
	quiet(t)
	final := newFakeKernel()
	var events []func(l *lifecycle) bool
	want := []string{}
	for i := 0; i < 40; i++ {
		idx, nsid := 10+i, 100+i
		a := netip.MustParseAddr(fmt.Sprintf("2001:db8:1::%x", 0x100+i))
		b := netip.MustParseAddr(fmt.Sprintf("2001:db8:1::%x", 0x200+i))
		events = append(events, linkNew(idx), linkPartial(idx), addrEvent(nsid))
		switch i % 4 {
		case 0: // stays, one address
			addPort(idx, nsid, rules.Addr{Addr: a})(final)
			want = append(want, fmt.Sprintf("%s@%d", a, idx))
		case 1: // stays, gained a second address
			addPort(idx, nsid, rules.Addr{Addr: a}, rules.Addr{Addr: b})(final)
			want = append(want, fmt.Sprintf("%s@%d", a, idx), fmt.Sprintf("%s@%d", b, idx))
			events = append(events, addrEvent(nsid))
		case 2: // deleted
			events = append(events, linkDel(idx))
		case 3: // left the bridge
			addPort(idx, nsid, rules.Addr{Addr: a})(final)
			final.ports[idx].master = 0
			events = append(events, linkPartial(idx))
		}
	}
	sort.Strings(want)
	seed := uint64(time.Now().UnixNano())
	for run := 0; run < 50; run++ {
		rng := rand.New(rand.NewPCG(seed, uint64(run)))
		order := append([]func(l *lifecycle) bool(nil), events...)
		rng.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
		k := newFakeKernel()
		for idx, p := range final.ports {
			cp := *p
			k.ports[idx] = &cp
		}
		l := newLifecycle(k, []string{"br0", "br-app"})
		for _, ev := range order {
			if ev(l) {
				l.Apply()
			}
		}
		if diff := cmp.Diff(want, k.published()); diff != "" {
			t.Fatalf("seed %d run %d: published (-want +got):\n%s", seed, run, diff)
		}
		// Announcements end in the same state: each address announced
		// once more than withdrawn if live, as often otherwise.
		bal := map[string]int{}
		for _, d := range k.did {
			verb, addr, _ := strings.Cut(d, " ")
			if verb == "announce" {
				bal[addr]++
			} else {
				bal[addr]--
			}
		}
		for _, w := range want {
			addr, _, _ := strings.Cut(w, "@")
			if bal[addr] != 1 {
				t.Fatalf("seed %d run %d: %s announced %d more times than withdrawn, want 1", seed, run, addr, bal[addr])
			}
			delete(bal, addr)
		}
		for addr, n := range bal {
			if n != 0 {
				t.Fatalf("seed %d run %d: %s not live but announced %d more times than withdrawn", seed, run, addr, n)
			}
		}
	}
}

// TestLifecyclePortEntries: every resolved port gets a port entry (its
// MAC and link-local address, so it may send as itself), whether or not
// its container has an address in the prefix; an unresolved one gets
// none (default deny), and a port that goes loses its entry.
func TestLifecyclePortEntries(t *testing.T) {
	quiet(t)
	ll := func(n int) netip.Addr { return netip.MustParseAddr(fmt.Sprintf("fe80::%x", n)) }
	k := newFakeKernel()
	l := newLifecycle(k, []string{"br0"})
	for _, s := range []struct {
		what  string
		set   func(k *fakeKernel)
		ev    func(l *lifecycle) bool
		ports []string
		pub   []string
	}{
		{what: "a port without an address in the prefix", set: func(k *fakeKernel) {
			addPort(5, 1)(k)
			k.ports[5].ll = ll(5)
		}, ev: linkNew(5), ports: []string{"5:fe80::5"}},
		{what: "its link-local address changes", set: func(k *fakeKernel) { k.ports[5].ll = ll(0x55) }, ev: addrEvent(1),
			ports: []string{"5:fe80::55"}},
		{what: "a port whose far end cannot be read", set: func(k *fakeKernel) {
			addPort(6, 2)(k)
			k.ports[6].ll, k.ports[6].broken = ll(6), true
		}, ev: linkNew(6), ports: []string{"5:fe80::55"}},
		{what: "it gets an address", set: func(k *fakeKernel) { k.ports[5].addrs = []rules.Addr{A("2001:db8:1::10")} }, ev: addrEvent(1),
			ports: []string{"5:fe80::55"}, pub: []string{"2001:db8:1::10@5"}},
		{what: "the unreadable port is read at last", set: func(k *fakeKernel) { k.ports[6].broken = false },
			ev: func(l *lifecycle) bool {
				l.now = func() time.Time { return time.Now().Add(time.Second) }
				return l.Retry()
			}, ports: []string{"5:fe80::55", "6:fe80::6"}, pub: []string{"2001:db8:1::10@5"}},
		{what: "the address goes, the entry stays", set: func(k *fakeKernel) { k.ports[5].addrs = nil }, ev: addrEvent(1),
			ports: []string{"5:fe80::55", "6:fe80::6"}},
		{what: "resync keeps both", ev: resync, ports: []string{"5:fe80::55", "6:fe80::6"}},
		{what: "a port deleted loses its entry", set: func(k *fakeKernel) { delete(k.ports, 5) }, ev: linkDel(5),
			ports: []string{"6:fe80::6"}},
		{what: "a port leaving the bridge too", set: func(k *fakeKernel) { k.ports[6].master = 0 }, ev: linkPartial(6)},
	} {
		if s.set != nil {
			s.set(k)
		}
		if s.ev(l) {
			l.Apply()
		}
		if diff := cmp.Diff(s.ports, k.entries); diff != "" {
			t.Errorf("%s: port entries (-want +got):\n%s", s.what, diff)
		}
		if diff := cmp.Diff(s.pub, k.published()); diff != "" {
			t.Errorf("%s: published (-want +got):\n%s", s.what, diff)
		}
	}
}
