package ctrl

import (
	"fmt"
	"runtime"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// InNetns runs f with a netlink handle in the network namespace at path
// (a namespace file or /proc/PID/ns/net). No thread changes namespace:
// the handle's sockets are opened there.
func InNetns(path string, f func(h *netlink.Handle) error) error {
	ns, err := netns.GetFromPath(path)
	if err != nil {
		return fmt.Errorf("opening namespace %s: %w", path, err)
	}
	defer ns.Close()
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		return fmt.Errorf("netlink in %s: %w", path, err)
	}
	defer h.Close()
	return f(h)
}

// OnThreadIn runs f on a locked OS thread switched into ns, for what a
// netlink handle cannot do (creating a namespace, attaching by ifindex).
// Failure policy, the one for all of v6dp: if the thread cannot be put
// back into its original namespace, it stays locked and its goroutine
// ends, so the Go runtime retires the thread instead of scheduling other
// goroutines in the wrong namespace; the error says so.
func OnThreadIn(ns netns.NsHandle, f func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("reading the thread's namespace: %w", err)
			return
		}
		defer orig.Close()
		if err := netns.Set(ns); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("entering namespace: %w", err)
			return
		}
		ferr := f()
		if err := netns.Set(orig); err != nil {
			errc <- fmt.Errorf("returning to the original namespace (thread retired): %w; %v", err, ferr)
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}
