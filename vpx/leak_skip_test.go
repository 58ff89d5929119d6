//go:build !matprofile

package vpx

import "testing"

func TestNoMatLeaks(t *testing.T) {
	t.Skip("counting Mats needs gocv's profile: go test -tags matprofile ./vpx/")
}
