// Package docker makes what v6dp's tests need to run a real Docker engine
// without a registry: a busybox root filesystem, as a tar stream that
// `docker import` turns into an image.
package docker

import (
	"archive/tar"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"strings"
	"time"
)

// Busybox is where Debian's busybox-static installs its binary.
const Busybox = "/bin/busybox"

// Applets lists the applets a busybox binary has (`busybox --list`).
func Applets(busybox string) ([]string, error) {
	out, err := exec.Command(busybox, "--list").Output()
	if err != nil {
		return nil, fmt.Errorf("%s --list: %w", busybox, err)
	}
	var a []string
	for _, l := range strings.Fields(string(out)) {
		if l != "busybox" && !strings.Contains(l, "/") {
			a = append(a, l)
		}
	}
	if len(a) == 0 {
		return nil, fmt.Errorf("%s --list: no applets", busybox)
	}
	return a, nil
}

// WriteRootfs writes a root filesystem as a tar stream: the statically
// linked busybox as /bin/busybox, a symbolic link /bin/APPLET for each
// applet, and the empty directories a container runtime mounts over.
// The binary must be static: nothing else (no libc) goes in.
func WriteRootfs(w io.Writer, busybox string, applets []string) error {
	bin, err := os.ReadFile(busybox)
	if err != nil {
		return err
	}
	tw := tar.NewWriter(w)
	mtime := time.Unix(0, 0)
	for _, d := range []string{"bin", "dev", "etc", "proc", "root", "sys", "tmp", "usr", "usr/bin", "var"} {
		mode := int64(0o755)
		if d == "tmp" {
			mode = 0o1777
		}
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d + "/", Mode: mode, ModTime: mtime}); err != nil {
			return err
		}
	}
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "bin/busybox", Mode: 0o755, Size: int64(len(bin)), ModTime: mtime}); err != nil {
		return err
	}
	if _, err := tw.Write(bin); err != nil {
		return err
	}
	for _, a := range applets {
		h := &tar.Header{Typeflag: tar.TypeSymlink, Name: path.Join("bin", a), Linkname: "busybox", Mode: 0o777, ModTime: mtime}
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
	}
	// A passwd file, so that `docker exec` and tools that look up the
	// user find root.
	passwd := []byte("root:x:0:0:root:/root:/bin/sh\n")
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "etc/passwd", Mode: 0o644, Size: int64(len(passwd)), ModTime: mtime}); err != nil {
		return err
	}
	if _, err := tw.Write(passwd); err != nil {
		return err
	}
	return tw.Close()
}

// WriteRootfsFile writes the busybox root filesystem to the file at dst.
func WriteRootfsFile(dst, busybox string) error {
	applets, err := Applets(busybox)
	if err != nil {
		return err
	}
	f, err := os.Create(dst)
	if err != nil {
		return err
	}
	if err := WriteRootfs(f, busybox, applets); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
