//go:build !linux

package pipeline

// lowerWorkerPriority is a no-op where threads have no nice value of their own.
func lowerWorkerPriority() (tid int, err error) { return 0, nil }
