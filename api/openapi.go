package api

import (
	"encoding/json"
	"net/http"
	"reflect"
	"regexp"
	"strings"
	"time"

	"invigil/contract"
)

var (
	timeType = reflect.TypeOf(time.Time{})
	rawType  = reflect.TypeOf(json.RawMessage{})
)

// schemaOf describes t as JSON Schema, the way encoding/json encodes it.
func schemaOf(t reflect.Type) map[string]any {
	switch {
	case t == nil:
		return map[string]any{}
	case t == timeType:
		return map[string]any{"type": "string", "format": "date-time"}
	case t == rawType:
		return map[string]any{"description": "any JSON value"}
	}
	switch t.Kind() {
	case reflect.Pointer:
		s := schemaOf(t.Elem())
		s["nullable"] = true
		return s
	case reflect.Bool:
		return map[string]any{"type": "boolean"}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return map[string]any{"type": "integer"}
	case reflect.Float32, reflect.Float64:
		return map[string]any{"type": "number"}
	case reflect.String:
		return map[string]any{"type": "string"}
	case reflect.Slice, reflect.Array:
		return map[string]any{"type": "array", "items": schemaOf(t.Elem())}
	case reflect.Map:
		return map[string]any{"type": "object", "additionalProperties": schemaOf(t.Elem())}
	case reflect.Interface:
		return map[string]any{}
	case reflect.Struct:
		props := map[string]any{}
		addStructFields(t, props)
		return map[string]any{"type": "object", "properties": props}
	}
	return map[string]any{}
}

func addStructFields(t reflect.Type, props map[string]any) {
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, _, _ := strings.Cut(tag, ",")
		if f.Anonymous && name == "" {
			ft := f.Type
			if ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				addStructFields(ft, props)
				continue
			}
		}
		if name == "" {
			name = f.Name
		}
		props[name] = schemaOf(f.Type)
		if f.Tag.Get("openapi") == "violation_type" {
			props[name].(map[string]any)["enum"] = violationTypes()
		}
	}
}

// violationTypes lists every type a violation can have: the camera's and
// the microphone's rules, then the browser's own reports.
func violationTypes() []string { return contract.ViolationNames() }

var pathParam = regexp.MustCompile(`\{([a-z_]+)\}`)

// openapi builds the OpenAPI 3 document from the route table.
func (c *handlers) openapi() map[string]any {
	paths := map[string]map[string]any{}
	errSchema := map[string]any{"type": "object", "properties": map[string]any{"error": map[string]any{
		"type": "object", "properties": map[string]any{"code": map[string]any{"type": "string"}, "message": map[string]any{"type": "string"}},
	}}}
	for _, rt := range c.routes() {
		op := map[string]any{"summary": rt.summary, "x-roles": rt.allow}
		var params []any
		for _, m := range pathParam.FindAllStringSubmatch(rt.path, -1) {
			params = append(params, map[string]any{"name": m[1], "in": "path", "required": true, "schema": map[string]any{"type": "integer"}})
		}
		for _, q := range rt.query {
			params = append(params, map[string]any{"name": q, "in": "query", "schema": map[string]any{"type": "string"}})
		}
		if len(params) > 0 {
			op["parameters"] = params
		}
		if rt.in != nil {
			op["requestBody"] = map[string]any{"required": true, "content": map[string]any{
				"application/json": map[string]any{"schema": schemaOf(reflect.TypeOf(rt.in))}}}
		} else if strings.HasSuffix(rt.path, "/import") {
			op["requestBody"] = map[string]any{"required": true, "content": map[string]any{
				"text/csv": map[string]any{"schema": map[string]any{"type": "string"}}}}
		}
		ok := map[string]any{"description": "OK"}
		switch {
		case rt.produces != "":
			ok["content"] = map[string]any{rt.produces: map[string]any{"schema": map[string]any{"type": "string"}}}
		case rt.out != nil:
			ok["content"] = map[string]any{"application/json": map[string]any{"schema": schemaOf(reflect.TypeOf(rt.out))}}
		}
		status := "200"
		if rt.out == nil && rt.produces == "" {
			status = "204"
			ok = map[string]any{"description": "Done"}
		}
		op["responses"] = map[string]any{
			status:    ok,
			"default": map[string]any{"description": "Error", "content": map[string]any{"application/json": map[string]any{"schema": errSchema}}},
		}
		if !contains(rt.allow, rolePublic) {
			op["security"] = []any{map[string]any{"bearer": []any{}}, map[string]any{"cookie": []any{}}}
		}
		if paths[rt.path] == nil {
			paths[rt.path] = map[string]any{}
		}
		paths[rt.path][strings.ToLower(rt.method)] = op
	}
	return map[string]any{
		"openapi": "3.0.3",
		"info":    map[string]any{"title": "Invigil control plane", "version": "1", "description": "See docs/API.md. Errors: {\"error\":{\"code\",\"message\"}}. Cookie requests that change state need the X-CSRF-Token header."},
		"paths":   paths,
		"components": map[string]any{"securitySchemes": map[string]any{
			"bearer": map[string]any{"type": "http", "scheme": "bearer"},
			"cookie": map[string]any{"type": "apiKey", "in": "cookie", "name": staffCookie},
		}},
	}
}

func contains(list []string, v string) bool {
	for _, s := range list {
		if s == v {
			return true
		}
	}
	return false
}

func (c *handlers) openapiHandler(w http.ResponseWriter, _ *http.Request, _ *principal) error {
	writeJSON(w, http.StatusOK, c.openapi())
	return nil
}
