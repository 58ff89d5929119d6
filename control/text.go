package control

import (
	"fmt"
	"unicode/utf8"
)

// Names and notes are shown to staff in tables, exports and event feeds.
// Characters that change how the text around them is shown let a name lie
// about itself: a right-to-left override turns "exe.txt" into "txt.exe",
// zero-width characters make two names that look the same differ (or hide
// a word from a search), control characters break terminals and CSV
// lines, and NUL truncates the text in C tools. None of them belong in a
// name, so they are refused with the field and the character named,
// rather than silently dropped: the organizer sees what their spreadsheet
// holds.

// refusedRunes are the format characters refused besides the control
// characters, with the names the error shows.
var refusedRunes = map[rune]string{
	// Bidi embeddings, overrides and isolates, and the directional marks.
	0x202A: "LEFT-TO-RIGHT EMBEDDING", 0x202B: "RIGHT-TO-LEFT EMBEDDING", 0x202C: "POP DIRECTIONAL FORMATTING",
	0x202D: "LEFT-TO-RIGHT OVERRIDE", 0x202E: "RIGHT-TO-LEFT OVERRIDE",
	0x2066: "LEFT-TO-RIGHT ISOLATE", 0x2067: "RIGHT-TO-LEFT ISOLATE", 0x2068: "FIRST STRONG ISOLATE",
	0x2069: "POP DIRECTIONAL ISOLATE",
	0x200E: "LEFT-TO-RIGHT MARK", 0x200F: "RIGHT-TO-LEFT MARK", 0x061C: "ARABIC LETTER MARK",
	// Zero-width characters.
	0x200B: "ZERO WIDTH SPACE", 0x200C: "ZERO WIDTH NON-JOINER", 0x200D: "ZERO WIDTH JOINER",
	0x2060: "WORD JOINER", 0xFEFF: "ZERO WIDTH NO-BREAK SPACE (BOM)",
	// Line breaks that are not newlines: they end a line in some viewers
	// and not in others.
	0x2028: "LINE SEPARATOR", 0x2029: "PARAGRAPH SEPARATOR",
	// JSON decoding turns invalid UTF-8 into U+FFFD, so this is how invalid
	// bytes in a JSON body show.
	0xFFFD: "REPLACEMENT CHARACTER: the text was not valid UTF-8",
}

// RefusedRune finds the first character of s that a name (or, with
// multiline, a free-text note, which may hold newlines and tabs) may not
// hold: the character, its 1-based position and its name.
func RefusedRune(s string, multiline bool) (r rune, pos int, name string, found bool) {
	for _, r := range s {
		pos++
		if multiline && (r == '\n' || r == '\t' || r == '\r') {
			continue
		}
		if name, ok := refusedRunes[r]; ok {
			return r, pos, name, true
		}
		if r < 0x20 || (r >= 0x7F && r <= 0x9F) {
			return r, pos, controlName(r), true
		}
	}
	return 0, 0, "", false
}

// TextProblem describes what RefusedRune finds, or invalid UTF-8; "" when
// s is fine.
func TextProblem(s string, multiline bool) string {
	if !utf8.ValidString(s) {
		return "the text is not valid UTF-8"
	}
	if r, pos, name, found := RefusedRune(s, multiline); found {
		return fmt.Sprintf("character %d is U+%04X (%s), which is not allowed: remove control, bidi-override and zero-width characters", pos, r, name)
	}
	return ""
}

func controlName(r rune) string {
	switch r {
	case 0:
		return "NUL"
	case '\t':
		return "TAB"
	case '\n':
		return "LINE FEED"
	case '\r':
		return "CARRIAGE RETURN"
	case 0x1B:
		return "ESCAPE"
	case 0x7F:
		return "DELETE"
	}
	return "a control character"
}

// CheckText refuses a field whose text TextProblem refuses: Invalid
// bad_text, naming the field and the character.
func CheckText(field, s string, multiline bool) error {
	if p := TextProblem(s, multiline); p != "" {
		return Errorf(Invalid, "bad_text", "%s: %s", field, p)
	}
	return nil
}
