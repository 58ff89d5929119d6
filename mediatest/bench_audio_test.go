package mediatest_test

import (
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"syscall"
	"testing"
	"time"

	"invigil/audio"
	"invigil/internal/testassets"
	"invigil/opus"
	"invigil/simulate"
	"invigil/vad"
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

// printAudioCost prints the audio path's cost: its CPU alone on one thread
// (audioPathCPU), then in the full stack the pipeline's audio goroutines'
// busy time per candidate-second (wall time: it also counts waiting for a
// core and for the candidate's analysis lock to step the rules) and the
// server's whole extra CPU over the same load without microphones (that
// adds forwarding and recording the Opus track, and for the speaking
// microphone the talking violations' evidence).
func printAudioCost(n int, none, quiet, speaking costResult, quietCPU, speakingCPU float64) {
	ms := func(v float64) string { return fmt.Sprintf("%6.2f", v*1000) }
	fmt.Printf("\nAudio path per candidate-second (Opus 20 ms, 32 kb/s mono), alone on one thread: decode (straight to 16 kHz) + VAD %s ms CPU with a quiet microphone, %s ms speaking half the time\n",
		ms(quietCPU), ms(speakingCPU))
	fmt.Printf("In the full stack as above, measured with %d candidates:\n", n)
	fmt.Printf("  %-30s %s ms audio goroutines busy (wall) per candidate-second; server CPU %+.1f ms over no microphone; %.1f chunks per candidate-second: %.0f%% speech, %.0f%% gated\n",
		"quiet microphone", ms(quiet.audioBusy), (quiet.cpu-none.cpu)*1000, quiet.chunksPerSec, 100*quiet.speechShare, 100*quiet.gatedShare)
	fmt.Printf("  %-30s %s ms audio goroutines busy (wall) per candidate-second; server CPU %+.1f ms over no microphone; %.1f chunks per candidate-second: %.0f%% speech, %.0f%% gated\n",
		"speaking half the time", ms(speaking.audioBusy), (speaking.cpu-none.cpu)*1000, speaking.chunksPerSec, 100*speaking.speechShare, 100*speaking.gatedShare)
	fmt.Printf("  (server CPU per candidate-second: no microphone %s ms, quiet %s ms, speaking %s ms; whole machine busy %.2f, %.2f, %.2f cores)\n",
		ms(none.cpu), ms(quiet.cpu), ms(speaking.cpu), none.machine, quiet.machine, speaking.machine)
}

// threadCPU is the calling OS thread's user+system CPU time.
func threadCPU(b testing.TB) time.Duration {
	const rusageThread = 1 // RUSAGE_THREAD (Linux)
	var ru syscall.Rusage
	if err := syscall.Getrusage(rusageThread, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// audioPathCPU runs the pipeline's listening chain on one microphone file's
// packets, as the benchmark's candidates send them (simulate.FileAudio):
// libopus decode straight to 16 kHz → Silero VAD with its energy
// gate (ONNX Runtime on the calling thread), for secs seconds of audio on
// one locked OS thread, and returns that thread's CPU per second of audio.
// Unlike the audio goroutines' busy time in the full stack, this is CPU
// time, so other work on the cores does not inflate it.
func audioPathCPU(b testing.TB, mic string, secs int) float64 {
	b.Helper()
	a, err := simulate.FileAudio(mic)
	if err != nil {
		b.Fatal(err)
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	dec, err := opus.NewDecoderAt(vad.SampleRate)
	if err != nil {
		b.Fatal(err)
	}
	defer dec.Close()
	det, err := vad.New(vad.DefaultConfig(testassets.ModelsDir(b)))
	if err != nil {
		b.Fatal(err)
	}
	defer det.Close()
	var pcm []float32
	packets := secs * 50
	c0 := threadCPU(b)
	for i := 0; i < packets; i++ {
		if pcm, err = dec.AppendDecode(pcm[:0], a.Packets[i%len(a.Packets)]); err != nil {
			b.Fatal(err)
		}
		if _, err := det.Process(pcm); err != nil {
			b.Fatal(err)
		}
	}
	return (threadCPU(b) - c0).Seconds() / float64(secs)
}
