package topo

import (
	"os"
	"syscall"

	"github.com/v6dp/v6dp/ctrl"
)

// v6dpNetnsDirs removes the state and pin directories a v6dp daemon in
// namespace ns derived from the namespace's inode without being told one
// (/run/v6dp/ns-INODE, /sys/fs/bpf/v6dp-ns-INODE; see ctrl.NetnsDefaults),
// which carry no run tag, and returns what it removed. Called before the
// namespace goes, while its inode still names it.
func v6dpNetnsDirs(ns string) []string {
	var st syscall.Stat_t
	if err := syscall.Stat("/run/netns/"+ns, &st); err != nil {
		return nil
	}
	var found []string
	for _, d := range []string{ctrl.NetnsStateDir(st.Ino), ctrl.NetnsPinDir(st.Ino)} {
		if _, err := os.Stat(d); err == nil && os.RemoveAll(d) == nil {
			found = append(found, d)
		}
	}
	return found
}
