//go:build !matprofile

package simulate

import "testing"

func TestNoMatLeaks(t *testing.T) {
	t.Skip("counting Mats needs gocv's profile: go test -tags matprofile ./simulate/")
}
