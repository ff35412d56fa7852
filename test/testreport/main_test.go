package main

import (
	"strings"
	"testing"
)

// A skip is listed with its reason, a failure's output is printed and
// fails the run, and a package that never reported fails it too.
func TestReport(t *testing.T) {
	in := strings.Join([]string{
		`{"Action":"start","Package":"p"}`,
		`{"Action":"run","Package":"p","Test":"TestA"}`,
		`{"Action":"output","Package":"p","Test":"TestA","Output":"=== RUN   TestA\n"}`,
		`{"Action":"output","Package":"p","Test":"TestA","Output":"    a_test.go:5: no frobnicator in this kernel\n"}`,
		`{"Action":"output","Package":"p","Test":"TestA","Output":"--- SKIP: TestA (0.00s)\n"}`,
		`{"Action":"skip","Package":"p","Test":"TestA"}`,
		`{"Action":"run","Package":"p","Test":"TestB"}`,
		`{"Action":"output","Package":"p","Test":"TestB","Output":"quiet\n"}`,
		`{"Action":"pass","Package":"p","Test":"TestB"}`,
		`{"Action":"output","Package":"p","Output":"ok  \tp\t0.1s\n"}`,
		`{"Action":"pass","Package":"p"}`,
	}, "\n")
	var out strings.Builder
	failed, err := report(strings.NewReader(in), &out)
	if err != nil || failed {
		t.Fatalf("failed %v, err %v:\n%s", failed, err, out.String())
	}
	for _, want := range []string{"ok  \tp", "SKIP p TestA: a_test.go:5: no frobnicator in this kernel"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	if strings.Contains(out.String(), "quiet") {
		t.Errorf("a passing test's output was printed:\n%s", out.String())
	}

	in = strings.Join([]string{
		`{"Action":"run","Package":"p","Test":"TestC"}`,
		`{"Action":"output","Package":"p","Test":"TestC","Output":"    c_test.go:9: boom\n"}`,
		`{"Action":"fail","Package":"p","Test":"TestC"}`,
		`{"Action":"run","Package":"q","Test":"TestD"}`,
	}, "\n")
	out.Reset()
	if failed, _ := report(strings.NewReader(in), &out); !failed {
		t.Errorf("a failed test and a package without a result did not fail the run:\n%s", out.String())
	}
	for _, want := range []string{"c_test.go:9: boom", "NO RESULT: q TestD", "FAIL\tq\t(no result)"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}
