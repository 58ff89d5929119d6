package runner

/*
#cgo pkg-config: opencv4
#cgo CXXFLAGS: --std=c++11
#include <stdlib.h>
#include "dnn_shim.h"
*/
import "C"

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"
	"unsafe"

	"gocv.io/x/gocv"
)

// outputSpec says how to find one model output: by one of its expected names
// (the converter names ONNX outputs after the TFLite tensors), or else by its
// shape when no other output has that shape.
type outputSpec struct {
	names []string
	shape []int
}

// net is one imported ONNX model. It is not safe for concurrent use.
type net struct {
	p       *C.InvigilNet
	path    string
	inputW  int
	inputH  int
	specs   []outputSpec
	index   []int       // index[i]: which net output is specs[i]
	outputs [][]float32 // outputs[i]: data of specs[i] after forward, reused
	spent   Inference   // time inside OpenCV's forward, for cost reports
}

// Inference counts a network's runs and the time spent inside OpenCV's
// forward pass alone (no pre- or post-processing), so callers can report
// their overhead over bare inference.
type Inference struct {
	Runs int
	Time time.Duration
}

// Add sums two counts.
func (a Inference) Add(b Inference) Inference { return Inference{a.Runs + b.Runs, a.Time + b.Time} }

// loadNet imports the ONNX model at path, checks that it takes a
// [1,3,inputH,inputW] blob and produces the outputs specs describes, and runs
// it once so the first real frame is not slowed by OpenCV's lazy set-up.
func loadNet(path string, inputW, inputH int, specs []outputSpec) (*net, error) {
	data, err := readModelFile(path)
	if err != nil {
		return nil, err
	}
	var cerr *C.char
	p := C.invigil_net_read_onnx((*C.char)(unsafe.Pointer(&data[0])), C.size_t(len(data)), &cerr)
	if p == nil {
		return nil, fmt.Errorf("load model %s: OpenCV cannot import it (%s); run `invigil models fetch` to provision it again", path, takeCError(cerr))
	}
	n := &net{p: p, path: path, inputW: inputW, inputH: inputH, specs: specs}
	if err := n.bindOutputs(); err != nil {
		n.close()
		return nil, err
	}
	return n, nil
}

// readModelFile reads a model and checks it looks like an ONNX file before
// OpenCV sees it, so the usual mistakes get a message that names them.
func readModelFile(path string) ([]byte, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("load model: %w; run `invigil models fetch`", err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("load model %s: not a regular file", path)
	}
	if st.Size() == 0 {
		return nil, fmt.Errorf("load model %s: the file is empty; run `invigil models fetch` to provision it again", path)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load model: %w", err)
	}
	if len(data) >= 8 && bytes.Equal(data[4:8], []byte("TFL3")) {
		return nil, fmt.Errorf("load model %s: this is a TFLite file; the runners need the converted .onnx", path)
	}
	if err := checkONNXWire(data); err != nil {
		return nil, fmt.Errorf("load model %s: not an ONNX model (%w); run `invigil models fetch` to provision it again", path, err)
	}
	return data, nil
}

// checkONNXWire walks the top level of an ONNX ModelProto in protobuf wire
// format and requires a graph (field 7). It catches truncated and foreign
// files cheaply; OpenCV still does the real parsing.
func checkONNXWire(b []byte) error {
	hasGraph := false
	for len(b) > 0 {
		key, n := uvarint(b)
		if n <= 0 {
			return errors.New("bad field key")
		}
		b = b[n:]
		field, wire := key>>3, key&7
		if field == 0 {
			return errors.New("field number 0")
		}
		switch wire {
		case 0:
			_, n = uvarint(b)
			if n <= 0 {
				return fmt.Errorf("bad varint in field %d", field)
			}
			b = b[n:]
		case 1:
			if len(b) < 8 {
				return fmt.Errorf("truncated field %d", field)
			}
			b = b[8:]
		case 5:
			if len(b) < 4 {
				return fmt.Errorf("truncated field %d", field)
			}
			b = b[4:]
		case 2:
			l, n := uvarint(b)
			if n <= 0 || l > uint64(len(b)-n) {
				return fmt.Errorf("truncated field %d", field)
			}
			if field == 7 && l > 0 {
				hasGraph = true
			}
			b = b[n+int(l):]
		default:
			return fmt.Errorf("wire type %d in field %d", wire, field)
		}
	}
	if !hasGraph {
		return errors.New("no graph")
	}
	return nil
}

func uvarint(b []byte) (uint64, int) {
	var x uint64
	for i := 0; i < len(b) && i < 10; i++ {
		x |= uint64(b[i]&0x7f) << (7 * i)
		if b[i] < 0x80 {
			return x, i + 1
		}
	}
	return 0, 0
}

func takeCError(cerr *C.char) string {
	if cerr == nil {
		return "no message"
	}
	defer C.free(unsafe.Pointer(cerr))
	return strings.TrimSpace(C.GoString(cerr))
}

func (n *net) outputNames() []string {
	count := int(C.invigil_net_output_count(n.p))
	names := make([]string, count)
	for i := range names {
		names[i] = C.GoString(C.invigil_net_output_name(n.p, C.int(i)))
	}
	return names
}

// bindOutputs runs the net on a zero blob and matches its outputs to specs.
func (n *net) bindOutputs() error {
	blob := gocv.NewMatWithSizesWithScalar([]int{1, 3, n.inputH, n.inputW}, gocv.MatTypeCV32F, gocv.NewScalar(0, 0, 0, 0))
	defer blob.Close()
	if err := n.run(blob); err != nil {
		return fmt.Errorf("load model %s: trial run on a %dx%d input failed; is it the right model? %w", n.path, n.inputW, n.inputH, err)
	}
	names := n.outputNames()
	shapes := make([][]int, len(names))
	for i := range names {
		shape, _, err := n.output(i)
		if err != nil {
			return fmt.Errorf("load model %s: %w", n.path, err)
		}
		shapes[i] = shape
	}
	describe := func() string {
		parts := make([]string, len(names))
		for i := range names {
			parts[i] = fmt.Sprintf("%s %v", names[i], shapes[i])
		}
		return strings.Join(parts, ", ")
	}
	n.index = make([]int, len(n.specs))
	used := make([]bool, len(names))
	for si, spec := range n.specs {
		found := -1
		for i, name := range names {
			if !used[i] && slices.Contains(spec.names, name) && slices.Equal(shapes[i], spec.shape) {
				found = i
				break
			}
		}
		if found < 0 {
			sameShape := 0
			for _, other := range n.specs {
				if slices.Equal(other.shape, spec.shape) {
					sameShape++
				}
			}
			if sameShape == 1 {
				for i := range names {
					if !used[i] && slices.Equal(shapes[i], spec.shape) {
						found = i
						break
					}
				}
			}
		}
		if found < 0 {
			return fmt.Errorf("load model %s: no output %v of shape %v among its outputs (%s); is it the right model?", n.path, spec.names, spec.shape, describe())
		}
		used[found] = true
		n.index[si] = found
	}
	n.outputs = make([][]float32, len(n.specs))
	return nil
}

func (n *net) run(blob gocv.Mat) error {
	var cerr *C.char
	start := time.Now()
	rc := C.invigil_net_forward(n.p, unsafe.Pointer(blob.Ptr()), &cerr)
	n.spent.Runs++
	n.spent.Time += time.Since(start)
	if rc != 0 {
		return fmt.Errorf("inference: %s", takeCError(cerr))
	}
	return nil
}

// output returns the shape and data (owned by OpenCV, valid until the next
// run) of net output i.
func (n *net) output(i int) ([]int, []float32, error) {
	var dims [8]C.int
	var data *C.float
	var total C.size_t
	nd := int(C.invigil_net_output(n.p, C.int(i), &dims[0], C.int(len(dims)), &data, &total))
	if nd < 0 || nd > len(dims) {
		return nil, nil, fmt.Errorf("output %d is not a float32 tensor", i)
	}
	shape := make([]int, nd)
	for d := range shape {
		shape[d] = int(dims[d])
	}
	if total == 0 {
		return shape, nil, nil
	}
	return shape, unsafe.Slice((*float32)(unsafe.Pointer(data)), int(total)), nil
}

// forward runs the net on blob and copies each bound output into n.outputs.
func (n *net) forward(blob gocv.Mat) error {
	if err := n.run(blob); err != nil {
		return err
	}
	for si, spec := range n.specs {
		shape, data, err := n.output(n.index[si])
		if err != nil {
			return err
		}
		if !slices.Equal(shape, spec.shape) {
			return fmt.Errorf("inference: output %v has shape %v, want %v", spec.names, shape, spec.shape)
		}
		n.outputs[si] = append(n.outputs[si][:0], data...)
	}
	return nil
}

func (n *net) close() {
	if n.p != nil {
		C.invigil_net_close(n.p)
		n.p = nil
	}
}

// SetNumThreads sets how many threads OpenCV uses inside one inference.
// The setting is process-wide. A server that runs one worker per core
// wants 1 (parallelism comes from the workers); benchmarks of one core's
// throughput want 1 too. n ≤ 0 restores OpenCV's default.
func SetNumThreads(n int) {
	if n <= 0 {
		n = -1 // OpenCV: "use the default number of threads"
	}
	C.invigil_set_num_threads(C.int(n))
}

// NumThreads reports OpenCV's current thread pool size.
func NumThreads() int { return int(C.invigil_get_num_threads()) }
