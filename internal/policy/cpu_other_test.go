//go:build !unix

package policy

import "testing"

func reportCPU(b *testing.B, run func()) {
	for b.Loop() {
		run()
	}
}
