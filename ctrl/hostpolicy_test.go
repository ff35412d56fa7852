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
		{nftables.TableFamilyIPv6, nfInput, false},  // input: the host's own traffic
		{nftables.TableFamilyIPv6, nfOutput, false}, // output
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

// Which netfilter base chains see the NS the kernel answers for the
// endpoints or its NA: each one a BPF answer would skip must count.
func TestChainOnNDPPath(t *testing.T) {
	for _, tc := range []struct {
		family nftables.TableFamily
		hook   uint32
		want   bool
	}{
		{nftables.TableFamilyIPv6, nfPrerouting, true},
		{nftables.TableFamilyIPv6, nfInput, true},
		{nftables.TableFamilyIPv6, nfOutput, true},
		{nftables.TableFamilyIPv6, nfPostrouting, true},
		{nftables.TableFamilyIPv6, nfForward, false}, // a proxied NS is taken in before it
		{nftables.TableFamilyINet, nfInput, true},
		{nftables.TableFamilyINet, nfOutput, true},
		{nftables.TableFamilyINet, nfIngress, true},
		{nftables.TableFamilyINet, nfForward, false},
		{nftables.TableFamilyNetdev, 0, true},
		{nftables.TableFamilyNetdev, 1, true},
		{nftables.TableFamilyBridge, nfInput, false}, // the uplink is no bridge port
		{nftables.TableFamilyBridge, nfForward, false},
		{nftables.TableFamilyIPv4, nfInput, false},
		{nftables.TableFamilyARP, 0, false},
	} {
		if got := chainOnNDPPath(tc.family, tc.hook); got != tc.want {
			t.Errorf("%s hook %d: %v, want %v", familyName(tc.family), tc.hook, got, tc.want)
		}
	}
}

// One reading, two verdicts: the first reason stands for each.
func TestFilteringFirstReason(t *testing.T) {
	var f filtering
	f.set("ip6 filter chain INPUT has 1 rules")
	f.set("inet t chain output has policy drop")
	if want := (filtering{Filtered: true, Why: "ip6 filter chain INPUT has 1 rules"}); f != want {
		t.Errorf("got %+v, want %+v", f, want)
	}
}
