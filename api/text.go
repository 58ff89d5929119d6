package api

import "invigil/control"

// The text rules (no control, bidi-override or zero-width characters in
// names and notes) are the control plane's, which stores most of them;
// the API's own fields (exam and user names, CSV cells) follow the same.

func textProblem(s string, multiline bool) string { return control.TextProblem(s, multiline) }

func checkText(field, s string, multiline bool) error { return control.CheckText(field, s, multiline) }
