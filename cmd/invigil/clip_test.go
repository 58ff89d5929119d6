package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"invigil/audio"
	"invigil/detectors/rules"
	"invigil/outbox"
	"invigil/pipeline"
	"invigil/store"
)

// The pipeline's audio clip travels through the outbox to the store, and an
// entry queued by a build from before clips (no Clip field) is still
// delivered.
func TestClipThroughOutbox(t *testing.T) {
	data := t.TempDir()
	cp, _ := inProcess(t, data)
	exam, cands := examAndCandidates(t, cp.st, 1)
	identity := fmt.Sprintf("candidate-%d", cands[0])
	at := time.Now().UTC().Truncate(time.Millisecond)

	old := fmt.Sprintf(`{"Key":"old-entry","Identity":%q,"Type":"face_off_screen","Policy":"rest_room","Reason":"no face",`+
		`"Confidence":0.9,"StartedAt":%q,"OpenedAt":%q,"EndedAt":"0001-01-01T00:00:00Z","Details":null,"Evidence":null,`+
		`"RecordingPath":"","RecordingOffsetMS":null}`, identity, at.Format(time.RFC3339Nano), at.Format(time.RFC3339Nano))
	if err := cp.vo.box.Append(outbox.Entry{Kind: entryOpened, Key: "old-entry", Data: []byte(old),
		Attachment: []byte{0xff, 0xd8, 0xff, 0xe0}}); err != nil {
		t.Fatal(err)
	}

	var wav bytes.Buffer
	if err := audio.WriteWAV(&wav, &audio.WAV{SampleRate: 16000, Channels: 1, Samples: make([]int16, 32000)}); err != nil {
		t.Fatal(err)
	}
	v := pipeline.Violation{Key: "talk-1", Identity: identity, Room: "rest_room", Policy: "rest_room",
		Violation: rules.Violation{Type: rules.Talking, Confidence: 0.8, Reason: "speech for 2.0 s within 5 s"},
		StartedAt: at.Add(-2 * time.Second), OpenedAt: at, Evidence: []byte{0xff, 0xd8, 0xff, 0xe0, 1}, Clip: wav.Bytes()}
	if err := cp.vo.sink.ViolationOpened(context.Background(), v); err != nil {
		t.Fatal(err)
	}
	var list []store.Violation
	waitUntil(t, "both violations to be stored", 20*time.Second, func() bool {
		list, _ = cp.st.ListViolations(context.Background(), store.ViolationFilter{ExamID: exam.ID})
		return len(list) == 2
	})
	for _, row := range list {
		switch row.Key {
		case "old-entry":
			if row.ClipPath != "" || row.EvidencePath == "" {
				t.Errorf("the old entry stored as %+v", row)
			}
		case "talk-1":
			b, err := os.ReadFile(filepath.Join(data, row.ClipPath))
			if err != nil || !bytes.Equal(b, wav.Bytes()) {
				t.Errorf("clip %q: %d bytes, %v", row.ClipPath, len(b), err)
			}
		}
	}
}
