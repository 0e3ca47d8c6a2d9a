// Package memtrim gives back resident memory a long-running process no longer needs.
//
// Start-up runs the package initializers of everything linked in and builds the
// configured chain: code, type descriptors and function tables spread over the whole
// executable, most of which never run again. The kernel maps each page it faults in
// together with its neighbours (fault-around), so a short initializer keeps tens of
// kilobytes of the executable resident. ReleaseStartupPages unmaps the executable's
// read-only pages once start-up is over; the pages the gateway goes on using are mapped
// again from the page cache at their next use.
package memtrim

// Released says what ReleaseStartupPages gave back.
type Released struct {
	Mappings int   // read-only mappings of the executable
	Bytes    int64 // their resident size before the release
	Skipped  int   // mappings left alone: they hold private copies of pages (breakpoints)
}
