package mediatest_test

import (
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"invigil/audio"
)

// The benchmark's microphones, as 48 kHz mono WAV files the load generator
// encodes to Opus (simulate.FileAudio) and loops:
//
//   - quiet: a quiet room through a real microphone, white noise at
//     -66 dBFS RMS (under the speech detector's energy gate, as most of an
//     exam is);
//   - speaking: 2 s of espeak-ng speech then 2 s of the same quiet room,
//     so speech is heard half the time. The 4 s loop divides the cost
//     window (8 s) and a ramp window (12 s), so every window holds exactly
//     half speech whatever the candidates' phase.
const (
	micRate      = 48000
	micNoiseRMS  = 0.0005
	micHalfSecs  = 2
	micSpeechTxt = "请将双手放在桌面上，不要离开画面，第三题的答案是选项二"
)

func quietRoom(rng *rand.Rand, n int) []float32 {
	out := make([]float32, n)
	for i := range out {
		out[i] = float32(rng.NormFloat64() * micNoiseRMS)
	}
	return out
}

func writeMic(b testing.TB, path string, pcm []float32) string {
	b.Helper()
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	if err := audio.WriteWAV(f, &audio.WAV{SampleRate: micRate, Channels: 1, Samples: audio.FromFloat(pcm)}); err != nil {
		b.Fatal(err)
	}
	return path
}

// benchMics writes the quiet and the speaking microphone into dir.
func benchMics(b testing.TB, dir string) (quiet, speaking string) {
	b.Helper()
	rng := rand.New(rand.NewPCG(1, 2))
	quiet = writeMic(b, filepath.Join(dir, "mic-quiet.wav"), quietRoom(rng, 2*micHalfSecs*micRate))

	raw := filepath.Join(dir, "espeak.wav")
	if out, err := exec.Command("espeak-ng", "-v", "zh", "-s", "190", "-w", raw, micSpeechTxt).CombinedOutput(); err != nil {
		b.Fatalf("espeak-ng (scripts/install.sh installs it): %v\n%s", err, out)
	}
	w, err := audio.ReadWAVFile(raw)
	if err != nil {
		b.Fatal(err)
	}
	if w.Duration().Seconds() < micHalfSecs {
		b.Fatalf("espeak-ng made %v of speech, want at least %d s", w.Duration(), micHalfSecs)
	}
	// espeak-ng speaks at 22050 Hz: take 2 s of it at 48 kHz (nearest
	// sample is enough here; FileAudio resamples the file properly, this
	// only builds it), over the room noise, then 2 s of the room alone.
	mono := w.Mono()
	pcm := quietRoom(rng, 2*micHalfSecs*micRate)
	for i := 0; i < micHalfSecs*micRate; i++ {
		pcm[i] += mono[int(int64(i)*int64(w.SampleRate)/micRate)]
	}
	speaking = writeMic(b, filepath.Join(dir, "mic-speaking.wav"), pcm)
	return quiet, speaking
}

// printAudioCost prints the audio path's cost: the pipeline's audio
// goroutines' busy time (decode + resample + VAD + rules step) per
// candidate-second, and the server's whole extra CPU over the same load
// without microphones (that adds the SFU forwarding and recording the
// Opus track).
func printAudioCost(n int, none, quiet, speaking costResult) {
	ms := func(v float64) string { return fmt.Sprintf("%6.2f", v*1000) }
	fmt.Printf("\nAudio path per candidate (Opus 20 ms, 32 kb/s mono; the full stack as above), measured with %d candidates:\n", n)
	fmt.Printf("  %-30s %s ms busy per candidate-second (decode + resample + VAD); server CPU %+.1f ms over no microphone; chunks: %.0f%% speech, %.0f%% gated\n",
		"quiet microphone", ms(quiet.audioBusy), (quiet.cpu-none.cpu)*1000, 100*quiet.speechShare, 100*quiet.gatedShare)
	fmt.Printf("  %-30s %s ms busy per candidate-second (decode + resample + VAD); server CPU %+.1f ms over no microphone; chunks: %.0f%% speech, %.0f%% gated\n",
		"speaking half the time", ms(speaking.audioBusy), (speaking.cpu-none.cpu)*1000, 100*speaking.speechShare, 100*speaking.gatedShare)
	fmt.Printf("  (server CPU per candidate-second: no microphone %s ms, quiet %s ms, speaking %s ms; whole machine busy %.2f, %.2f, %.2f cores)\n",
		ms(none.cpu), ms(quiet.cpu), ms(speaking.cpu), none.machine, quiet.machine, speaking.machine)
}
