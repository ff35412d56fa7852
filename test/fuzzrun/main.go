// Command fuzzrun runs every fuzz target of the module (each func Fuzz* in
// a _test.go) for -fuzztime, one after the other, and exits 1 if any of
// them found a failing input. `make fuzz` calls it.
//
// It exists for one reason beyond the loop: go1.26's fuzz coordinator
// sometimes ends a target that ran its whole -fuzztime and found nothing
// with "context deadline exceeded" and a non-zero exit (golang/go#75804,
// fixed in go1.27): the time-limit context is done before the fuzzing
// context it derives, and the coordinator reports its own deadline as the
// target's error. Such an end is told apart from a finding by what a
// finding always leaves: a failing input written under testdata/fuzz/.
// A run that ended that way is reported as such and counts as passed;
// every other non-zero exit (an input written, a panic, a test error, a
// build failure, a hang) fails.
package main

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// target is one fuzz function and the package directory it lives in.
type target struct {
	dir, name string
}

// findTargets lists the fuzz functions under root, sorted by package and name.
func findTargets(root string) ([]target, error) {
	var ts []target
	err := filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if n := d.Name(); p != root && (strings.HasPrefix(n, ".") || n == "testdata" || n == "vendor") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(p, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(token.NewFileSet(), p, nil, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		for _, d := range f.Decls {
			if fn, ok := d.(*ast.FuncDecl); ok && isFuzzFunc(fn) {
				ts = append(ts, target{dir: filepath.Dir(p), name: fn.Name.Name})
			}
		}
		return nil
	})
	sort.Slice(ts, func(i, j int) bool {
		if ts[i].dir != ts[j].dir {
			return ts[i].dir < ts[j].dir
		}
		return ts[i].name < ts[j].name
	})
	return ts, err
}

// isFuzzFunc says whether a declaration is what go test fuzzes: a
// top-level func FuzzXxx(f *testing.F) (a Fuzz in a string or a method
// does not count).
func isFuzzFunc(fn *ast.FuncDecl) bool {
	n := fn.Name.Name
	if fn.Recv != nil || !strings.HasPrefix(n, "Fuzz") || fn.Type.Params == nil || len(fn.Type.Params.List) != 1 {
		return false
	}
	if rest := n[len("Fuzz"):]; rest != "" {
		if r, _ := utf8.DecodeRuneInString(rest); unicode.IsLower(r) {
			return false
		}
	}
	star, ok := fn.Type.Params.List[0].Type.(*ast.StarExpr)
	if !ok {
		return false
	}
	sel, ok := star.X.(*ast.SelectorExpr)
	return ok && sel.Sel.Name == "F"
}

// corpus lists the files of a target's failing-input directory.
func corpus(t target) map[string]bool {
	files := map[string]bool{}
	ents, _ := os.ReadDir(filepath.Join(t.dir, "testdata", "fuzz", t.name))
	for _, e := range ents {
		files[e.Name()] = true
	}
	return files
}

// verdict says how a target's run ended.
type verdict int

const (
	passed verdict = iota
	deadlineRace
	failed
)

// classify decides a non-zero run: the coordinator's deadline race only
// when no input was written, the output says nothing else went wrong,
// and the target's FAIL line shows it ran its whole time.
func classify(name, output string, newInputs int, fuzztime time.Duration) verdict {
	if newInputs > 0 || strings.Contains(output, "Failing input written to") {
		return failed
	}
	// The race's whole report is "--- FAIL: Name (Ns)", the one line
	// "context deadline exceeded", then go test's FAIL, exit status and
	// package lines. Anything else after the FAIL line is a real failure.
	head := "--- FAIL: " + name + " ("
	i := strings.Index(output, head)
	if i < 0 {
		return failed
	}
	rest := output[i+len(head):]
	j := strings.Index(rest, "s)\n")
	if j < 0 {
		return failed
	}
	secs, err := strconv.ParseFloat(rest[:j], 64)
	if err != nil || time.Duration(secs*float64(time.Second)) < fuzztime {
		return failed
	}
	sawDeadline := false
	for _, line := range strings.Split(rest[j+len("s)\n"):], "\n") {
		l := strings.TrimSpace(line)
		switch {
		case l == "":
		case l == "context deadline exceeded" && !sawDeadline:
			sawDeadline = true
		case l == "FAIL", strings.HasPrefix(l, "exit status "), strings.HasPrefix(l, "FAIL\t"):
		default:
			return failed
		}
	}
	if !sawDeadline {
		return failed
	}
	return deadlineRace
}

func run(t target, fuzztime time.Duration, goBin string, out io.Writer) verdict {
	before := corpus(t)
	cmd := exec.Command(goBin, "test", "-run", "^$", "-fuzz", "^"+t.name+"$",
		"-fuzztime", fuzztime.String(), "./"+filepath.ToSlash(t.dir))
	var buf bytes.Buffer
	w := io.MultiWriter(out, &buf)
	cmd.Stdout, cmd.Stderr, cmd.Stdin = w, w, nil
	err := cmd.Run()
	if err == nil {
		return passed
	}
	newInputs := 0
	for f := range corpus(t) {
		if !before[f] {
			newInputs++
		}
	}
	return classify(t.name, buf.String(), newInputs, fuzztime)
}

func main() {
	fuzztime := flag.Duration("fuzztime", 20*time.Second, "how long each fuzz target runs")
	root := flag.String("root", ".", "module root to search for fuzz targets")
	flag.Parse()
	goBin := os.Getenv("GO")
	if goBin == "" {
		goBin = "go"
	}
	if err := os.Chdir(*root); err != nil {
		fmt.Fprintln(os.Stderr, "fuzzrun:", err)
		os.Exit(2)
	}
	ts, err := findTargets(".")
	if err != nil || len(ts) == 0 {
		fmt.Fprintln(os.Stderr, "fuzzrun: no fuzz targets found:", err)
		os.Exit(2)
	}
	var bad []string
	w := bufio.NewWriter(os.Stdout)
	defer w.Flush()
	for _, t := range ts {
		fmt.Fprintf(w, "fuzz %s %s for %s\n", t.dir, t.name, *fuzztime)
		w.Flush()
		switch run(t, *fuzztime, goBin, os.Stdout) {
		case deadlineRace:
			fmt.Fprintf(w, "fuzz %s: ran its %s, no failing input; the non-zero exit is go1.26's fuzz coordinator reporting its own deadline (golang/go#75804), counted as passed\n", t.name, *fuzztime)
		case failed:
			bad = append(bad, t.dir+" "+t.name)
		}
	}
	if len(bad) > 0 {
		fmt.Fprintf(w, "fuzz: %d of %d targets failed: %s (failing inputs, if any, are under the package's testdata/fuzz/: commit them with the fix)\n",
			len(bad), len(ts), strings.Join(bad, ", "))
		w.Flush()
		os.Exit(1)
	}
	fmt.Fprintf(w, "fuzz: all %d targets passed\n", len(ts))
}
