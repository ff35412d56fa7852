package loader

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
)

// Pin is one object pinned under the pin directory, as `v6dp status`
// shows it: what bpftool needs to find it again.
type Pin struct {
	Path string `json:"path"`
	// Kind is "map" or "link".
	Kind string `json:"kind"`
	// ID is the map's or link's kernel id (bpftool map/link show id ID).
	ID uint32 `json:"id"`
	// Type is the map type, or the link type (xdp, tcx).
	Type string `json:"type"`
	// Hook says what a link is for: "uplink", "port" (the endpoint
	// program on a port's host side) or "port-far-end" (xdp_pass).
	Hook string `json:"hook,omitempty"`
	// Ifindex is the interface a link pin is named after: the uplink's,
	// or the host-side port's (also for the far end's program).
	Ifindex int `json:"ifindex,omitempty"`
	// ProgramID is a link's program (bpftool prog show id ProgramID).
	ProgramID uint32 `json:"program_id,omitempty"`
	// Defunct: the link's interface went away; the next daemon run
	// replaces or removes it.
	Defunct bool `json:"defunct,omitempty"`
}

var linkHooks = map[string]string{
	xdpLinkPrefix:     "uplink",
	tcxLinkPrefix:     "uplink",
	portLinkPrefix:    "port",
	peerXDPLinkPrefix: "port-far-end",
}

// Pins lists the maps and links pinned under pinDir (DefaultPinDir when
// empty) without changing anything. A missing directory is no pins.
func Pins(pinDir string) ([]Pin, error) {
	if pinDir == "" {
		pinDir = DefaultPinDir
	}
	entries, err := os.ReadDir(pinDir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", pinDir, err)
	}
	var out []Pin
	var errs []error
	for _, e := range entries {
		path := filepath.Join(pinDir, e.Name())
		if hook, ifindex, ok := linkPinName(e.Name()); ok {
			p := Pin{Path: path, Kind: "link", Hook: hook, Ifindex: ifindex}
			l, err := link.LoadPinnedLink(path, nil)
			if err != nil {
				errs = append(errs, fmt.Errorf("loading pinned link %s: %w", path, err))
				continue
			}
			info, err := l.Info()
			l.Close()
			if err != nil {
				errs = append(errs, fmt.Errorf("reading pinned link %s: %w", path, err))
				continue
			}
			p.ID, p.ProgramID = uint32(info.ID), uint32(info.Program)
			switch {
			case info.XDP() != nil:
				p.Type, p.Defunct = "xdp", info.XDP().Ifindex == 0
			case info.TCX() != nil:
				p.Type, p.Defunct = "tcx", info.TCX().Ifindex == 0
			default:
				p.Type = fmt.Sprint(info.Type)
			}
			out = append(out, p)
			continue
		}
		m, err := ebpf.LoadPinnedMap(path, &ebpf.LoadPinOptions{ReadOnly: true})
		if err != nil {
			// Not a map v6dp pinned (or not a map at all): show nothing
			// rather than guess.
			continue
		}
		p := Pin{Path: path, Kind: "map", Type: m.Type().String()}
		if info, err := m.Info(); err == nil {
			if id, ok := info.ID(); ok {
				p.ID = uint32(id)
			}
		}
		m.Close()
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out, errors.Join(errs...)
}

func linkPinName(name string) (hook string, ifindex int, ok bool) {
	for prefix, hook := range linkHooks {
		rest, found := strings.CutPrefix(name, prefix)
		if !found {
			continue
		}
		if ifindex, err := strconv.Atoi(rest); err == nil {
			return hook, ifindex, true
		}
	}
	return "", 0, false
}
