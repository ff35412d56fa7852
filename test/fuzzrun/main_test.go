package main

import (
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// The end that CI printed for FuzzXDPUplink at go1.26.8: the whole 20 s
// ran, nothing was written, and the only error is the coordinator's.
const raceOutput = `fuzz: elapsed: 18s, execs: 419993 (24333/sec), new interesting: 0 (total: 30)
fuzz: elapsed: 20s, execs: 469142 (24012/sec), new interesting: 0 (total: 30)
--- FAIL: FuzzXDPUplink (20.46s)
    context deadline exceeded
FAIL
exit status 1
FAIL	github.com/v6dp/v6dp/loader	20.469s
`

func TestClassify(t *testing.T) {
	const ft = 20 * time.Second
	cases := []struct {
		name, output string
		newInputs    int
		want         verdict
	}{
		{"the coordinator's deadline race", raceOutput, 0, deadlineRace},
		{"an input was written", raceOutput, 1, failed},
		{"a finding", `fuzz: elapsed: 2s, execs: 100 (50/sec), new interesting: 0 (total: 3)
--- FAIL: FuzzXDPUplink (2.01s)
    --- FAIL: FuzzXDPUplink (0.00s)
        fuzz_test.go:80: wrong verdict
    Failing input written to testdata/fuzz/FuzzXDPUplink/0123abcd
    To re-run:
    go test -run=FuzzXDPUplink/0123abcd
FAIL
exit status 1
`, 0, failed},
		{"a deadline before the time was up", `--- FAIL: FuzzXDPUplink (3.20s)
    context deadline exceeded
FAIL
exit status 1
`, 0, failed},
		{"a test error beside the deadline", `--- FAIL: FuzzXDPUplink (20.40s)
    context deadline exceeded
    fuzz_test.go:80: map not cleaned up
FAIL
`, 0, failed},
		{"two deadline lines", `--- FAIL: FuzzXDPUplink (20.40s)
    context deadline exceeded
    context deadline exceeded
FAIL
`, 0, failed},
		{"another target's FAIL line", `--- FAIL: FuzzPortProgram (20.40s)
    context deadline exceeded
FAIL
`, 0, failed},
		{"a panic", `panic: runtime error: index out of range [3] with length 2
goroutine 1 [running]:
FAIL	github.com/v6dp/v6dp/loader	0.1s
`, 0, failed},
		{"a build failure", "loader/fuzz_test.go:12:2: undefined: x\nFAIL\tgithub.com/v6dp/v6dp/loader [build failed]\n", 0, failed},
		{"a hung worker", `fuzz: elapsed: 21s, execs: 10 (0/sec)
--- FAIL: FuzzXDPUplink (21.00s)
    fuzzing process hung or terminated unexpectedly: exit status 2
FAIL
`, 0, failed},
	}
	for _, c := range cases {
		if got := classify("FuzzXDPUplink", c.output, c.newInputs, ft); got != c.want {
			t.Errorf("%s: got %v, want %v", c.name, got, c.want)
		}
	}
}

// Every fuzz target of this module is found, and nothing else (not the
// probe module written out by TestRunReal from a string in this file).
func TestFindTargets(t *testing.T) {
	ts, err := findTargets("../..")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"FuzzXDPUplink": "loader", "FuzzPortProgram": "loader",
		"FuzzParseNeighTable": "ctrl", "FuzzConfigFile": "ctrl", "FuzzParsePeer": "ctrl",
		"FuzzParse": "test/frame", "FuzzParseNA": "test/topo",
	}
	if len(ts) != len(want) {
		t.Errorf("found %d targets, want %d: %v", len(ts), len(want), ts)
	}
	got := map[string]string{}
	for _, tg := range ts {
		rel, _ := filepath.Rel("../..", tg.dir)
		got[tg.name] = rel
	}
	for n, d := range want {
		if got[n] != d {
			t.Errorf("%s: found in %q, want %q", n, got[n], d)
		}
	}
}

// The real go test on a module of its own: a target that finds a failing
// input fails and leaves it, a failing seed fails, a clean target passes.
func TestRunReal(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("go not on PATH: %v", err)
	}
	dir := t.TempDir()
	write := func(name, body string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("go.mod", "module fuzzrunprobe\n\ngo 1.22\n")
	write("p_test.go", `package p

import "testing"

func FuzzFinds(f *testing.F) {
	f.Add([]byte("a"))
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) > 1 {
			t.Fatal("long input")
		}
	})
}

func FuzzSeedFails(f *testing.F) {
	f.Add([]byte("boom"))
	f.Fuzz(func(t *testing.T, b []byte) {
		if string(b) == "boom" {
			t.Fatal("boom")
		}
	})
}

func FuzzClean(f *testing.F) {
	f.Add(0)
	f.Fuzz(func(t *testing.T, n int) {})
}
`)
	old, _ := os.Getwd()
	if err := os.Chdir(dir); err != nil {
		t.Fatal(err)
	}
	defer os.Chdir(old)
	for name, want := range map[string]verdict{"FuzzFinds": failed, "FuzzSeedFails": failed, "FuzzClean": passed} {
		tg := target{dir: ".", name: name}
		if got := run(tg, 2*time.Second, goBin, io.Discard); got != want {
			t.Errorf("%s: got %v, want %v", name, got, want)
		}
	}
	if len(corpus(target{dir: ".", name: "FuzzFinds"})) == 0 {
		t.Error("FuzzFinds left no failing input under testdata/fuzz")
	}
}
