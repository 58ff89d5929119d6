package config

import (
	"os"
	"strings"
	"testing"
)

// The README's configuration table is one table (a blank line inside it
// would end it, and GitHub shows the rest as text) and lists every setting
// with its flag and environment variable.
func TestReadmeTableListsEverySetting(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	text := string(readme)
	const header = "| flag | environment | config key | default |"
	start := strings.Index(text, header)
	if start < 0 {
		t.Fatalf("README has no configuration table (%q)", header)
	}
	table, _, _ := strings.Cut(text[start:], "\n\n")
	rows := map[string]string{}
	for _, line := range strings.Split(table, "\n")[2:] {
		cells := strings.Split(line, "|")
		if len(cells) < 5 {
			t.Fatalf("README configuration table: malformed row %q", line)
		}
		rows[strings.Trim(strings.TrimSpace(cells[1]), "`")] = strings.Trim(strings.TrimSpace(cells[2]), "`")
	}
	for _, s := range settings {
		env, ok := rows["--"+s.flag]
		if !ok {
			t.Errorf("README configuration table lacks --%s (%s)", s.flag, s.env)
			continue
		}
		if env != s.env {
			t.Errorf("README says --%s is %s, the code %s", s.flag, env, s.env)
		}
	}
	if len(rows) != len(settings) {
		t.Errorf("README table has %d rows, the code %d settings", len(rows), len(settings))
	}
}
