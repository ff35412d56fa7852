// Package netnsutil is v6dp's one way into other network namespaces, with
// one failure policy, for the daemon, the CLI and the loader alike.
//
// Prefer Handle: a netlink handle whose sockets are opened in the
// namespace, no thread switched. OnThread is for what a handle cannot do
// (creating a namespace, attaching a program by ifindex); if its thread
// cannot be put back, the thread is retired, never reused.
package netnsutil

import (
	"fmt"
	"runtime"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// Handle runs f with a netlink handle in the network namespace at path
// (a namespace file or /proc/PID/ns/net). No thread changes namespace:
// the handle's sockets are opened there.
func Handle(path string, f func(h *netlink.Handle) error) error {
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

// OnThread runs f on a locked OS thread switched into ns, for what a
// netlink handle cannot do (creating a namespace, attaching by ifindex).
// Failure policy: if the thread cannot be put back into its original
// namespace, it stays locked and its goroutine ends, so the Go runtime
// retires the thread instead of scheduling other goroutines in the wrong
// namespace; the error says so.
func OnThread(ns netns.NsHandle, f func() error) error {
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
