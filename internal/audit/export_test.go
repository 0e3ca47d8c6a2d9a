package audit

// Crash stops the sink as a killed process would: nothing more is moved into the store,
// and the journal's files and lock are let go.
func (s *StoreSink) Crash() {
	s.j.crashed = true
	s.closeJournal()
}
