package guard

// Order is the one place the order of guards is decided, outermost first. Each guard
// sees the effects of those after it and must not depend on those before it. Audit is
// outermost so that every refusal is recorded; trace comes next (it never refuses) so that
// its span covers every decision; detectors on results run after the server
// answered, inside approval, so that a held call is never inspected twice.
var Order = []string{
	"audit",
	"trace",
	"limits",
	"authz",
	"registry",
	"detect-args",
	"approval",
	"detect-results",
	"detect-listings",
}
