// Command testreport reads `go test -json` on stdin and prints what plain
// `go test` prints (each package's result; the output of failed tests),
// then every skipped test with its reason, so that no skip goes unseen.
// It exits 1 if any test or package failed or a package never reported a
// result (a crash, a build failure), else 0. `make test` pipes into it.
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
)

// event is one line of `go test -json` (cmd/test2json).
type event struct {
	Action     string
	Package    string
	ImportPath string
	Test       string
	Output     string
	Elapsed    float64
}

type key struct{ pkg, test string }

type skip struct {
	pkg, test, reason string
}

func main() {
	failed, err := report(os.Stdin, os.Stdout)
	if err != nil {
		fmt.Fprintln(os.Stderr, "testreport:", err)
		os.Exit(2)
	}
	if failed {
		os.Exit(1)
	}
}

func report(in io.Reader, out io.Writer) (failed bool, err error) {
	output := map[key][]string{} // buffered output of running tests
	started := map[key]bool{}
	pkgDone := map[string]bool{}
	pkgSeen := map[string]bool{}
	var skips []skip
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		line := sc.Bytes()
		var e event
		if err := json.Unmarshal(line, &e); err != nil || e.Action == "" {
			// Not test2json: go test's own messages (vet, setup).
			fmt.Fprintln(out, string(line))
			continue
		}
		switch e.Action {
		case "build-output":
			fmt.Fprint(out, e.Output)
			continue
		case "build-fail":
			failed = true
			continue
		}
		k := key{e.Package, e.Test}
		if e.Package != "" {
			pkgSeen[e.Package] = true
		}
		if e.Test == "" {
			switch e.Action {
			case "output":
				// Package-level lines: PASS/FAIL, ok, panics, TestMain's words.
				if !strings.HasPrefix(e.Output, "=== ") {
					fmt.Fprint(out, e.Output)
				}
			case "fail":
				failed = true
				pkgDone[e.Package] = true
			case "pass", "skip":
				pkgDone[e.Package] = true
			}
			continue
		}
		switch e.Action {
		case "run":
			started[k] = true
		case "output":
			output[k] = append(output[k], e.Output)
		case "fail":
			failed = true
			fmt.Fprint(out, strings.Join(output[k], ""))
			delete(output, k)
			delete(started, k)
		case "pass":
			delete(output, k)
			delete(started, k)
		case "skip":
			skips = append(skips, skip{e.Package, e.Test, skipReason(output[k])})
			delete(output, k)
			delete(started, k)
		}
	}
	if err := sc.Err(); err != nil {
		return true, err
	}
	// Tests that never ended: the binary crashed or timed out under them.
	var open []key
	for k := range started {
		open = append(open, k)
	}
	sort.Slice(open, func(i, j int) bool { return open[i].pkg+open[i].test < open[j].pkg+open[j].test })
	for _, k := range open {
		failed = true
		fmt.Fprintf(out, "--- NO RESULT: %s %s\n%s", k.pkg, k.test, strings.Join(output[k], ""))
	}
	for p := range pkgSeen {
		if !pkgDone[p] {
			failed = true
			fmt.Fprintf(out, "FAIL\t%s\t(no result)\n", p)
		}
	}
	fmt.Fprintln(out)
	if len(skips) == 0 {
		fmt.Fprintln(out, "skipped tests: none")
	} else {
		fmt.Fprintf(out, "skipped tests (%d):\n", len(skips))
		for _, s := range skips {
			fmt.Fprintf(out, "  SKIP %s %s: %s\n", s.pkg, s.test, s.reason)
		}
	}
	return failed, nil
}

// skipReason is what the test logged before `--- SKIP` (t.Skip's
// message), without the run and result lines.
func skipReason(lines []string) string {
	var r []string
	for _, l := range lines {
		t := strings.TrimSpace(l)
		if t == "" || strings.HasPrefix(t, "=== ") || strings.HasPrefix(t, "--- SKIP") {
			continue
		}
		r = append(r, t)
	}
	if len(r) == 0 {
		return "(no reason given)"
	}
	return strings.Join(r, " | ")
}
