//go:build !linux

package pipeline

// lowerWorkerPriority is a no-op where threads have no nice value of their own.
func lowerWorkerPriority() error { return nil }
