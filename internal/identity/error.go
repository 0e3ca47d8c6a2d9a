package identity

import (
	"net/http"
	"strings"
)

// Error is a refused authentication, carrying what the HTTP answer needs: the status and
// the WWW-Authenticate challenge (RFC 6750 section 3, RFC 9728 section 5.1). Its message
// says why, for the client and the log; it never contains a credential.
type Error struct {
	Status    int    // 401 (no or bad credentials), 403 (insufficient scope), 503 (issuer unreachable)
	Challenge string // the WWW-Authenticate value; "" for none
	Reason    string
}

func (e *Error) Error() string { return e.Reason }

// RFC 6750 error codes.
const (
	errInvalidRequest    = "invalid_request"
	errInvalidToken      = "invalid_token"
	errInsufficientScope = "insufficient_scope"
)

// challenge builds a Bearer challenge from parameter pairs, skipping empty values.
func challenge(params ...string) string {
	var b strings.Builder
	b.WriteString("Bearer")
	sep := " "
	for i := 0; i+1 < len(params); i += 2 {
		if params[i+1] == "" {
			continue
		}
		b.WriteString(sep)
		b.WriteString(params[i])
		b.WriteString(`="`)
		b.WriteString(quotable(params[i+1]))
		b.WriteString(`"`)
		sep = ", "
	}
	return b.String()
}

// quotable makes s safe inside a quoted-string of a header: printable ASCII without '"'
// and '\' (RFC 6750 restricts error_description to that set anyway).
func quotable(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r == '"' || r == '\\':
			return '\''
		case r < 0x20 || r > 0x7e:
			return '?'
		}
		return r
	}, s)
}

func unauthorized(ch, reason string) *Error {
	return &Error{Status: http.StatusUnauthorized, Challenge: ch, Reason: reason}
}
