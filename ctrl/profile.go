package ctrl

import (
	"log/slog"
	"os"
	"runtime/pprof"
)

// cpuProfileEnv names a file the daemon writes a CPU profile to, from its
// start to its end (`go tool pprof v6dp FILE`): how the scale bench finds
// what convergence costs. Unset, nothing is profiled.
const cpuProfileEnv = "V6DP_CPUPROFILE"

// startCPUProfile starts the profile V6DP_CPUPROFILE asks for; the
// returned function stops it and writes the file.
func startCPUProfile() (stop func()) {
	path := os.Getenv(cpuProfileEnv)
	if path == "" {
		return func() {}
	}
	f, err := os.Create(path)
	if err != nil {
		slog.Warn("cpu profile", "env", cpuProfileEnv, "err", err)
		return func() {}
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		slog.Warn("cpu profile", "env", cpuProfileEnv, "err", err)
		f.Close()
		return func() {}
	}
	slog.Info("cpu profile started", "file", path)
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}
}
