package runner

import "sort"

// detection is a decoded SSD output in the model input's [0,1] coordinates.
type detection struct {
	box       Rect
	score     float64
	keypoints []Point
}

// weightedNMS is MediaPipe's WEIGHTED non-maximum suppression: take the best
// remaining detection, gather every remaining detection whose IoU with it
// exceeds threshold (itself included), and replace them by one detection
// whose box and keypoints are the score-weighted mean of the group and whose
// score is the best one's. Averaging steadies boxes that would jitter between
// neighboring anchors from frame to frame.
func weightedNMS(dets []detection, threshold float64) []detection {
	remaining := make([]detection, len(dets))
	copy(remaining, dets)
	sort.SliceStable(remaining, func(i, j int) bool { return remaining[i].score > remaining[j].score })
	var out []detection
	for len(remaining) > 0 {
		best := remaining[0]
		var group, rest []detection
		for _, d := range remaining {
			if best.box.IoU(d.box) > threshold || sameDetection(best, d) {
				group = append(group, d)
			} else {
				rest = append(rest, d)
			}
		}
		out = append(out, blend(best, group))
		remaining = rest
	}
	return out
}

// sameDetection keeps a zero-area best box in its own group, so the loop
// always makes progress.
func sameDetection(a, b detection) bool {
	return a.box == b.box && a.score == b.score
}

func blend(best detection, group []detection) detection {
	var total, x0, y0, x1, y1 float64
	kps := make([]Point, len(best.keypoints))
	for _, d := range group {
		w := d.score
		total += w
		x0 += w * d.box.X
		y0 += w * d.box.Y
		x1 += w * (d.box.X + d.box.W)
		y1 += w * (d.box.Y + d.box.H)
		for k := range kps {
			kps[k].X += w * d.keypoints[k].X
			kps[k].Y += w * d.keypoints[k].Y
		}
	}
	if total <= 0 {
		return best
	}
	for k := range kps {
		kps[k].X /= total
		kps[k].Y /= total
	}
	return detection{
		box:       Rect{x0 / total, y0 / total, (x1 - x0) / total, (y1 - y0) / total},
		score:     best.score,
		keypoints: kps,
	}
}
