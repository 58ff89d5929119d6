package store

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// scanner is a *sql.Row or *sql.Rows.
type scanner interface{ Scan(dest ...any) error }

// timeLayout is RFC 3339 with a fixed nine-digit fraction. time.RFC3339Nano
// drops trailing zeros, which breaks comparing times as text ("…05Z" would
// sort after "…05.5Z"); every stored time uses this layout instead.
const timeLayout = "2006-01-02T15:04:05.000000000Z"

// dbTime is t as stored: UTC text, or NULL for the zero time ("not yet").
func dbTime(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UTC().Format(timeLayout)
}

// timeCol scans a stored time into *t, NULL as the zero time.
type timeCol struct{ t *time.Time }

func (c timeCol) Scan(src any) error {
	var text string
	switch v := src.(type) {
	case nil:
		*c.t = time.Time{}
		return nil
	case string:
		text = v
	case []byte:
		text = string(v)
	case time.Time:
		*c.t = v.UTC()
		return nil
	default:
		return fmt.Errorf("stored time: unexpected %T", src)
	}
	t, err := time.Parse(time.RFC3339Nano, text)
	if err != nil {
		return fmt.Errorf("stored time %q: %w", text, err)
	}
	*c.t = t.UTC()
	return nil
}

// nullID is an optional reference as stored: 0 ("nobody") is NULL.
func nullID(id int64) any {
	if id == 0 {
		return nil
	}
	return id
}

// idCol scans an optional reference, NULL as 0.
type idCol struct{ id *int64 }

func (c idCol) Scan(src any) error {
	switch v := src.(type) {
	case nil:
		*c.id = 0
	case int64:
		*c.id = v
	default:
		return fmt.Errorf("stored id: unexpected %T", src)
	}
	return nil
}

// jsonText is a JSON value as stored: text, never a BLOB, because SQLite's
// JSON functions read a BLOB as its binary JSONB form. Empty is NULL.
func jsonText(raw json.RawMessage) any {
	if len(bytes.TrimSpace(raw)) == 0 {
		return nil
	}
	return string(raw)
}

// jsonCol scans stored JSON text, NULL as nil.
type jsonCol struct{ raw *json.RawMessage }

func (c jsonCol) Scan(src any) error {
	switch v := src.(type) {
	case nil:
		*c.raw = nil
	case string:
		*c.raw = json.RawMessage(v)
	case []byte:
		*c.raw = append(json.RawMessage(nil), v...)
	default:
		return fmt.Errorf("stored JSON: unexpected %T", src)
	}
	return nil
}

// encodeJSON encodes a caller's value for a JSON column: "" (stored as
// NULL) for nil or null, and a json.RawMessage must already be valid.
func encodeJSON(v any) (string, error) {
	var b []byte
	if raw, ok := v.(json.RawMessage); ok {
		b = bytes.TrimSpace(raw)
		if len(b) > 0 && !json.Valid(b) {
			return "", errors.New("not valid JSON")
		}
	} else if v != nil {
		var err error
		if b, err = json.Marshal(v); err != nil {
			return "", err
		}
	}
	if string(b) == "null" {
		return "", nil
	}
	return string(b), nil
}

// nullText is s as stored, "" as NULL.
func nullText(s string) any {
	if s == "" {
		return nil
	}
	return s
}
