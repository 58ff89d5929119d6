package runner

// ssdAnchors returns the anchor centers, in [0,1] of the model input, that
// MediaPipe's SsdAnchorsCalculator makes with fixed_anchor_size (every anchor
// 1×1, so only centers matter): consecutive layers with the same stride share
// one feature map, each contributing perLayer anchors per cell; anchors are
// ordered by feature map, then row, column, anchor.
func ssdAnchors(inputSize int, strides []int, perLayer int) []Point {
	var anchors []Point
	for first := 0; first < len(strides); {
		last := first
		for last+1 < len(strides) && strides[last+1] == strides[first] {
			last++
		}
		perCell := (last - first + 1) * perLayer
		side := (inputSize + strides[first] - 1) / strides[first]
		for y := 0; y < side; y++ {
			for x := 0; x < side; x++ {
				c := Point{(float64(x) + 0.5) / float64(side), (float64(y) + 0.5) / float64(side)}
				for a := 0; a < perCell; a++ {
					anchors = append(anchors, c)
				}
			}
		}
		first = last + 1
	}
	return anchors
}
