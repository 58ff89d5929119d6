package runner

import (
	"math"
	"testing"
)

func near(a, b, tol float64) bool { return math.Abs(a-b) <= tol }

func TestSSDAnchors(t *testing.T) {
	cases := []struct {
		name        string
		size        int
		strides     []int
		perLayer    int
		count       int
		first, last Point
	}{
		// 16×16×2 then 8×8×6.
		{"face short", 128, []int{8, 16, 16, 16}, 2, 896, Point{0.5 / 16, 0.5 / 16}, Point{7.5 / 8, 7.5 / 8}},
		// 48×48×1.
		{"face full", 192, []int{4}, 1, 2304, Point{0.5 / 48, 0.5 / 48}, Point{47.5 / 48, 47.5 / 48}},
		// 24×24×2 + 12×12×6.
		{"palm", 192, []int{8, 16, 16, 16}, 2, 2016, Point{0.5 / 24, 0.5 / 24}, Point{11.5 / 12, 11.5 / 12}},
	}
	for _, c := range cases {
		a := ssdAnchors(c.size, c.strides, c.perLayer)
		if len(a) != c.count {
			t.Errorf("%s: %d anchors, want %d", c.name, len(a), c.count)
			continue
		}
		if a[0] != c.first || a[len(a)-1] != c.last {
			t.Errorf("%s: first %v last %v, want %v %v", c.name, a[0], a[len(a)-1], c.first, c.last)
		}
	}
	// Order is row, column, anchor: the short-range model's anchors 0,1
	// share the first cell, 2 is the next column, 32 the next row.
	a := ssdAnchors(128, []int{8, 16, 16, 16}, 2)
	if a[1] != a[0] || a[2] != (Point{1.5 / 16, 0.5 / 16}) || a[32] != (Point{0.5 / 16, 1.5 / 16}) {
		t.Errorf("short range order: a[1]=%v a[2]=%v a[32]=%v", a[1], a[2], a[32])
	}
	// The stride-16 map starts at 512 with six anchors per cell.
	if a[512] != (Point{0.5 / 8, 0.5 / 8}) || a[517] != a[512] || a[518] != (Point{1.5 / 8, 0.5 / 8}) {
		t.Errorf("short range stride 16: a[512]=%v a[517]=%v a[518]=%v", a[512], a[517], a[518])
	}
}

func TestLetterboxRoundTrip(t *testing.T) {
	for _, sz := range [][2]int{{640, 480}, {480, 640}, {128, 128}, {1, 1}, {5000, 3}, {3, 5000}, {1920, 1080}} {
		lb := newLetterbox(sz[0], sz[1], 192)
		if lb.dstW < 1 || lb.dstH < 1 || lb.dstW > 192 || lb.dstH > 192 || (lb.dstW != 192 && lb.dstH != 192) {
			t.Errorf("%v: scaled to %dx%d", sz, lb.dstW, lb.dstH)
		}
		for _, p := range []Point{{0, 0}, {float64(sz[0]), float64(sz[1])}, {float64(sz[0]) / 3, float64(sz[1]) * 0.7}} {
			q := lb.toImage(lb.toInput(p))
			if !near(p.X, q.X, 1e-9*float64(sz[0])) || !near(p.Y, q.Y, 1e-9*float64(sz[1])) {
				t.Errorf("%v: %v → %v", sz, p, q)
			}
		}
	}
	// 640×480 into 192: scaled to 192×144, 24 rows of padding above.
	lb := newLetterbox(640, 480, 192)
	if lb.dstW != 192 || lb.dstH != 144 || lb.padLeft != 0 || lb.padTop != 24 {
		t.Fatalf("640x480: %+v", lb)
	}
	if p := lb.toImage(Point{0.5, 0.5}); p != (Point{320, 240}) {
		t.Errorf("input center maps to %v, want the image center", p)
	}
	if p := lb.toImage(Point{0, 24.0 / 192}); p != (Point{0, 0}) {
		t.Errorf("top-left of the image content maps to %v", p)
	}
	r := lb.rectToImage(Rect{0.25, 0.25, 0.5, 0.5})
	if !near(r.X, 160, 1e-9) || !near(r.Y, 80, 1e-9) || !near(r.W, 320, 1e-9) || !near(r.H, 320, 1e-9) {
		t.Errorf("rect maps to %+v", r)
	}
}

func TestWeightedNMS(t *testing.T) {
	kp := func(x, y float64) []Point { return []Point{{x, y}} }
	dets := []detection{
		{box: Rect{10, 10, 10, 10}, score: 0.6, keypoints: kp(15, 15)},
		{box: Rect{12, 10, 10, 10}, score: 0.9, keypoints: kp(17, 15)}, // IoU with the first 0.667
		{box: Rect{50, 50, 10, 10}, score: 0.7, keypoints: kp(55, 55)}, // alone
		{box: Rect{16, 10, 10, 10}, score: 0.8, keypoints: kp(21, 15)}, // IoU with the best 0.43, with the first 0.25
	}
	got := weightedNMS(dets, 0.3)
	if len(got) != 2 {
		t.Fatalf("%d detections, want 2: %+v", len(got), got)
	}
	// Group of the 0.9 box: itself, the 0.6 and the 0.8 box (IoU 0.43 > 0.3).
	total := 0.9 + 0.6 + 0.8
	wantX := (0.9*12 + 0.6*10 + 0.8*16) / total
	g := got[0]
	if g.score != 0.9 || !near(g.box.X, wantX, 1e-12) || !near(g.box.W, 10, 1e-12) || !near(g.box.Y, 10, 1e-12) {
		t.Errorf("blended %+v, want x %.4f score 0.9", g, wantX)
	}
	if !near(g.keypoints[0].X, wantX+5, 1e-12) || !near(g.keypoints[0].Y, 15, 1e-12) {
		t.Errorf("blended keypoint %v", g.keypoints[0])
	}
	if got[1].score != 0.7 || got[1].box != (Rect{50, 50, 10, 10}) {
		t.Errorf("lone box changed: %+v", got[1])
	}
	// IoU exactly at the threshold does not merge (MediaPipe uses >).
	two := []detection{
		{box: Rect{0, 0, 10, 10}, score: 0.9, keypoints: kp(0, 0)},
		{box: Rect{0, 0, 10, 3}, score: 0.8, keypoints: kp(0, 0)}, // IoU 0.3
	}
	if got := weightedNMS(two, 0.3); len(got) != 2 {
		t.Errorf("IoU at threshold merged: %+v", got)
	}
	if got := weightedNMS(nil, 0.3); len(got) != 0 {
		t.Errorf("nil input: %+v", got)
	}
	// A zero-area box still terminates.
	if got := weightedNMS([]detection{{box: Rect{1, 1, 0, 0}, score: 0.5, keypoints: kp(0, 0)}}, 0.3); len(got) != 1 {
		t.Errorf("zero-area: %+v", got)
	}
}

func TestRectIoU(t *testing.T) {
	a := Rect{0, 0, 10, 10}
	for _, c := range []struct {
		b    Rect
		want float64
	}{
		{Rect{0, 0, 10, 10}, 1},
		{Rect{5, 0, 10, 10}, 50.0 / 150},
		{Rect{10, 0, 10, 10}, 0},
		{Rect{2, 2, 5, 5}, 25.0 / 100},
		{Rect{0, 0, 0, 0}, 0},
	} {
		if got := a.IoU(c.b); !near(got, c.want, 1e-12) {
			t.Errorf("IoU(%v, %v) = %v, want %v", a, c.b, got, c.want)
		}
	}
}

func TestPalmCrop(t *testing.T) {
	box := Rect{100, 100, 40, 50} // center (120, 125), h 50
	cases := []struct {
		name           string
		wrist, knuckle Point
		angle          float64
		center         Point
	}{
		// Fingers up: no turn, center moves up by h/2.
		{"up", Point{120, 150}, Point{120, 110}, 0, Point{120, 100}},
		// Fingers right: turned a quarter clockwise, center moves right.
		{"right", Point{100, 125}, Point{140, 125}, math.Pi / 2, Point{145, 125}},
		// Fingers down.
		{"down", Point{120, 100}, Point{120, 140}, -math.Pi, Point{120, 150}},
		// Fingers left.
		{"left", Point{140, 125}, Point{100, 125}, -math.Pi / 2, Point{95, 125}},
	}
	for _, c := range cases {
		r := palmCrop(box, c.wrist, c.knuckle)
		if !near(normalizeRadians(r.Angle-c.angle), 0, 1e-12) {
			t.Errorf("%s: angle %.4f, want %.4f", c.name, r.Angle, c.angle)
		}
		if !near(r.Center.X, c.center.X, 1e-9) || !near(r.Center.Y, c.center.Y, 1e-9) {
			t.Errorf("%s: center %v, want %v", c.name, r.Center, c.center)
		}
		if !near(r.Width, 130, 1e-9) || r.Width != r.Height {
			t.Errorf("%s: size %vx%v, want 130 (50·2.6) square", c.name, r.Width, r.Height)
		}
		// The crop's own "up" points from the wrist to the knuckle.
		up := Point{math.Sin(r.Angle), -math.Cos(r.Angle)}
		d := Point{c.knuckle.X - c.wrist.X, c.knuckle.Y - c.wrist.Y}
		if up.X*d.X+up.Y*d.Y <= 0.99*math.Hypot(d.X, d.Y) {
			t.Errorf("%s: crop up %v is not wrist→knuckle %v", c.name, up, d)
		}
	}
}

func TestRotatedRectBounds(t *testing.T) {
	r := RotatedRect{Center: Point{10, 20}, Width: 4, Height: 2, Angle: math.Pi / 2}
	b := r.Bounds()
	if !near(b.X, 9, 1e-9) || !near(b.Y, 18, 1e-9) || !near(b.W, 2, 1e-9) || !near(b.H, 4, 1e-9) {
		t.Errorf("bounds %+v", b)
	}
}

func TestNextCropFollowsHand(t *testing.T) {
	// A synthetic upright hand: palm landmarks in a 40×40 square, fingers
	// above. The next crop must be upright, 2×40 wide, centered a little
	// above the palm's center.
	var h Hand
	set := func(i int, x, y float64) { h.Landmarks[i] = Point3{X: x, Y: y} }
	set(Wrist, 100, 140)
	for i, x := range map[int]float64{IndexMCP: 85, MiddleMCP: 100, RingMCP: 115, PinkyMCP: 120} {
		set(i, x, 100)
	}
	set(ThumbCMC, 80, 130)
	set(ThumbMCP, 80, 120)
	set(ThumbIP, 80, 110)
	set(IndexPIP, 85, 100)
	set(MiddlePIP, 100, 100)
	set(RingPIP, 115, 100)
	set(PinkyPIP, 120, 100)
	r := h.NextCrop()
	if !near(r.Angle, 0, 1e-9) {
		t.Errorf("angle %v, want 0", r.Angle)
	}
	if !near(r.Width, 80, 1e-9) {
		t.Errorf("side %v, want 80", r.Width)
	}
	if !near(r.Center.X, 100, 1e-9) || !near(r.Center.Y, 120-4, 1e-9) {
		t.Errorf("center %v, want (100, 116)", r.Center)
	}
	// Turned by 90°: the same hand pointing right gives the same crop turned.
	var g Hand
	for i, p := range h.Landmarks {
		// rotate about (100,120) by +90° (clockwise on screen): (dx,dy) → (−dy, dx)
		dx, dy := p.X-100, p.Y-120
		g.Landmarks[i] = Point3{X: 100 - dy, Y: 120 + dx}
	}
	r2 := g.NextCrop()
	if !near(r2.Angle, math.Pi/2, 1e-9) || !near(r2.Width, 80, 1e-9) || !near(r2.Center.X, 104, 1e-9) || !near(r2.Center.Y, 120, 1e-9) {
		t.Errorf("turned hand: %+v", r2)
	}
}

func TestCheckONNXWire(t *testing.T) {
	// ir_version 8, graph {1 byte}
	good := []byte{0x08, 0x08, 0x3a, 0x01, 0x00}
	if err := checkONNXWire(good); err != nil {
		t.Errorf("good: %v", err)
	}
	for name, b := range map[string][]byte{
		"no graph":    {0x08, 0x08},
		"truncated":   {0x08, 0x08, 0x3a, 0x05, 0x00},
		"garbage":     []byte("hello, world"),
		"tflite head": {0x1c, 0, 0, 0, 'T', 'F', 'L', '3'},
	} {
		if err := checkONNXWire(b); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
