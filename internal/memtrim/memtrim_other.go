//go:build !linux

package memtrim

// ReleaseStartupPages does nothing outside Linux.
func ReleaseStartupPages() (Released, error) { return Released{}, nil }
