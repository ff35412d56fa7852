package bench

import (
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
)

// The machine moves by tens of percent between runs: every figure is the
// median of several runs, printed with its min and max.

// spread summarizes the runs of one figure.
type spread struct{ Median, Min, Max float64 }

func spreadOf(v []float64) spread {
	if len(v) == 0 {
		return spread{}
	}
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	m := s[len(s)/2]
	if len(s)%2 == 0 {
		m = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return spread{Median: m, Min: s[0], Max: s[len(s)-1]}
}

// format prints "median (min-max)" with f, or the median alone for one run.
func (s spread) format(f func(float64) string) string {
	if s.Min == s.Max {
		return f(s.Median)
	}
	return fmt.Sprintf("%s (%s-%s)", f(s.Median), f(s.Min), f(s.Max))
}

// benchNs is the container counts, V6DP_BENCH_N=64,1000 overriding def.
func benchNs(def []int) []int {
	v := os.Getenv("V6DP_BENCH_N")
	if v == "" {
		return def
	}
	var out []int
	for _, f := range strings.Split(v, ",") {
		if n, err := strconv.Atoi(strings.TrimSpace(f)); err == nil && n > 0 {
			out = append(out, n)
		}
	}
	return out
}

// benchRuns is the runs per row, V6DP_BENCH_RUNS overriding def.
func benchRuns(def int) int {
	if n, err := strconv.Atoi(os.Getenv("V6DP_BENCH_RUNS")); err == nil && n > 0 {
		return n
	}
	return def
}

// pick keeps the rows named in V6DP_BENCH_ROWS (comma-separated), all if
// it is unset.
func pick(name string) bool {
	v := os.Getenv("V6DP_BENCH_ROWS")
	if v == "" {
		return true
	}
	for _, f := range strings.Split(v, ",") {
		if strings.TrimSpace(f) == name {
			return true
		}
	}
	return false
}

// addFailure records a correctness failure once.
func addFailure(list []string, why string) []string {
	for _, f := range list {
		if f == why {
			return list
		}
	}
	return append(list, why)
}
