package rules

import (
	"fmt"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func addrs(s ...string) []netip.Addr {
	out := make([]netip.Addr, len(s))
	for i, a := range s {
		out[i] = netip.MustParseAddr(a)
	}
	return out
}

func TestPublishable(t *testing.T) {
	port := Port{
		Prefix:   netip.MustParsePrefix("2001:db8:1::/64"),
		Gateway:  netip.MustParseAddr("2001:db8:1::1"),
		Reserved: map[netip.Addr]bool{netip.MustParseAddr("2001:db8:1::2"): true},
		MaxAddrs: 3,
	}
	a := func(s string, flags uint32) Addr { return Addr{Addr: netip.MustParseAddr(s), Flags: flags} }
	for _, tc := range []struct {
		name    string
		in      []Addr
		ok      []netip.Addr
		refused []Refusal
	}{
		{name: "one address", in: []Addr{a("2001:db8:1::10", 0)}, ok: addrs("2001:db8:1::10")},
		{name: "outside the prefix and link-local ignored",
			in: []Addr{a("2001:db8:2::10", 0), a("fe80::1", 0), a("2001:db8:1::10", 0)}, ok: addrs("2001:db8:1::10")},
		{name: "subnet-router anycast", in: []Addr{a("2001:db8:1::", 0)},
			refused: []Refusal{{netip.MustParseAddr("2001:db8:1::"), "the subnet-router anycast address of 2001:db8:1::/64"}}},
		{name: "gateway", in: []Addr{a("2001:db8:1::1", 0)},
			refused: []Refusal{{netip.MustParseAddr("2001:db8:1::1"), "the containers' gateway"}}},
		{name: "host's own", in: []Addr{a("2001:db8:1::2", 0)},
			refused: []Refusal{{netip.MustParseAddr("2001:db8:1::2"), "an address of the host"}}},
		{name: "tentative", in: []Addr{a("2001:db8:1::10", FlagTentative)},
			refused: []Refusal{{netip.MustParseAddr("2001:db8:1::10"), "tentative (duplicate address detection not finished)"}}},
		{name: "dad failed", in: []Addr{a("2001:db8:1::10", FlagDADFailed|FlagTentative)},
			refused: []Refusal{{netip.MustParseAddr("2001:db8:1::10"), "duplicate address detection failed"}}},
		{name: "cap keeps the lowest", in: []Addr{a("2001:db8:1::14", 0), a("2001:db8:1::13", 0), a("2001:db8:1::12", 0), a("2001:db8:1::11", 0)},
			ok:      addrs("2001:db8:1::11", "2001:db8:1::12", "2001:db8:1::13"),
			refused: []Refusal{{netip.MustParseAddr("2001:db8:1::14"), "over the cap of 3 addresses per port"}}},
		{name: "refused do not count against the cap",
			in: []Addr{a("2001:db8:1::1", 0), a("2001:db8:1::11", FlagTentative), a("2001:db8:1::12", 0), a("2001:db8:1::13", 0), a("2001:db8:1::14", 0)},
			ok: addrs("2001:db8:1::12", "2001:db8:1::13", "2001:db8:1::14"),
			refused: []Refusal{{netip.MustParseAddr("2001:db8:1::1"), "the containers' gateway"},
				{netip.MustParseAddr("2001:db8:1::11"), "tentative (duplicate address detection not finished)"}}},
		{name: "duplicates once", in: []Addr{a("2001:db8:1::10", 0), a("2001:db8:1::10", 0)}, ok: addrs("2001:db8:1::10")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ok, refused := port.Publishable(tc.in)
			if diff := cmp.Diff(tc.ok, ok, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
				t.Errorf("published (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.refused, refused, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
				t.Errorf("refused (-want +got):\n%s", diff)
			}
		})
	}
}

func TestPublishableDefaultCap(t *testing.T) {
	p := Port{Prefix: netip.MustParsePrefix("2001:db8::/64")}
	var in []Addr
	for i := 1; i <= 40; i++ {
		in = append(in, Addr{Addr: netip.MustParseAddr(fmt.Sprintf("2001:db8::%x", 0x100+i))})
	}
	ok, refused := p.Publishable(in)
	if len(ok) != DefaultMaxAddrs || len(refused) != 40-DefaultMaxAddrs {
		t.Fatalf("got %d published, %d refused; want %d, %d", len(ok), len(refused), DefaultMaxAddrs, 40-DefaultMaxAddrs)
	}
}

func TestOwners(t *testing.T) {
	x, y := netip.MustParseAddr("2001:db8::10"), netip.MustParseAddr("2001:db8::20")
	var o Owners
	// Port 7 holds x first.
	owned, c := o.Assign(map[int][]netip.Addr{7: {x}})
	if diff := cmp.Diff(map[int][]netip.Addr{7: {x}}, owned, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" || len(c) != 0 {
		t.Fatalf("first holder: %s %v", diff, c)
	}
	// Port 3 (lower ifindex, so it would win a tie) claims x later: it
	// gets nothing for x, keeps its own y, and the conflict is reported once.
	owned, c = o.Assign(map[int][]netip.Addr{7: {x}, 3: {x, y}})
	want := map[int][]netip.Addr{7: {x}, 3: {y}}
	if diff := cmp.Diff(want, owned, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
		t.Fatalf("second claimant (-want +got):\n%s", diff)
	}
	if len(c) != 1 || c[0] != (Conflict{Addr: x, Owner: 7, Claimant: 3}) {
		t.Fatalf("conflicts: %+v", c)
	}
	if _, c = o.Assign(map[int][]netip.Addr{7: {x}, 3: {x, y}}); len(c) != 0 {
		t.Fatalf("the same conflict reported again: %+v", c)
	}
	// The owner lets go: the claimant gets it.
	owned, c = o.Assign(map[int][]netip.Addr{7: nil, 3: {x, y}})
	if diff := cmp.Diff(map[int][]netip.Addr{3: {x, y}}, owned, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" || len(c) != 0 {
		t.Fatalf("after the owner released (-want +got):\n%s %v", diff, c)
	}
	if p, ok := o.Owner(x); !ok || p != 3 {
		t.Fatalf("owner of %s: %d %v", x, p, ok)
	}
	// Two ports that appear together: the lower ifindex wins.
	var fresh Owners
	owned, c = fresh.Assign(map[int][]netip.Addr{9: {x}, 4: {x}})
	if len(owned[4]) != 1 || len(owned[9]) != 0 || len(c) != 1 || c[0].Claimant != 9 {
		t.Fatalf("tie: owned %v conflicts %+v", owned, c)
	}
}
