package limits

import (
	"testing"
	"time"
)

// TestLoopMemoryBound: distinct calls beyond the bound make the detector forget calls
// that are not cooling down, never one that is.
func TestLoopMemoryBound(t *testing.T) {
	l := newLoops(&loopConfig{calls: 2, window: time.Hour, cooldown: time.Hour})
	if l.max != maxLoopEntries {
		t.Fatalf("max = %d, want %d", l.max, maxLoopEntries)
	}
	now := int64(1)
	// Key 0 loops: the second identical call starts its cool-down.
	l.observe(now, 0)
	if out, _ := l.observe(now, 0); out != loopDetected {
		t.Fatalf("second identical call: %v, want loopDetected", out)
	}
	for k := uint64(1); k <= uint64(l.max)+100; k++ {
		l.observe(now, k)
		if len(l.m) > l.max {
			t.Fatalf("%d entries remembered, bound %d", len(l.m), l.max)
		}
	}
	if out, _ := l.observe(now, 0); out != loopCooling {
		t.Errorf("the cooling call was forgotten: %v", out)
	}
	if big := newLoops(&loopConfig{calls: 1000, window: time.Minute, cooldown: time.Minute}); big.max*(1000-1) > maxLoopSlots {
		t.Errorf("calls 1000: %d entries of 999 times exceed %d slots", big.max, maxLoopSlots)
	}
}
