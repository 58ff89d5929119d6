// Package mediatest holds the end-to-end tests and the load benchmark of
// the media plane (issue 4): real pion peers over loopback — synthetic
// candidates from package simulate and a staff subscriber — through the
// SFU into the recorder and the live analysis, with real libvpx and the
// real models. It has no code of its own besides this comment: everything
// is in its _test.go files.
//
//	go test ./mediatest                          the end-to-end tests
//	go test ./mediatest -run '^$' -bench .       the capacity benchmark
package mediatest
