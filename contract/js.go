package contract

import (
	"encoding/json"
	"fmt"
	"strings"
)

// JavaScriptFile is where the pages' copy of the contract lives, from the
// repository's root.
const JavaScriptFile = "web/static/assets/contract.js"

// JavaScript is the pages' copy of the contract, an ES module: the same
// names, so a page can never offer a violation type the server does not
// know or miss one it does.
func JavaScript() string {
	var b strings.Builder
	b.WriteString("// @ts-check\n// Generated from Go package invigil/contract (contract.JavaScript); do not\n")
	b.WriteString("// edit. `go test ./web -run TestContractModule -update` writes it again.\n\n")
	constant := func(name, comment string, v any) {
		j, err := json.Marshal(v)
		if err != nil {
			panic(fmt.Sprintf("contract: %s: %v", name, err)) // only literals above
		}
		if _, scalar := v.(string); scalar {
			fmt.Fprintf(&b, "// %s\nexport const %s = %s;\n\n", comment, name, j)
			return
		}
		fmt.Fprintf(&b, "// %s\nexport const %s = Object.freeze(%s);\n\n", comment, name, j)
	}
	constant("SIGNALING_PATH", "Where the SFU's signaling WebSocket is mounted.", SignallingPath)
	constant("STAFF_ROLES", "The roles a staff account can have.", StaffRoles)
	constant("VIOLATION_TYPES", "Every violation type, in the server's order.", ViolationNames())
	constant("POLICY_TYPES", "The types a room's policy turns on and off (the camera's and the microphone's).", ViolationNames(SourceCamera, SourceMicrophone))
	constant("BROWSER_TYPES", "The types the candidate's page reports itself.", ViolationNames(SourceBrowser))
	sources := map[string]Source{}
	for _, t := range ViolationTypes {
		sources[t.Name] = t.Source
	}
	constant("VIOLATION_SOURCES", "What notices each type: camera, microphone or browser.", sources)
	constant("EVENT_TYPES", "Every live event type an event stream carries.", EventTypes)
	return strings.TrimSuffix(b.String(), "\n")
}
