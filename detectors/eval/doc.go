// Package eval measures the detectors on a labeled evaluation set: short
// scenario videos built from real photos and webcam recordings that the
// registries serve, each with its ground-truth violation intervals. It
// scores every violation type by event-level precision and recall and
// onset delay; `make eval` writes the result to docs/EVAL.md and the
// package's tests hold every type to precision and recall ≥ 0.9.
package eval
