package rules

import (
	"errors"
	"net"
	"net/netip"
	"testing"
)

func TestMACAddr(t *testing.T) {
	tests := []struct {
		name, prefix, mac, want string
	}{
		{"seed example", "2001:db8:1::/64", "02:42:ac:11:00:03", "2001:db8:1::242:ac11:3"},
		{"seed /80", "2001:db8:23:42:1::/80", "02:42:ac:11:00:02", "2001:db8:23:42:1:242:ac11:2"},
		{"host 3 of the routed cluster", "2001:db8:3:1::/64", "02:42:ac:11:00:02", "2001:db8:3:1:0:242:ac11:2"},
		{"all ones MAC", "2001:db8::/48", "fe:ff:ff:ff:ff:ff", "2001:db8::feff:ffff:ffff"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mac, _ := net.ParseMAC(tt.mac)
			got, err := MACAddr(netip.MustParsePrefix(tt.prefix), mac)
			if err != nil {
				t.Fatal(err)
			}
			if got.String() != tt.want {
				t.Errorf("MACAddr(%s, %s) = %s, want %s", tt.prefix, tt.mac, got, tt.want)
			}
		})
	}
	mac, _ := net.ParseMAC("02:42:ac:11:00:03")
	if _, err := MACAddr(netip.MustParsePrefix("2001:db8::c008/125"), mac); err == nil {
		t.Errorf("MACAddr with a /125: want an error")
	}
}

func TestDockerMAC(t *testing.T) {
	if got := DockerMAC(3).String(); got != "02:42:ac:11:00:03" {
		t.Errorf("DockerMAC(3) = %s, want 02:42:ac:11:00:03", got)
	}
	used := map[string]bool{"02:42:ac:11:00:02": true, "02:42:ac:11:00:03": true}
	m, err := NextFreeMAC(used)
	if err != nil || m.String() != "02:42:ac:11:00:04" {
		t.Errorf("NextFreeMAC = %v, %v; want 02:42:ac:11:00:04", m, err)
	}
}

func TestNextFreeAddr(t *testing.T) {
	p := netip.MustParsePrefix("2001:db8::c008/125")
	a, err := NextFreeAddr(p, nil)
	if err != nil || a.String() != "2001:db8::c009" {
		t.Fatalf("first address of %s = %v, %v; want 2001:db8::c009 (the seed's example)", p, a, err)
	}
	used := map[netip.Addr]bool{}
	for i := 0; i < 7; i++ {
		a, err := NextFreeAddr(p, used)
		if err != nil {
			t.Fatalf("address %d: %v", i, err)
		}
		if !p.Contains(a) || a == p.Addr() {
			t.Fatalf("address %d = %s: outside %s or the subnet-router anycast", i, a, p)
		}
		used[a] = true
	}
	if _, err := NextFreeAddr(p, used); !errors.Is(err, ErrPrefixFull) {
		t.Errorf("full /125: want ErrPrefixFull, got %v", err)
	}
	// A hole is reused first.
	delete(used, netip.MustParseAddr("2001:db8::c00b"))
	if a, _ := NextFreeAddr(p, used); a.String() != "2001:db8::c00b" {
		t.Errorf("hole at c00b not reused: got %s", a)
	}
}

func TestSolicitedNode(t *testing.T) {
	got := SolicitedNode(netip.MustParseAddr("2001:db8::242:ac11:3"))
	if got.String() != "ff02::1:ff11:3" {
		t.Errorf("SolicitedNode = %s, want ff02::1:ff11:3", got)
	}
}
