package eval

// The audio evaluation set: clips of real recorded voices (Debian
// alsa-utils), synthetic Chinese and English speech (espeak-ng) at several
// levels and distances, and sounds that are not speech (silence, noise,
// clicks, knocks, synthesized music, a single short word), each labeled
// "talking" or not. Like the video set it is built at eval time into the
// cache (never committed) and reused while its content hash holds.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// audioGeneratorVersion changes whenever the way clips are made changes
// outside their recipes.
const audioGeneratorVersion = "audio-generator 1"

// alsaSounds is where Debian's alsa-utils installs its test sounds.
const alsaSounds = "/usr/share/sounds/alsa"

// AudioSources are the recorded sounds the clips use, pinned like the
// photos: alsa-utils' channel-test voices (one man's voice saying "front
// center", "rear left" …, about 1.4 s each, 48 kHz mono) and its noise.
var AudioSources = []Source{
	{Name: "Front_Center.wav", SHA256: "0d61518bcd3f13b0c709a5298e939caf698b80d31d71d50475365ee0e5536cc9", Origin: "Debian alsa-utils, a man saying \"front center\""},
	{Name: "Front_Left.wav", SHA256: "9f97e8458785da2f0aa0ec60bf9cc81520cbf80a4683e83eca9cb5f2958e9fef", Origin: "Debian alsa-utils, \"front left\""},
	{Name: "Front_Right.wav", SHA256: "1fdea4d7003f1f7d3e48d3521aaab0a112c4ac570b02ddf1813abacac3070f6f", Origin: "Debian alsa-utils, \"front right\""},
	{Name: "Rear_Center.wav", SHA256: "9343207e3298813fdc4d26b7948e15a38533c37a9f232c3eff809b565398b330", Origin: "Debian alsa-utils, \"rear center\""},
	{Name: "Rear_Left.wav", SHA256: "1679e0557701864d55b742a0abd3fe5f50d95b1bfcb55ffad4b597dcc7e3c7b8", Origin: "Debian alsa-utils, \"rear left\""},
	{Name: "Rear_Right.wav", SHA256: "12828d125f692faa75c7445d52125dcc2c36f82c4f7a3ef49b8ae6afd74ada9d", Origin: "Debian alsa-utils, \"rear right\""},
	{Name: "Side_Left.wav", SHA256: "03dc7c641d7825417d2a261831715e945e95d87343fb037db910e7ce4f87a2a1", Origin: "Debian alsa-utils, \"side left\""},
	{Name: "Side_Right.wav", SHA256: "ecdd0329945f355960796a56f8126d5080ed93fdd2437c7eaddbbbd56137d7e9", Origin: "Debian alsa-utils, \"side right\""},
	{Name: "Noise.wav", SHA256: "0d897df3862192ea078efc1dd8fdc4f51fae9e93d3ed4c15e049829b0386729e", Origin: "Debian alsa-utils, broadband noise"},
}

// AudioClip is one labeled clip: Steps are the commands that make it
// (espeak-ng and sox), run in a scratch folder where $SRC/NAME is a
// pinned source and $OUT the clip (48 kHz mono 16-bit WAV).
type AudioClip struct {
	Name        string     `json:"name"`
	Kind        string     `json:"kind"`
	Description string     `json:"description"`
	Talking     bool       `json:"talking"`
	Steps       [][]string `json:"steps"`
}

// out48 is sox's output format for clips and intermediate files.
var out48 = []string{"-r", "48000", "-c", "1", "-b", "16"}

func soxCmd(inputs []string, out string, effects ...string) []string {
	if len(inputs) == 0 {
		inputs = []string{"-n"}
	}
	cmd := append([]string{"sox"}, inputs...)
	cmd = append(cmd, out48...)
	cmd = append(cmd, out)
	return append(cmd, effects...)
}

func src(name string) string { return "$SRC/" + name }

// distant is what a voice across the room sounds like: the highs lost,
// reverberation, quieter, over room noise.
func distant(in string, level string) [][]string {
	return [][]string{
		soxCmd([]string{in}, "far.wav", "lowpass", "2500", "reverb", "60", "50", "80", "gain", "-n", level),
		soxCmd(nil, "room.wav", "synth", "30", "pinknoise", "gain", "-n", "-50"),
		{"sox", "-m", "far.wav", "room.wav", "-r", "48000", "-c", "1", "-b", "16", "$OUT", "trim", "0", "$LEN(far.wav)"},
	}
}

// speech makes the steps for espeak-ng text in a voice at a speed, looped
// to at least 6 s with a short pause, at a peak level in dBFS.
func speechSteps(voice, speed, text, level string) [][]string {
	return [][]string{
		{"espeak-ng", "-v", voice, "-s", speed, "-w", "say.wav", text},
		soxCmd([]string{"say.wav"}, "loop.wav", "pad", "0", "0.4", "repeat", "2", "trim", "0", "7"),
		soxCmd([]string{"loop.wav"}, "$OUT", "gain", "-n", level),
	}
}

var alsaVoices = []string{"Front_Center.wav", "Front_Left.wav", "Front_Right.wav", "Rear_Center.wav",
	"Rear_Left.wav", "Rear_Right.wav", "Side_Left.wav", "Side_Right.wav"}

const (
	zhSentence1 = "请将双手放在桌面上，不要离开画面。"
	zhSentence2 = "我现在回答第三个问题，这个公式的答案是二十五。"
	enSentence1 = "The answer to the third question is twenty five, and the second one is wrong."
	enSentence2 = "Can you tell me what you wrote for number four? I think it was the integral."
)

// AudioSet is every clip of the audio evaluation set.
func AudioSet() []AudioClip {
	var set []AudioClip
	add := func(c AudioClip) { set = append(set, c) }

	// Real voices: the alsa words spoken one after another, as a
	// candidate reading out questions would, at three levels.
	for i, level := range []string{"-6", "-20", "-30"} {
		words := make([]string, 0, 5)
		for k := range 5 {
			words = append(words, src(alsaVoices[(i*3+k)%len(alsaVoices)]))
		}
		add(AudioClip{Name: "alsa_words_" + strings.TrimPrefix(level, "-") + "dB", Kind: "speech", Talking: true,
			Description: fmt.Sprintf("Five of alsa-utils' recorded words in a row (about 7 s), peak %s dBFS.", level),
			Steps:       [][]string{soxCmd(words, "$OUT", "gain", "-n", level)}})
	}
	add(AudioClip{Name: "alsa_words_far", Kind: "speech", Talking: true,
		Description: "Four recorded words from across the room: low-passed at 2.5 kHz, reverberant, peak -30 dBFS, over pink room noise at -50 dBFS.",
		Steps: append([][]string{soxCmd([]string{src("Rear_Left.wav"), src("Side_Right.wav"), src("Front_Right.wav"), src("Rear_Center.wav")}, "words.wav")},
			distant("words.wav", "-30")...)})
	add(AudioClip{Name: "alsa_words_noisy", Kind: "speech", Talking: true,
		Description: "Five recorded words at -20 dBFS peak over alsa-utils' Noise.wav 26 dB lower (a noisy room).",
		Steps: [][]string{
			soxCmd([]string{src("Side_Left.wav"), src("Front_Center.wav"), src("Rear_Right.wav"), src("Front_Left.wav"), src("Side_Right.wav")}, "words.wav", "gain", "-n", "-20"),
			soxCmd([]string{src("Noise.wav")}, "noise.wav", "repeat", "6", "gain", "-n", "-46"),
			{"sox", "-m", "words.wav", "noise.wav", "-r", "48000", "-c", "1", "-b", "16", "$OUT", "trim", "0", "$LEN(words.wav)"},
		}})

	// Synthetic speech, Chinese and English, three speeds, three levels.
	type say struct{ voice, speed, text, level, tag string }
	for _, s := range []say{
		{"zh", "175", zhSentence1, "-6", "zh_normal_6dB"},
		{"zh", "130", zhSentence2, "-20", "zh_slow_20dB"},
		{"zh", "230", zhSentence2, "-30", "zh_fast_30dB"},
		{"en", "175", enSentence1, "-20", "en_normal_20dB"},
		{"en", "130", enSentence2, "-6", "en_slow_6dB"},
		{"en", "230", enSentence1, "-30", "en_fast_30dB"},
	} {
		add(AudioClip{Name: "espeak_" + s.tag, Kind: "speech", Talking: true,
			Description: fmt.Sprintf("espeak-ng voice %s at %s words/min, looped to 7 s, peak %s dBFS: %q.", s.voice, s.speed, s.level, s.text),
			Steps:       speechSteps(s.voice, s.speed, s.text, s.level)})
	}
	for _, s := range []say{{"zh", "160", zhSentence1, "", "zh_far"}, {"en", "160", enSentence2, "", "en_far"}} {
		add(AudioClip{Name: "espeak_" + s.tag, Kind: "speech", Talking: true,
			Description: fmt.Sprintf("espeak-ng voice %s from across the room (low-passed, reverberant, peak -30 dBFS over room noise at -50): %q.", s.voice, s.text),
			Steps:       append(speechSteps(s.voice, s.speed, s.text, "-10")[:2], distant("loop.wav", "-30")...)})
	}

	// Not talking.
	add(AudioClip{Name: "silence", Kind: "silence", Description: "8 s of digital silence (a muted microphone).",
		Steps: [][]string{soxCmd(nil, "$OUT", "trim", "0", "8")}})
	for _, n := range []struct{ color, level string }{
		{"whitenoise", "-20"}, {"whitenoise", "-40"}, {"pinknoise", "-10"}, {"pinknoise", "-35"}, {"brownnoise", "-10"}, {"brownnoise", "-30"},
	} {
		add(AudioClip{Name: strings.TrimSuffix(n.color, "noise") + "_noise_" + strings.TrimPrefix(n.level, "-") + "dB", Kind: "noise",
			Description: fmt.Sprintf("8 s of %s noise (sox synth), peak %s dBFS.", strings.TrimSuffix(n.color, "noise"), n.level),
			Steps:       [][]string{soxCmd(nil, "$OUT", "synth", "8", n.color, "gain", "-n", n.level)}})
	}
	add(AudioClip{Name: "alsa_noise", Kind: "noise", Description: "alsa-utils' recorded Noise.wav looped to about 8 s, peak -12 dBFS.",
		Steps: [][]string{soxCmd([]string{src("Noise.wav")}, "$OUT", "repeat", "5", "gain", "-n", "-12")}})
	add(AudioClip{Name: "typing", Kind: "clicks", Description: "Keyboard-like typing: 3 ms noise clicks, band-passed, at irregular gaps of 80–350 ms for 8 s, peak -12 dBFS, over room noise.",
		Steps: clickSteps("typing", []float64{0.12, 0.09, 0.21, 0.15, 0.35, 0.08, 0.18, 0.11, 0.27, 0.14, 0.1, 0.32}, "0.003", "bandpass 3000 2000", 8)})
	add(AudioClip{Name: "knocks", Kind: "clicks", Description: "Knocks on a desk: 40 ms decaying 150 Hz thumps with a noise attack, 0.3–1.1 s apart for 8 s, peak -6 dBFS.",
		Steps: knockSteps()})
	add(AudioClip{Name: "music_chords", Kind: "music", Description: "Synthesized music (sox pluck chords C–Am–F–G, two beats each, at 100 bpm), 8 s, peak -12 dBFS; no Debian package the install script lists ships a music file.",
		Steps: musicSteps()})
	add(AudioClip{Name: "music_melody", Kind: "music", Description: "Synthesized melody of sine notes with vibrato over a sustained chord, 8 s, peak -16 dBFS.",
		Steps: melodySteps()})

	// Short speech that must not alert: one word, then quiet.
	add(AudioClip{Name: "alsa_one_word", Kind: "short speech", Description: "One recorded word (\"front center\", about 1 s of speech), then 6 s of quiet room noise.",
		Steps: [][]string{soxCmd([]string{src("Front_Center.wav")}, "$OUT", "gain", "-n", "-12", "pad", "0.5", "6")}})
	add(AudioClip{Name: "espeak_zh_one_word", Kind: "short speech", Description: "espeak-ng zh says \"好的\" once, then 6 s of silence.",
		Steps: [][]string{{"espeak-ng", "-v", "zh", "-w", "say.wav", "好的"}, soxCmd([]string{"say.wav"}, "$OUT", "gain", "-n", "-6", "pad", "0.5", "6")}})
	add(AudioClip{Name: "espeak_en_two_words", Kind: "short speech", Description: "espeak-ng en says \"okay, thanks\" once (about 1 s), then 6 s of silence.",
		Steps: [][]string{{"espeak-ng", "-v", "en", "-w", "say.wav", "okay, thanks"}, soxCmd([]string{"say.wav"}, "$OUT", "gain", "-n", "-6", "pad", "0.5", "6")}})
	add(AudioClip{Name: "two_words_apart", Kind: "short speech", Description: "Two recorded words 5 s apart (each about 1 s of speech: never 2 s within 5 s).",
		Steps: [][]string{soxCmd([]string{src("Front_Left.wav")}, "a.wav", "pad", "0", "4.6"),
			soxCmd([]string{"a.wav", src("Rear_Right.wav")}, "$OUT", "gain", "-n", "-12", "pad", "0", "1")}})
	return set
}

// clickSteps makes clicks of the given length separated by the gaps
// (cycled) until seconds are filled.
func clickSteps(name string, gaps []float64, length, filter string, seconds float64) [][]string {
	steps := [][]string{soxCmd(nil, "click.wav", append([]string{"synth", length, "whitenoise"}, append(strings.Fields(filter), "fade", "q", "0.0005", length, "0.002")...)...)}
	var inputs []string
	t := 0.0
	for i := 0; t < seconds; i++ {
		g := gaps[i%len(gaps)]
		f := fmt.Sprintf("c%d.wav", i)
		steps = append(steps, soxCmd([]string{"click.wav"}, f, "pad", "0", fmt.Sprint(g)))
		inputs = append(inputs, f)
		t += g
	}
	steps = append(steps, soxCmd(inputs, "clicks.wav", "gain", "-n", "-12"),
		soxCmd(nil, "room.wav", "synth", "10", "pinknoise", "gain", "-n", "-55"),
		[]string{"sox", "-m", "clicks.wav", "room.wav", "-r", "48000", "-c", "1", "-b", "16", "$OUT", "trim", "0", fmt.Sprint(seconds)})
	return steps
}

func knockSteps() [][]string {
	steps := [][]string{
		soxCmd(nil, "thump.wav", "synth", "0.04", "sine", "150", "fade", "q", "0.001", "0.04", "0.035"),
		soxCmd(nil, "attack.wav", "synth", "0.005", "brownnoise", "fade", "q", "0.0005", "0.005", "0.004"),
		{"sox", "-m", "thump.wav", "attack.wav", "-r", "48000", "-c", "1", "-b", "16", "knock.wav"},
	}
	var inputs []string
	for i, g := range []float64{0.3, 0.9, 0.5, 1.1, 0.4, 0.7, 0.3, 1.0, 0.6, 0.8, 0.5, 0.9} {
		f := fmt.Sprintf("k%d.wav", i)
		steps = append(steps, soxCmd([]string{"knock.wav"}, f, "pad", "0", fmt.Sprint(g)))
		inputs = append(inputs, f)
	}
	return append(steps, soxCmd(inputs, "$OUT", "gain", "-n", "-6", "trim", "0", "8"))
}

func musicSteps() [][]string {
	chords := [][3]string{{"C4", "E4", "G4"}, {"A3", "C4", "E4"}, {"F3", "A3", "C4"}, {"G3", "B3", "D4"}}
	var steps [][]string
	var inputs []string
	for i := range 8 { // 8 chords of 1.2 s
		c := chords[i%len(chords)]
		f := fmt.Sprintf("chord%d.wav", i)
		steps = append(steps, []string{"sox", "-n", "-r", "48000", "-c", "3", "-b", "16", "tmp3.wav",
			"synth", "1.2", "pluck", c[0], "pluck", c[1], "pluck", c[2]},
			soxCmd([]string{"tmp3.wav"}, f, "remix", "-"))
		inputs = append(inputs, f)
	}
	return append(steps, soxCmd(inputs, "$OUT", "gain", "-n", "-12", "trim", "0", "8"))
}

func melodySteps() [][]string {
	notes := []string{"E5", "D5", "C5", "D5", "E5", "E5", "E5", "D5", "D5", "D5", "E5", "G5", "G5", "E5", "D5", "C5"}
	var steps [][]string
	var inputs []string
	for i, n := range notes {
		f := fmt.Sprintf("n%d.wav", i)
		steps = append(steps, soxCmd(nil, f, "synth", "0.5", "sine", n, "tremolo", "6", "20", "fade", "q", "0.02", "0.5", "0.1"))
		inputs = append(inputs, f)
	}
	return append(steps,
		soxCmd(inputs, "tune.wav"),
		[]string{"sox", "-n", "-r", "48000", "-c", "3", "-b", "16", "pad3.wav", "synth", "8", "sine", "C3", "sine", "G3", "sine", "E4"},
		soxCmd([]string{"pad3.wav"}, "pad.wav", "remix", "-", "gain", "-n", "-20"),
		[]string{"sox", "-m", "tune.wav", "pad.wav", "-r", "48000", "-c", "1", "-b", "16", "$OUT", "gain", "-n", "-16", "trim", "0", "8"})
}

// BuiltAudioClip is one clip on disk.
type BuiltAudioClip struct {
	Clip AudioClip
	Path string
}

// BuiltAudioSet is the audio set on disk.
type BuiltAudioSet struct {
	Dir    string
	Hash   string
	Reused bool
	Clips  []BuiltAudioClip
	// Tools are the versions of espeak-ng and sox that made it.
	Tools string
}

// toolVersions names the generators: another espeak-ng or sox makes
// other clips, so they are part of the set's hash.
func toolVersions(ctx context.Context) (string, error) {
	var parts []string
	for _, c := range [][]string{{"espeak-ng", "--version"}, {"sox", "--version"}} {
		if _, err := exec.LookPath(c[0]); err != nil {
			return "", fmt.Errorf("the audio set needs %s (scripts/install.sh test installs it): %w", c[0], err)
		}
		out, err := exec.CommandContext(ctx, c[0], c[1:]...).Output()
		if err != nil {
			return "", fmt.Errorf("%s: %w", strings.Join(c, " "), err)
		}
		parts = append(parts, strings.TrimSpace(strings.SplitN(string(out), "\n", 2)[0]))
	}
	return strings.Join(parts, "; "), nil
}

// AudioSetHash covers the generator version, the tools, the pinned
// sources and every clip's recipe and label.
func AudioSetHash(tools string) (string, error) {
	h := sha256.New()
	fmt.Fprintln(h, audioGeneratorVersion, tools)
	for _, s := range AudioSources {
		fmt.Fprintf(h, "%s %s\n", s.Name, s.SHA256)
	}
	if err := json.NewEncoder(h).Encode(AudioSet()); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// BuildAudio makes the audio set under cacheDir/audio-set-HASH (sources
// checked against their pins in cacheDir/audio-sources), reusing a
// complete build of the same content.
func BuildAudio(ctx context.Context, cacheDir string, log io.Writer) (*BuiltAudioSet, error) {
	tools, err := toolVersions(ctx)
	if err != nil {
		return nil, err
	}
	// The clips' steps run in a scratch folder, so the sources they name
	// must not be relative to ours (make eval passes -cache .cache/eval).
	cacheDir, err = filepath.Abs(cacheDir)
	if err != nil {
		return nil, fmt.Errorf("audio set folder: %w", err)
	}
	srcDir := filepath.Join(cacheDir, "audio-sources")
	if err := os.MkdirAll(srcDir, 0o755); err != nil {
		return nil, err
	}
	for _, s := range AudioSources {
		p := filepath.Join(srcDir, s.Name)
		if ok, err := hasHash(p, s.SHA256); err != nil {
			return nil, err
		} else if ok {
			continue
		}
		data, err := os.ReadFile(filepath.Join(alsaSounds, s.Name))
		if err != nil {
			return nil, fmt.Errorf("audio source %s: %w; install Debian's alsa-utils (scripts/install.sh test does)", s.Name, err)
		}
		if err := writeVerified(p, data, s); err != nil {
			return nil, err
		}
	}
	hash, err := AudioSetHash(tools)
	if err != nil {
		return nil, err
	}
	set := &BuiltAudioSet{Dir: filepath.Join(cacheDir, "audio-set-"+hash[:16]), Hash: hash, Tools: tools}
	clips := AudioSet()
	complete := filepath.Join(set.Dir, "COMPLETE")
	if _, err := os.Stat(complete); err == nil {
		set.Reused = true
		for _, c := range clips {
			p := filepath.Join(set.Dir, c.Name+".wav")
			if _, err := os.Stat(p); err != nil {
				set.Reused = false
				break
			}
			set.Clips = append(set.Clips, BuiltAudioClip{Clip: c, Path: p})
		}
		if set.Reused {
			return set, nil
		}
		set.Clips = nil
	}
	if err := os.RemoveAll(set.Dir); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(set.Dir, 0o755); err != nil {
		return nil, err
	}
	for _, c := range clips {
		if log != nil {
			fmt.Fprintf(log, "eval: building audio clip %s\n", c.Name)
		}
		p := filepath.Join(set.Dir, c.Name+".wav")
		if err := makeClip(ctx, c, srcDir, p); err != nil {
			return nil, err
		}
		truth, _ := json.MarshalIndent(c, "", "  ")
		if err := os.WriteFile(filepath.Join(set.Dir, c.Name+".truth.json"), append(truth, '\n'), 0o644); err != nil {
			return nil, err
		}
		set.Clips = append(set.Clips, BuiltAudioClip{Clip: c, Path: p})
	}
	if err := os.WriteFile(complete, []byte(hash+"\n"), 0o644); err != nil {
		return nil, err
	}
	entries, _ := os.ReadDir(cacheDir)
	for _, e := range entries {
		if p := filepath.Join(cacheDir, e.Name()); e.IsDir() && strings.HasPrefix(e.Name(), "audio-set-") && p != set.Dir {
			os.RemoveAll(p)
		}
	}
	return set, nil
}

// makeClip runs a clip's steps in a scratch folder.
func makeClip(ctx context.Context, c AudioClip, srcDir, out string) error {
	work, err := os.MkdirTemp("", "invigil-audio-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	tmpOut := filepath.Join(work, "out.wav")
	for _, step := range c.Steps {
		args := make([]string, len(step))
		for i, a := range step {
			switch {
			case a == "$OUT":
				a = tmpOut
			case strings.HasPrefix(a, "$SRC/"):
				a = filepath.Join(srcDir, strings.TrimPrefix(a, "$SRC/"))
			case strings.HasPrefix(a, "$LEN(") && strings.HasSuffix(a, ")"):
				d, err := exec.CommandContext(ctx, "soxi", "-D", filepath.Join(work, a[5:len(a)-1])).Output()
				if err != nil {
					return fmt.Errorf("audio clip %s: length of %s: %w", c.Name, a, err)
				}
				a = strings.TrimSpace(string(d))
			}
			args[i] = a
		}
		cmd := exec.CommandContext(ctx, args[0], args[1:]...)
		cmd.Dir = work
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("audio clip %s: %s: %w: %s", c.Name, strings.Join(step, " "), err, strings.TrimSpace(stderr.String()))
		}
	}
	data, err := os.ReadFile(tmpOut)
	if err != nil {
		return fmt.Errorf("audio clip %s: no output: %w", c.Name, err)
	}
	return os.WriteFile(out, data, 0o644)
}
