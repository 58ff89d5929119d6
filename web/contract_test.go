package web

import (
	"flag"
	"os"
	"path/filepath"
	"testing"

	"invigil/contract"
)

var update = flag.Bool("update", false, "write web/static/assets/contract.js from package contract")

// The pages' copy of the contract is the Go package's, as generated; run
// `go test ./web -run TestContractModule -update` after changing package
// contract.
func TestContractModule(t *testing.T) {
	path := filepath.Join("..", contract.JavaScriptFile)
	want := contract.JavaScript()
	if *update {
		if err := os.WriteFile(path, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote %s; run the test again without -update", path)
		return
	}
	got, err := static.ReadFile("static/assets/contract.js")
	if err != nil {
		t.Fatalf("the embedded pages lack contract.js: %v (go test ./web -run TestContractModule -update writes it)", err)
	}
	if string(got) != want {
		t.Errorf("%s differs from contract.JavaScript(); run go test ./web -run TestContractModule -update", contract.JavaScriptFile)
	}
	// The module is served like every other asset.
	res := get(t, Handler(), "GET", "/assets/contract.js")
	if res.StatusCode != 200 || res.Header.Get("Content-Type") != "text/javascript; charset=utf-8" {
		t.Errorf("GET /assets/contract.js: %d %q", res.StatusCode, res.Header.Get("Content-Type"))
	}
}
