package gateway

import "testing"

// lookupName keeps the last name; every lookup still answers for its own params.
func TestLookupName(t *testing.T) {
	var s Session
	for i, tc := range []struct {
		params string
		want   string
		ok     bool
	}{
		{`{"name":"echo"}`, "echo", true},
		{`{"name":"echo","arguments":{}}`, "echo", true},
		{`{"name":"add"}`, "add", true},
		{`{"name":"a\u0062c"}`, "abc", true},
		{`{"name":"a\u0062c"}`, "abc", true},
		{`{"name":7}`, "", false},
		{`{"arguments":{}}`, "", false},
		{`{"name":"echo"}`, "echo", true},
	} {
		got, ok := s.lookupName([]byte(tc.params))
		if got != tc.want || ok != tc.ok {
			t.Errorf("%d: lookupName(%s) = %q, %v; want %q, %v", i, tc.params, got, ok, tc.want, tc.ok)
		}
	}
}
