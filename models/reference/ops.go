package reference

import (
	"math"

	"invigil/models/tflite"
)

// The kernels below take flat row-major data with its shape and return a
// freshly allocated result; none writes into its inputs. Shapes were
// validated by New, so the kernels index without further checks.

// applyActivation applies a fused activation in place and returns x.
func applyActivation(x []float32, act tflite.Activation) []float32 {
	switch act {
	case tflite.ActRelu:
		for i, v := range x {
			x[i] = max(v, 0)
		}
	case tflite.ActRelu6:
		for i, v := range x {
			x[i] = min(max(v, 0), 6)
		}
	case tflite.ActReluN1To1:
		for i, v := range x {
			x[i] = min(max(v, -1), 1)
		}
	case tflite.ActTanh:
		for i, v := range x {
			x[i] = float32(math.Tanh(float64(v)))
		}
	}
	return x
}

func logistic(x []float32) []float32 {
	y := make([]float32, len(x))
	for i, v := range x {
		y[i] = float32(1 / (1 + math.Exp(-float64(v))))
	}
	return y
}

// add is elementwise a+b with NumPy broadcasting to outShape.
func add(a []float32, as []int, b []float32, bs []int, outShape []int) []float32 {
	if equalShapes(as, bs) {
		y := make([]float32, len(a))
		for i := range y {
			y[i] = a[i] + b[i]
		}
		return y
	}
	return broadcast(a, as, b, bs, outShape, func(x, y float32) float32 { return x + y })
}

// prelu is x for x >= 0 and alpha*x otherwise, alpha broadcast to x's
// shape (in these models alpha is [1,1,C]: one slope per channel).
func prelu(x []float32, xs []int, alpha []float32, alphaShape []int) []float32 {
	return broadcast(x, xs, alpha, alphaShape, xs, func(v, a float32) float32 {
		if v >= 0 {
			return v
		}
		return a * v
	})
}

// broadcast applies f elementwise over outShape, reading a and b with
// NumPy broadcasting (a dimension of 1, or a missing leading dimension,
// repeats).
func broadcast(a []float32, as []int, b []float32, bs []int, outShape []int, f func(x, y float32) float32) []float32 {
	rank := len(outShape)
	sa := broadcastStrides(as, rank, outShape)
	sb := broadcastStrides(bs, rank, outShape)
	y := make([]float32, numElements(outShape))
	if rank == 0 {
		y[0] = f(a[0], b[0])
		return y
	}
	last := rank - 1
	inner := outShape[last]
	idx := make([]int, rank) // odometer over all dimensions but the last
	for o := 0; o < len(y); o += inner {
		ia, ib := 0, 0
		for d := 0; d < last; d++ {
			ia += idx[d] * sa[d]
			ib += idx[d] * sb[d]
		}
		for j := 0; j < inner; j++ {
			y[o+j] = f(a[ia+j*sa[last]], b[ib+j*sb[last]])
		}
		for d := last - 1; d >= 0; d-- {
			idx[d]++
			if idx[d] < outShape[d] {
				break
			}
			idx[d] = 0
		}
	}
	return y
}

// broadcastStrides gives, for each of the rank output dimensions, the step
// in the flat input when that output index increases by one: the normal
// row-major stride, or 0 where the input is broadcast.
func broadcastStrides(shape []int, rank int, outShape []int) []int {
	st := make([]int, rank)
	stride := 1
	for k := 0; k < rank; k++ { // k counts from the right
		d := dimFromRight(shape, k)
		if d == outShape[rank-1-k] && d != 1 {
			st[rank-1-k] = stride
		}
		stride *= d
	}
	return st
}

// conv2D is TFLite's CONV_2D: x [N,H,W,C], filter [O,KH,KW,C], optional
// bias [O], output [N,OH,OW,O]. Taps that fall into the padding read zero.
func conv2D(x []float32, xs []int, w []float32, ws []int, bias []float32, outShape []int,
	strideH, strideW, dilH, dilW, padTop, padLeft int) []float32 {
	_, h, wd, c := xs[0], xs[1], xs[2], xs[3]
	kh, kw := ws[1], ws[2]
	n, oh, ow, oc := outShape[0], outShape[1], outShape[2], outShape[3]
	y := make([]float32, numElements(outShape))
	for b := 0; b < n; b++ {
		for oy := 0; oy < oh; oy++ {
			for ox := 0; ox < ow; ox++ {
				acc := y[((b*oh+oy)*ow+ox)*oc:][:oc]
				if bias != nil {
					copy(acc, bias)
				}
				for ky := 0; ky < kh; ky++ {
					iy := oy*strideH - padTop + ky*dilH
					if iy < 0 || iy >= h {
						continue
					}
					for kx := 0; kx < kw; kx++ {
						ix := ox*strideW - padLeft + kx*dilW
						if ix < 0 || ix >= wd {
							continue
						}
						in := x[((b*h+iy)*wd+ix)*c:][:c]
						for o := range acc {
							acc[o] += dot(in, w[((o*kh+ky)*kw+kx)*c:][:c])
						}
					}
				}
			}
		}
	}
	return y
}

// dot is the inner product of two slices of equal length.
func dot(a, b []float32) float32 {
	b = b[:len(a)]
	var s0, s1, s2, s3 float32
	i := 0
	for ; i+4 <= len(a); i += 4 {
		s0 += a[i] * b[i]
		s1 += a[i+1] * b[i+1]
		s2 += a[i+2] * b[i+2]
		s3 += a[i+3] * b[i+3]
	}
	for ; i < len(a); i++ {
		s0 += a[i] * b[i]
	}
	return (s0 + s1) + (s2 + s3)
}

// depthwiseConv2D is TFLite's DEPTHWISE_CONV_2D: x [N,H,W,C], filter
// [1,KH,KW,C*M], optional bias [C*M], output [N,OH,OW,C*M]; output channel
// c*M+m filters input channel c.
func depthwiseConv2D(x []float32, xs []int, w []float32, ws []int, bias []float32, outShape []int,
	strideH, strideW, dilH, dilW, padTop, padLeft int) []float32 {
	_, h, wd, c := xs[0], xs[1], xs[2], xs[3]
	kh, kw := ws[1], ws[2]
	n, oh, ow, oc := outShape[0], outShape[1], outShape[2], outShape[3]
	m := oc / c
	y := make([]float32, numElements(outShape))
	for b := 0; b < n; b++ {
		for oy := 0; oy < oh; oy++ {
			for ox := 0; ox < ow; ox++ {
				acc := y[((b*oh+oy)*ow+ox)*oc:][:oc]
				if bias != nil {
					copy(acc, bias)
				}
				for ky := 0; ky < kh; ky++ {
					iy := oy*strideH - padTop + ky*dilH
					if iy < 0 || iy >= h {
						continue
					}
					for kx := 0; kx < kw; kx++ {
						ix := ox*strideW - padLeft + kx*dilW
						if ix < 0 || ix >= wd {
							continue
						}
						in := x[((b*h+iy)*wd+ix)*c:][:c]
						tap := w[(ky*kw+kx)*oc:][:oc]
						if m == 1 {
							for ch, v := range in {
								acc[ch] += v * tap[ch]
							}
							continue
						}
						for ch, v := range in {
							for j := 0; j < m; j++ {
								acc[ch*m+j] += v * tap[ch*m+j]
							}
						}
					}
				}
			}
		}
	}
	return y
}

// maxPool2D is TFLite's MAX_POOL_2D: the maximum over the part of each
// window inside the input (padding is never a candidate).
func maxPool2D(x []float32, xs []int, outShape []int, fh, fw, strideH, strideW, padTop, padLeft int) []float32 {
	_, h, wd, c := xs[0], xs[1], xs[2], xs[3]
	n, oh, ow := outShape[0], outShape[1], outShape[2]
	y := make([]float32, numElements(outShape))
	for b := 0; b < n; b++ {
		for oy := 0; oy < oh; oy++ {
			for ox := 0; ox < ow; ox++ {
				out := y[((b*oh+oy)*ow+ox)*c:][:c]
				for ch := range out {
					out[ch] = float32(math.Inf(-1))
				}
				for ky := 0; ky < fh; ky++ {
					iy := oy*strideH - padTop + ky
					if iy < 0 || iy >= h {
						continue
					}
					for kx := 0; kx < fw; kx++ {
						ix := ox*strideW - padLeft + kx
						if ix < 0 || ix >= wd {
							continue
						}
						in := x[((b*h+iy)*wd+ix)*c:][:c]
						for ch, v := range in {
							out[ch] = max(out[ch], v)
						}
					}
				}
			}
		}
	}
	return y
}

// pad is TFLite's PAD with zeros, on any axes (including channels).
func pad(x []float32, xs []int, outShape []int, before []int) []float32 {
	y := make([]float32, numElements(outShape))
	if len(x) == 0 {
		return y
	}
	rank := len(xs)
	if rank == 0 {
		y[0] = x[0]
		return y
	}
	outStrides := rowMajorStrides(outShape)
	last := rank - 1
	inner := xs[last]
	idx := make([]int, rank) // odometer over the input, all but the last axis
	for i := 0; i < len(x); i += inner {
		o := before[last]
		for d := 0; d < last; d++ {
			o += (idx[d] + before[d]) * outStrides[d]
		}
		copy(y[o:o+inner], x[i:i+inner])
		for d := last - 1; d >= 0; d-- {
			idx[d]++
			if idx[d] < xs[d] {
				break
			}
			idx[d] = 0
		}
	}
	return y
}

func rowMajorStrides(shape []int) []int {
	st := make([]int, len(shape))
	s := 1
	for d := len(shape) - 1; d >= 0; d-- {
		st[d] = s
		s *= shape[d]
	}
	return st
}

// concat joins the inputs along axis.
func concat(xs [][]float32, shapes [][]int, outShape []int, axis int) []float32 {
	y := make([]float32, numElements(outShape))
	outer := numElements(outShape[:axis])
	o := 0
	for i := 0; i < outer; i++ {
		for k, x := range xs {
			chunk := numElements(shapes[k][axis:])
			o += copy(y[o:], x[i*chunk:(i+1)*chunk])
		}
	}
	return y
}

// resizeBilinear is TFLite's RESIZE_BILINEAR on [N,H,W,C].
func resizeBilinear(x []float32, xs []int, outShape []int, alignCorners, halfPixel bool) []float32 {
	n, h, w, c := xs[0], xs[1], xs[2], xs[3]
	oh, ow := outShape[1], outShape[2]
	y := make([]float32, numElements(outShape))
	sy := resizeScale(h, oh, alignCorners)
	sx := resizeScale(w, ow, alignCorners)
	for b := 0; b < n; b++ {
		for oy := 0; oy < oh; oy++ {
			fy, y0, y1 := sourceCoordinate(oy, sy, h, halfPixel)
			for ox := 0; ox < ow; ox++ {
				fx, x0, x1 := sourceCoordinate(ox, sx, w, halfPixel)
				p00 := x[((b*h+y0)*w+x0)*c:][:c]
				p01 := x[((b*h+y0)*w+x1)*c:][:c]
				p10 := x[((b*h+y1)*w+x0)*c:][:c]
				p11 := x[((b*h+y1)*w+x1)*c:][:c]
				dy, dx := fy-float32(y0), fx-float32(x0)
				out := y[((b*oh+oy)*ow+ox)*c:][:c]
				for ch := range out {
					out[ch] = p00[ch]*(1-dy)*(1-dx) + p10[ch]*dy*(1-dx) +
						p01[ch]*(1-dy)*dx + p11[ch]*dy*dx
				}
			}
		}
	}
	return y
}

// resizeScale is the step in input pixels per output pixel.
func resizeScale(in, out int, alignCorners bool) float32 {
	if alignCorners && out > 1 {
		return float32(in-1) / float32(out-1)
	}
	return float32(in) / float32(out)
}

// sourceCoordinate maps output index i to the input coordinate f and the
// two input indices around it. With half-pixel centers f = (i+0.5)*scale -
// 0.5, clamped at 0 (TFLite clamps the lower index at 0, so the same value
// results); the upper index is clamped to the last pixel.
func sourceCoordinate(i int, scale float32, size int, halfPixel bool) (f float32, lo, hi int) {
	if halfPixel {
		f = (float32(i)+0.5)*scale - 0.5
	} else {
		f = float32(i) * scale
	}
	f = max(f, 0)
	lo = min(int(math.Floor(float64(f))), size-1)
	hi = min(int(math.Ceil(float64(f))), size-1)
	return f, lo, hi
}

// mean averages over the reduced axes; the result has the other axes in
// order (keep_dims only changes the shape, not the data).
func mean(x []float32, xs []int, reduced []bool) []float32 {
	var outShape []int
	for d, n := range xs {
		if reduced[d] {
			outShape = append(outShape, 1)
		} else {
			outShape = append(outShape, n)
		}
	}
	outStrides := rowMajorStrides(outShape)
	sums := make([]float64, numElements(outShape))
	idx := make([]int, len(xs))
	for _, v := range x {
		o := 0
		for d := range xs {
			if !reduced[d] {
				o += idx[d] * outStrides[d]
			}
		}
		sums[o] += float64(v)
		for d := len(xs) - 1; d >= 0; d-- {
			idx[d]++
			if idx[d] < xs[d] {
				break
			}
			idx[d] = 0
		}
	}
	count := float64(len(x) / len(sums))
	y := make([]float32, len(sums))
	for i, s := range sums {
		y[i] = float32(s / count)
	}
	return y
}

// fullyConnected is TFLite's FULLY_CONNECTED: each row of x (rows of the
// weights' input width) times weights [O,I] transposed, plus bias [O].
func fullyConnected(x []float32, w []float32, ws []int, bias []float32) []float32 {
	outN, inN := ws[0], ws[1]
	rows := len(x) / inN
	y := make([]float32, rows*outN)
	for r := 0; r < rows; r++ {
		in := x[r*inN : (r+1)*inN]
		for o := 0; o < outN; o++ {
			v := dot(in, w[o*inN:(o+1)*inN])
			if bias != nil {
				v += bias[o]
			}
			y[r*outN+o] = v
		}
	}
	return y
}
