package simulate

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"invigil/audio"
	"invigil/opus"
)

// A real recorded voice (Debian alsa-utils) becomes 20 ms Opus packets
// that decode back to the same length and keep its level.
func TestFileAudioWAV(t *testing.T) {
	const voice = "/usr/share/sounds/alsa/Front_Center.wav"
	w, err := audio.ReadWAVFile(voice)
	if err != nil {
		t.Fatalf("%v (scripts/install.sh installs alsa-utils)", err)
	}
	a, err := FileAudio(voice)
	if err != nil {
		t.Fatal(err)
	}
	wantPackets := int((w.Duration() + opusFrame - 1) / opusFrame)
	if len(a.Packets) != wantPackets {
		t.Errorf("%d packets for %s of audio, want %d", len(a.Packets), w.Duration(), wantPackets)
	}
	dec, err := opus.NewDecoder()
	if err != nil {
		t.Fatal(err)
	}
	defer dec.Close()
	var energy float64
	samples := 0
	for i, p := range a.Packets {
		pcm, err := dec.Decode(p)
		if err != nil {
			t.Fatalf("packet %d: %v", i, err)
		}
		samples += len(pcm)
		for _, s := range pcm {
			energy += float64(s) * float64(s)
		}
	}
	if samples != wantPackets*opusFrameTS {
		t.Errorf("decoded %d samples, want %d", samples, wantPackets*opusFrameTS)
	}
	var orig float64
	mono := w.Mono()
	for _, s := range mono {
		orig += float64(s) * float64(s)
	}
	origRMS := orig / float64(len(mono))
	gotRMS := energy / float64(samples)
	if gotRMS < origRMS*0.5 || gotRMS > origRMS*2 {
		t.Errorf("mean power %.3g after Opus, %.3g in the file", gotRMS, origRMS)
	}
}

func TestFileAudioRefusesOthers(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	cases := map[string]string{
		write("text.wav", []byte("hello, not audio")):                   "not a WAV (RIFF) or Ogg Opus",
		write("short.wav", []byte("RI")):                                "too short",
		write("riff.wav", []byte("RIFF\x04\x00\x00\x00WAVE")):           "audio file",
		write("ogg.ogg", []byte("OggS\x00\x02garbage garbage garbage")): "Ogg",
		filepath.Join(dir, "missing.wav"):                               "no such file",
	}
	for path, want := range cases {
		if _, err := FileAudio(path); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("FileAudio(%s): %v, want an error with %q", filepath.Base(path), err, want)
		}
	}
}
