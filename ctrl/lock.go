package ctrl

import (
	"errors"
	"fmt"
	"net"
	"os"

	"golang.org/x/sys/unix"
)

// daemonLock is what a running daemon holds so that no second daemon
// manages the same bridge or state directory: two would fight over the
// proxy entries, the maps and the programs.
type daemonLock struct {
	dir       *os.File
	listeners []net.Listener
}

// bridgeSocket names the abstract unix socket a daemon binds for its
// bridge. Abstract sockets belong to the network namespace, as bridge
// names do, and go away with the process however it ends (no stale file
// after a SIGKILL); a second daemon can ask the holder's pid through it.
func bridgeSocket(bridge string) string { return "@v6dp/bridge/" + bridge }

// lockDaemon takes the locks or fails with an error naming the daemon
// that holds one: the state directory (flock on the directory itself)
// and each bridge in this network namespace.
func lockDaemon(st Store, bridges ...string) (*daemonLock, error) {
	if err := os.MkdirAll(st.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("state-dir: %w", err)
	}
	dir, err := os.Open(st.Dir)
	if err != nil {
		return nil, fmt.Errorf("state-dir: %w", err)
	}
	if err := unix.Flock(int(dir.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		dir.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			who := "another v6dp daemon"
			if rt, rerr := st.Runtime(); rerr == nil {
				who = fmt.Sprintf("a v6dp daemon (pid %d)", rt.PID)
			}
			return nil, fmt.Errorf("state-dir: %s already runs with %s; stop it first or give another --state-dir", who, st.Dir)
		}
		return nil, fmt.Errorf("state-dir: locking %s: %w", st.Dir, err)
	}
	lk := &daemonLock{dir: dir}
	for _, bridge := range bridges {
		l, err := net.Listen("unix", bridgeSocket(bridge))
		if err != nil {
			lk.release()
			if errors.Is(err, unix.EADDRINUSE) {
				who := "another v6dp daemon"
				if pid, perr := bridgeHolder(bridge); perr == nil {
					who = fmt.Sprintf("a v6dp daemon (pid %d)", pid)
				}
				return nil, fmt.Errorf("bridge: %s already manages bridge %s in this network namespace; stop it first", who, bridge)
			}
			return nil, fmt.Errorf("bridge: claiming %s: %w", bridge, err)
		}
		lk.listeners = append(lk.listeners, l)
		go func() {
			// Accept and close: a connection only asks who holds the
			// bridge, and the kernel answers that (SO_PEERCRED).
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				c.Close()
			}
		}()
	}
	return lk, nil
}

// bridgeHolder returns the pid of the daemon holding the bridge's socket.
func bridgeHolder(bridge string) (int, error) {
	c, err := net.Dial("unix", bridgeSocket(bridge))
	if err != nil {
		return 0, err
	}
	defer c.Close()
	raw, err := c.(*net.UnixConn).SyscallConn()
	if err != nil {
		return 0, err
	}
	var cred *unix.Ucred
	var serr error
	if err := raw.Control(func(fd uintptr) {
		cred, serr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return 0, err
	}
	if serr != nil {
		return 0, serr
	}
	return int(cred.Pid), nil
}

// release gives both locks up.
func (l *daemonLock) release() {
	if l == nil {
		return
	}
	for _, ln := range l.listeners {
		ln.Close()
	}
	l.dir.Close()
}

// Bridges are the bridges of every network the daemon serves.
func (r *Resolved) Bridges() []string {
	out := make([]string, 0, len(r.Networks))
	for _, n := range r.Networks {
		out = append(out, n.Bridge)
	}
	if len(out) == 0 {
		out = append(out, r.Bridge)
	}
	return out
}
