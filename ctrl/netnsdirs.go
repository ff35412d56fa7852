package ctrl

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// Several daemons run on one machine when each has its own network
// namespace (one per host namespace in the cluster tests, nested labs).
// Their state files, lock, pins and attachments must never meet, with no
// flag to remember: the defaults are derived from the caller's network
// namespace. The initial namespace (PID 1's) keeps the plain names, so a
// machine with one daemon looks as documented.

// NetnsDefaults returns the default state and pin directories for the
// caller's network namespace: DefaultStateDir and DefaultPinDir in the
// initial namespace, else /run/v6dp/ns-INODE and /sys/fs/bpf/v6dp-ns-INODE,
// INODE being the namespace's inode number (what `ls -iL /run/netns/NAME`
// and `readlink /proc/PID/ns/net` print). The pins sit beside the initial
// namespace's, not under it, because `v6dp cleanup` removes its pin
// directory whole.
func NetnsDefaults() (stateDir, pinDir string) {
	self, err := netnsInode("/proc/self/ns/net")
	if err != nil {
		return DefaultStateDir, DefaultPinDir
	}
	initial, ok := initialNetns()
	if !ok || initial == self {
		return DefaultStateDir, DefaultPinDir
	}
	return NetnsStateDir(self), NetnsPinDir(self)
}

// procNetInitIno is the inode the kernel gives the initial network
// namespace since Linux 6.x (PROC_NET_INIT_INO in include/linux/proc_ns.h);
// older kernels number it like any other.
const procNetInitIno = 0xEFFFFFF9

// initialNetns returns the inode of the machine's initial network
// namespace. Kernel threads live there, so kthreadd's (PID 2) tells it where
// the kernel does not number it fixed; inside a PID namespace PID 2 is
// someone else and PID 1, the container's init, stands in. PID 1's
// namespace links may be unreadable even to root (a supervisor that is not
// dumpable), hence kthreadd first. ok is false when nothing can be read, and
// the caller keeps the plain defaults, as before namespaces were told apart.
func initialNetns() (ino uint64, ok bool) {
	if self, err := netnsInode("/proc/self/ns/net"); err == nil && self == procNetInitIno {
		return self, true
	}
	if comm, err := os.ReadFile("/proc/2/comm"); err == nil && string(comm) == "kthreadd\n" {
		if ino, err := netnsInode("/proc/2/ns/net"); err == nil {
			return ino, true
		}
	}
	if ino, err := netnsInode("/proc/1/ns/net"); err == nil {
		return ino, true
	}
	return 0, false
}

// NetnsStateDir is the default state directory of the network namespace
// with inode ino, when it is not the initial one.
func NetnsStateDir(ino uint64) string {
	return filepath.Join(DefaultStateDir, fmt.Sprintf("ns-%d", ino))
}

// NetnsPinDir is the default pin directory of the network namespace with
// inode ino, when it is not the initial one.
func NetnsPinDir(ino uint64) string { return fmt.Sprintf("%s-ns-%d", DefaultPinDir, ino) }

// netnsInode returns the inode of a namespace file (/proc/PID/ns/net or a
// bind mount of one under /run/netns).
func netnsInode(path string) (uint64, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return 0, err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, fmt.Errorf("%s: no inode", path)
	}
	return st.Ino, nil
}
