// Package web holds the dashboard's templates and static assets, embedded in the binary:
// the dashboard works offline and loads nothing from elsewhere (its Content-Security-Policy
// allows its own origin only).
package web

import "embed"

// Templates are the dashboard's pages (html/template), one file per page plus layout.html.
//
//go:embed templates/*.html
var Templates embed.FS

// Static are the stylesheet and the small script of progressive enhancement.
//
//go:embed static
var Static embed.FS
