package main

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"invigil/internal/testassets"
	"invigil/models"
)

// `simulate --video … --audio speech.wav` makes a talking candidate: the
// real server hears the file's speech through the SFU, libopus and the
// speech detector, and opens talking in the rest room; the same run with a
// silent file of the same length opens none, nor does speech in the device
// check.
func TestSimulatedCandidateTalks(t *testing.T) {
	if err := models.CheckPresent(testassets.ModelsDir(t)); err != nil {
		t.Fatalf("%v (make test provisions them)", err)
	}
	dir := t.TempDir()
	speech := makeSound(t, "espeak-ng", "-v", "zh", "-s", "150", spokenAnswer, "-w", filepath.Join(dir, "speech.wav"))
	silent := filepath.Join(dir, "silent.wav")
	makeSound(t, "sox", "-n", "-r", "48000", "-c", "1", "-b", "16", silent, "trim", "0", "6")
	_, base := serveProcess(t, filepath.Join(dir, "data"))
	admin := adminClient(t, base)
	photo := testassets.Photo(t, "sample3.jpg")

	type run struct {
		exam, cand int64
		done       chan string
	}
	start := func(kind, file string) run {
		exam, cand, codes := examWithCandidate(t, admin)
		r := run{exam, cand, make(chan string, 1)}
		go func() {
			code, _, errOut := invoke(t, nil, "simulate", "--server", base, "--code", codes[kind],
				"--video", photo, "--audio", file, "--duration", "12s", "--loopback")
			if code != 0 {
				errOut = fmt.Sprintf("exit %d: %s", code, errOut)
			} else {
				errOut = ""
			}
			r.done <- errOut
		}()
		return r
	}
	// The third speaks in the device check (the mock code), which asks
	// candidates to speak to see their microphone's level: not talking.
	talker, quiet, checking := start("rest_room", speech), start("rest_room", silent), start("mock", speech)
	talking := func(r run) []violationJSON {
		var list []violationJSON
		if s := admin.call("GET", fmt.Sprintf("/api/v1/exams/%d/violations?type=talking", r.exam), nil, &list); s != 200 {
			t.Fatalf("violations: %d", s)
		}
		return list
	}
	deadline := time.Now().Add(40 * time.Second)
	for len(talking(talker)) == 0 {
		select {
		case msg := <-talker.done:
			t.Fatalf("simulate with speech ended without a talking violation (%s)", msg)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("no talking violation for the candidate whose microphone plays speech")
		}
		time.Sleep(250 * time.Millisecond)
	}
	if v := talking(talker)[0]; v.CandidateID != talker.cand {
		t.Errorf("talking opened for candidate %d, want %d", v.CandidateID, talker.cand)
	}
	for _, r := range []run{talker, quiet, checking} {
		if msg := <-r.done; msg != "" {
			t.Errorf("simulate: %s", msg)
		}
	}
	if list := talking(quiet); len(list) != 0 {
		t.Errorf("a silent microphone opened talking: %+v", list)
	}
	if list := talking(checking); len(list) != 0 {
		t.Errorf("speaking in the device check opened talking: %+v", list)
	}
}
