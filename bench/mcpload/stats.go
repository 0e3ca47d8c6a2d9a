package main

import (
	"math"
	"slices"
)

// percentile returns the nearest-rank p-th percentile (0 < p <= 100) of sorted,
// which must be in ascending order: the smallest sample such that at least p% of
// the samples are less than or equal to it. It returns 0 for no samples.
func percentile(sorted []int64, p float64) int64 {
	n := len(sorted)
	if n == 0 {
		return 0
	}
	rank := int(math.Ceil(p / 100 * float64(n)))
	rank = min(max(rank, 1), n)
	return sorted[rank-1]
}

type latencySummary struct {
	N                       int
	P50, P90, P99, Max, Avg int64 // nanoseconds
}

// summarize merges the per-session samples (nanoseconds) and computes the
// percentiles over all of them.
func summarize(perSession [][]int64) latencySummary {
	total := 0
	for _, s := range perSession {
		total += len(s)
	}
	all := make([]int64, 0, total)
	for _, s := range perSession {
		all = append(all, s...)
	}
	if len(all) == 0 {
		return latencySummary{}
	}
	slices.Sort(all)
	var sum float64
	for _, v := range all {
		sum += float64(v)
	}
	return latencySummary{
		N:   len(all),
		P50: percentile(all, 50),
		P90: percentile(all, 90),
		P99: percentile(all, 99),
		Max: all[len(all)-1],
		Avg: int64(sum / float64(len(all))),
	}
}

// micros converts nanoseconds to microseconds rounded to 0.1 µs.
func micros(ns int64) float64 { return math.Round(float64(ns)/100) / 10 }
