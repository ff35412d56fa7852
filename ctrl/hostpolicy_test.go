package ctrl

import (
	"testing"

	"github.com/google/nftables"
)

// Which netfilter base chains see the endpoints' forwarded traffic: each
// one the fast path would skip must count.
func TestChainOnPath(t *testing.T) {
	for _, tc := range []struct {
		family nftables.TableFamily
		hook   uint32
		want   bool
	}{
		{nftables.TableFamilyIPv6, nfForward, true},
		{nftables.TableFamilyIPv6, nfPrerouting, true},
		{nftables.TableFamilyIPv6, nfPostrouting, true},
		{nftables.TableFamilyIPv6, 1, false}, // input: the host's own traffic
		{nftables.TableFamilyIPv6, 3, false}, // output
		{nftables.TableFamilyINet, nfForward, true},
		{nftables.TableFamilyINet, nfIngress, true},
		{nftables.TableFamilyBridge, 1, true},
		{nftables.TableFamilyBridge, nfForward, true},
		{nftables.TableFamilyNetdev, 0, true},
		{nftables.TableFamilyIPv4, nfForward, false},
		{nftables.TableFamilyARP, 0, false},
	} {
		if got := chainOnPath(tc.family, tc.hook); got != tc.want {
			t.Errorf("%s hook %d: %v, want %v", familyName(tc.family), tc.hook, got, tc.want)
		}
	}
}
