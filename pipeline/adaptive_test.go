package pipeline

import (
	"context"
	"image"
	"image/color"
	"math"
	"sync"
	"testing"
	"time"

	"github.com/pion/rtp"
	"gocv.io/x/gocv"

	"invigil/detectors/rules"
	"invigil/motion"
	"invigil/vpx"
)

// addNoise returns pic with Gaussian sensor noise of the given sigma.
func addNoise(t testing.TB, pic gocv.Mat, sigma float64) gocv.Mat {
	t.Helper()
	noise := gocv.NewMatWithSize(pic.Rows(), pic.Cols(), gocv.MatTypeCV16SC3)
	defer noise.Close()
	gocv.RandN(&noise, gocv.NewScalar(0, 0, 0, 0), gocv.NewScalar(sigma, sigma, sigma, 0))
	wide := gocv.NewMat()
	defer wide.Close()
	pic.ConvertTo(&wide, gocv.MatTypeCV16SC3)
	gocv.Add(wide, noise, &wide)
	out := gocv.NewMat()
	wide.ConvertTo(&out, gocv.MatTypeCV8UC3) // saturates
	return out
}

// i420OfBGR is a picture as a decoder hands it over (the caller closes it).
func i420OfBGR(t testing.TB, bgr gocv.Mat) gocv.Mat {
	t.Helper()
	img, err := vpx.BGRToImage(bgr)
	if err != nil {
		t.Fatal(err)
	}
	i420 := gocv.NewMat()
	if err := img.ToI420Mat(&i420); err != nil {
		i420.Close()
		t.Fatal(err)
	}
	return i420
}

// thumbOfBGR is the thumbnail the pipeline makes of a picture.
func thumbOfBGR(t testing.TB, th *thumbnailer, bgr gocv.Mat) thumbnail {
	t.Helper()
	i420 := i420OfBGR(t, bgr)
	defer i420.Close()
	var out thumbnail
	if err := th.make(i420, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestPictureChanged: a still picture with sensor noise, through VP8 at a
// low and a high bitrate, never counts as changed from one decoded frame
// to the next; a person leaving, a small shift and a hand coming into view
// do.
func TestPictureChanged(t *testing.T) {
	th := newThumbnailer()
	defer th.close()
	for _, name := range []string{"messi5.jpg", "baboon.jpg"} {
		pic := picture(t, name)
		for _, kbps := range []int{300, 1200} {
			enc, err := vpx.NewEncoder(vpx.EncoderOptions{Width: testWidth, Height: testHeight, FPS: testFPS, BitrateKbps: kbps, KeyframeInterval: 15})
			if err != nil {
				t.Fatal(err)
			}
			dec, err := vpx.NewDecoder()
			if err != nil {
				t.Fatal(err)
			}
			i420 := gocv.NewMat()
			var prev thumbnail
			worst, n := 0, 0
			for i := 0; i < 2*testFPS; i++ {
				noisy := addNoise(t, pic, 3)
				frames, err := enc.Encode(noisy, i == 0)
				noisy.Close()
				if err != nil {
					t.Fatal(err)
				}
				for _, f := range frames {
					shown, err := dec.DecodeI420(f, &i420)
					if err != nil {
						t.Fatal(err)
					}
					if !shown {
						continue
					}
					var cur thumbnail
					if err := th.make(i420, &cur); err != nil {
						t.Fatal(err)
					}
					if n > 0 {
						worst = max(worst, motion.Changed(&prev, &cur))
						if motion.PictureChanged(&prev, &cur) {
							t.Errorf("%s at %d kbps: frame %d counts as changed (%d cells)", name, kbps, i, motion.Changed(&prev, &cur))
						}
					}
					prev, n = cur, n+1
				}
			}
			t.Logf("%s at %d kbps with noise: %d frames, at most %d cells changed between frames", name, kbps, n, worst)
			if n < 2*testFPS-1 {
				t.Errorf("%s at %d kbps: %d frames decoded", name, kbps, n)
			}
			i420.Close()
			dec.Close()
			enc.Close()
		}
	}

	face := picture(t, "messi5.jpg")
	ref := thumbOfBGR(t, th, face)
	empty := thumbOfBGR(t, th, picture(t, "building.jpg"))
	shifted := gocv.NewMat()
	defer shifted.Close()
	shift := gocv.NewMatWithSize(2, 3, gocv.MatTypeCV64F)
	defer shift.Close()
	shift.SetDoubleAt(0, 0, 1)
	shift.SetDoubleAt(0, 2, 5) // 5 px to the right
	shift.SetDoubleAt(1, 1, 1)
	gocv.WarpAffineWithParams(face, &shifted, shift, image.Pt(testWidth, testHeight), gocv.InterpolationLinear, gocv.BorderReplicate, color.RGBA{})
	moved := thumbOfBGR(t, th, shifted)
	hand := face.Clone()
	defer hand.Close()
	patch := hand.Region(image.Rect(100, 400, 160, 460)) // a 60 px hand at the desk's edge
	patch.SetTo(gocv.NewScalar(150, 170, 210, 0))
	patch.Close()
	withHand := thumbOfBGR(t, th, hand)
	for what, th := range map[string]*thumbnail{"the person leaving": &empty, "a 5 px shift": &moved, "a hand coming into view": &withHand} {
		t.Logf("%s: %d cells changed", what, motion.Changed(&ref, th))
		if !motion.PictureChanged(&ref, th) {
			t.Errorf("%s does not count as a change (%d cells)", what, motion.Changed(&ref, th))
		}
	}
}

// TestAdaptiveRateFaceLeaves: a candidate sits still in the rest room, then
// leaves. While the picture is still the candidate is analyzed at the calm
// rate, far below the policy's; the change brings the full rate back, and
// face_off_screen opens within the rule's minimum duration plus 1 s of
// the change in stream time, at the frame its deadline falls on.
func TestAdaptiveRateFaceLeaves(t *testing.T) {
	sink := newRecordingSink()
	p, reg := newTestPipeline(t, Config{Sink: sink})
	policy := mustPolicy(t, rules.PolicyRestRoom)
	pub := newPublisher(t, "cand-1")
	face, empty := picture(t, "messi5.jpg"), picture(t, "building.jpg")
	const stillFrames, emptyFrames = 8 * testFPS, 5 * testFPS
	w := pub.start(p)
	var analysedStill, carriedStill float64
	pub.play(context.Background(), w, []scene{{face, stillFrames}, {empty, emptyFrames}}, playOptions{
		alter: func(i int, pkts []*rtp.Packet) []*rtp.Packet {
			if i == stillFrames {
				analysedStill = metricValue(t, reg, "invigil_pipeline_frames_analysed_total")
				carriedStill = metricValue(t, reg, "invigil_pipeline_analyses_carried_total")
			}
			return pkts
		}})

	v := sink.wait(t, 20*time.Second, rules.Opened, "cand-1", rules.FaceOffScreen)
	changeMS := streamMS(stillFrames)
	delay := v.OpenedMS - changeMS
	t.Logf("face_off_screen: condition from %d ms, opened at %d ms, %d ms after the change (minimum %d)",
		v.StartMS, v.OpenedMS, delay, policy.Rules[rules.FaceOffScreen].MinMS)
	if v.StartMS < changeMS || delay > policy.Rules[rules.FaceOffScreen].MinMS+1000 {
		t.Errorf("face_off_screen from %d ms, opened %d ms after the change at %d ms: want within the minimum %d ms + 1 s",
			v.StartMS, delay, changeMS, policy.Rules[rules.FaceOffScreen].MinMS)
	}
	if len(v.Evidence) < 1000 {
		t.Errorf("evidence of %d bytes", len(v.Evidence))
	}
	waitFor(t, "the track to end", func() bool { return metricValue(t, reg, "invigil_pipeline_tracks_active") == 0 })

	// Most looks at the still picture repeat the detectors' last
	// observation; the detectors run for the first look and its hold, and
	// at least once per carryLimit.
	detectorRuns := analysedStill - carriedStill
	t.Logf("still: %v analyses, %v of them carried, %v detector runs", analysedStill, carriedStill, detectorRuns)
	if limit := float64(holdAnalyses(policy)) + float64(stillFrames)/testFPS/carryLimit.Seconds() + 2; carriedStill < 3 || detectorRuns > limit {
		t.Errorf("still for %d s: %v carried, %v detector runs; want at least 3 carried and at most %v runs",
			stillFrames/testFPS, carriedStill, detectorRuns, limit)
	}

	full := float64(stillFrames) / testFPS * policy.AnalysisFPS
	trig := func(name string) float64 {
		return metricValue(t, reg, "invigil_pipeline_analyses_total", "trigger", name)
	}
	t.Logf("still for %d s: %v analyses (%v at the policy rate); in all by trigger: refresh %v, change %v, calm %v, deadline %v",
		stillFrames/testFPS, analysedStill, full, trig(triggerRefresh), trig(triggerChange), trig(triggerCalm), trig(triggerDeadline))
	// The still part: the first look and its hold, then one per calm
	// interval (1 s).
	if limit := float64(holdAnalyses(policy)) + float64(stillFrames)/testFPS + 2; analysedStill > limit || analysedStill < 4 {
		t.Errorf("%v analyses while the picture was still for %d s, want 4 to %v", analysedStill, stillFrames/testFPS, limit)
	}
	if trig(triggerCalm) == 0 || trig(triggerChange) == 0 || trig(triggerDeadline) == 0 {
		t.Error("want analyses for a still picture, a change and a rule deadline")
	}
	if n := metricValue(t, reg, "invigil_pipeline_frames_decoded_total"); n != stillFrames+emptyFrames {
		t.Errorf("%v frames decoded, want every one of %d", n, stillFrames+emptyFrames)
	}
}

// TestLatest: the live snapshot follows what the camera shows, through
// the real decoder and models: a face alone, several faces, a covered
// lens; a candidate never seen has none, and Forget clears it.
func TestLatest(t *testing.T) {
	p, reg := newTestPipeline(t, Config{})
	policy := mustPolicy(t, rules.PolicyInterview)
	if err := p.SetPolicy("cand-1", policy); err != nil {
		t.Fatal(err)
	}
	if _, ok := p.Latest("cand-1"); ok {
		t.Error("a snapshot before any frame")
	}
	pub := newPublisher(t, "cand-1")
	alone, crowd := picture(t, "messi5.jpg"), picture(t, "sample3.jpg")
	const sceneFrames = 3 * testFPS
	w := pub.start(p)

	// Poll as an HTTP handler would, while the workers write.
	var (
		mu    sync.Mutex
		snaps []Snapshot
	)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for ctx.Err() == nil {
			if s, ok := p.Latest("cand-1"); ok {
				mu.Lock()
				if len(snaps) == 0 || snaps[len(snaps)-1].StreamMS != s.StreamMS {
					snaps = append(snaps, s)
				}
				mu.Unlock()
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()
	pub.play(context.Background(), w, []scene{{alone, sceneFrames}, {crowd, sceneFrames}, {blackPicture(t), sceneFrames}}, playOptions{})
	waitFor(t, "the last frames to be analyzed", func() bool {
		s, ok := p.Latest("cand-1")
		return ok && s.StreamMS >= streamMS(3*sceneFrames-testFPS)
	})
	cancel()
	wg.Wait()

	// Each scene's snapshots, leaving out the first half second after a
	// change (the detectors keep a face they saw for a moment).
	scenes := make([][]Snapshot, 3)
	for _, s := range snaps {
		i := int(s.StreamMS / streamMS(sceneFrames))
		if i < 3 && s.StreamMS-int64(i)*streamMS(sceneFrames) >= 500 {
			scenes[i] = append(scenes[i], s)
		}
	}
	t.Logf("%d snapshots; per scene %d, %d, %d", len(snaps), len(scenes[0]), len(scenes[1]), len(scenes[2]))
	for i, ss := range scenes {
		if len(ss) == 0 {
			t.Fatalf("no snapshot of scene %d", i)
		}
	}
	started := pub.info.Started
	for _, s := range snaps {
		if s.Width != testWidth || s.Height != testHeight || s.Policy != rules.PolicyInterview ||
			s.TargetDistanceCM != policy.DistanceCM || s.DistanceToleranceCM != policy.DistanceToleranceCM {
			t.Fatalf("snapshot %+v", s)
		}
		if want := started.Add(time.Duration(s.StreamMS) * time.Millisecond); !s.At.Equal(want) {
			t.Fatalf("snapshot at %v, want the track's start + %d ms = %v", s.At, s.StreamMS, want)
		}
	}
	for _, s := range scenes[0] {
		if s.Faces != 1 || !s.FaceInView || !s.Alone || s.Blocked || s.TooDark || s.Brightness < policy.DarkBrightness ||
			s.DistanceCM <= 0 || (s.YawDeg == 0 && s.PitchDeg == 0) || s.Calibrating {
			t.Errorf("one face: %+v", s)
		}
		if ok := math.Abs(s.DistanceCM-policy.DistanceCM) <= policy.DistanceToleranceCM; s.DistanceOK != ok {
			t.Errorf("distance %.1f cm judged ok=%v", s.DistanceCM, s.DistanceOK)
		}
	}
	t.Logf("one face: %+v", scenes[0][len(scenes[0])-1])
	for _, s := range scenes[1] {
		if s.Faces < 2 || s.Alone || !s.FaceInView {
			t.Errorf("several faces: %+v", s)
		}
	}
	last := scenes[2][len(scenes[2])-1]
	t.Logf("covered lens: %+v", last)
	for _, s := range scenes[2] {
		if s.Faces != 0 || !s.Blocked || !s.TooDark || s.FaceInView || s.DistanceCM != 0 || s.DistanceOK {
			t.Errorf("covered lens: %+v", s)
		}
	}
	if len(last.Open) != 1 || last.Open[0] != rules.CameraBlocked {
		t.Errorf("open violations at the end %v, want camera_blocked", last.Open)
	}

	// The track ended; SetPolicy keeps the candidate, and the snapshot.
	waitFor(t, "the track to end", func() bool { return metricValue(t, reg, "invigil_pipeline_tracks_active") == 0 })
	if s, ok := p.Latest("cand-1"); !ok || s.StreamMS < last.StreamMS {
		t.Errorf("after the track ended: %+v %v, want the last snapshot", s, ok)
	}
	p.Forget("cand-1")
	if s, ok := p.Latest("cand-1"); ok {
		t.Errorf("snapshot after Forget: %+v", s)
	}
	if _, ok := p.Latest("nobody"); ok {
		t.Error("a snapshot of an unknown candidate")
	}
}
