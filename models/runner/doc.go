// Package runner turns camera frames into face and hand detections with the
// MediaPipe models converted to ONNX (MODELS.md in the design notes has
// the post-processing facts used here), run by OpenCV's DNN module.
//
// The networks are driven through a small C++ shim (dnn_shim.cpp) rather
// than gocv.Net: gocv v0.31.0 lets OpenCV's C++ exceptions escape, which
// aborts the process on a model the importer rejects or an input it cannot
// take, and its Net.ForwardLayers leaks a C array on every call. The shim
// turns exceptions into errors and copies outputs out itself; images and
// blobs are still gocv Mats.
//
// Each runner (FaceDetector, PalmDetector, HandLandmarker) loads its model
// once, when it is made, and owns one network and a few scratch Mats: it is
// not safe for concurrent use. Give every worker goroutine its own set and
// Close them when the worker stops.
//
// Coordinates are image pixels of the Mat passed in, continuous: pixel (i, j)
// covers [i, i+1) × [j, j+1), so a box can be compared with the image size
// directly.
//
// Images must be 8-bit, 3-channel BGR (gocv.MatTypeCV8UC3), what gocv.IMRead
// and the video decoder produce; other types are refused with an error rather
// than converted, so a caller never pays for a hidden copy.
package runner
