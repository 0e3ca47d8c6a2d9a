package main

import (
	"testing"
	"time"
)

func TestPercentile(t *testing.T) {
	hundred := make([]int64, 100)
	for i := range hundred {
		hundred[i] = int64(i + 1) // 1..100
	}
	tests := []struct {
		name   string
		sorted []int64
		p      float64
		want   int64
	}{
		{"empty", nil, 50, 0},
		{"single p50", []int64{7}, 50, 7},
		{"single p99", []int64{7}, 99, 7},
		{"two p50", []int64{1, 2}, 50, 1},
		{"two p51", []int64{1, 2}, 51, 2},
		{"four p50", []int64{10, 20, 30, 40}, 50, 20},
		{"four p75", []int64{10, 20, 30, 40}, 75, 30},
		{"four p100", []int64{10, 20, 30, 40}, 100, 40},
		{"hundred p50", hundred, 50, 50},
		{"hundred p90", hundred, 90, 90},
		{"hundred p99", hundred, 99, 99},
		{"hundred p99.9", hundred, 99.9, 100},
		{"tiny p clamps to first", hundred, 0.001, 1},
		{"p0 clamps to first", hundred, 0, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := percentile(tc.sorted, tc.p); got != tc.want {
				t.Fatalf("percentile(%v) = %d, want %d", tc.p, got, tc.want)
			}
		})
	}
}

func TestSummarize(t *testing.T) {
	us := int64(time.Microsecond)
	tests := []struct {
		name string
		in   [][]int64
		want latencySummary
	}{
		{"no samples", [][]int64{nil, {}}, latencySummary{}},
		{
			"merged across sessions, unsorted",
			[][]int64{{5 * us, 1 * us}, {}, {3 * us, 2 * us, 4 * us}},
			latencySummary{N: 5, P50: 3 * us, P90: 5 * us, P99: 5 * us, Max: 5 * us, Avg: 3 * us},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := summarize(tc.in); got != tc.want {
				t.Fatalf("summarize = %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestMicros(t *testing.T) {
	for ns, want := range map[int64]float64{0: 0, 1234: 1.2, 1250: 1.3, 987654: 987.7} {
		if got := micros(ns); got != want {
			t.Errorf("micros(%d) = %v, want %v", ns, got, want)
		}
	}
}
