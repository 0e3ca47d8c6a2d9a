package detect

import "github.com/portcullis-mcp/portcullis/internal/audit"

// AuditFindings returns findings as the audit trail keeps them; in says where their
// pointers point ("arguments", "result" or "listing").
func AuditFindings(fs []Finding, in string) []audit.Finding {
	out := make([]audit.Finding, 0, len(fs))
	for _, f := range fs {
		out = append(out, audit.Finding{Detector: f.Detector, Rule: f.Rule, Severity: f.Severity.String(), Pointer: f.Pointer,
			In: in, Evidence: f.Evidence, Message: f.Message})
	}
	return out
}
