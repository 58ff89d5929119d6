package simulate

import (
	"bytes"
	"encoding/binary"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"invigil/audio"
	"invigil/opus"
)

const frontCenter = "/usr/share/sounds/alsa/Front_Center.wav" // Debian alsa-utils: a real voice

// ffmpegOgg encodes a WAV file to Ogg Opus with ffmpeg's libopus, with the
// extra output options given, and returns the file's path.
func ffmpegOgg(t testing.TB, dir, name, in string, opts ...string) string {
	t.Helper()
	ffmpeg, err := exec.LookPath("ffmpeg")
	if err != nil {
		t.Fatal("ffmpeg not on PATH (scripts/install.sh installs it)")
	}
	out := filepath.Join(dir, name)
	args := append([]string{"-nostdin", "-hide_banner", "-loglevel", "error", "-i", in, "-c:a", "libopus", "-b:a", "32k"}, opts...)
	if b, err := exec.Command(ffmpeg, append(args, "-y", out)...).CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg: %v\n%s", err, b)
	}
	return out
}

// Pages of about a second (ffmpeg's and opusenc's default) split into the
// same 20 ms packets, byte for byte, as a file written one packet per page.
func TestFileAudioOggManyPacketsPerPage(t *testing.T) {
	dir := t.TempDir()
	onePer := ffmpegOgg(t, dir, "one.ogg", frontCenter, "-ac", "1", "-frame_duration", "20", "-page_duration", "20000")
	many := ffmpegOgg(t, dir, "many.ogg", frontCenter, "-ac", "1", "-frame_duration", "20")
	a, err := FileAudio(onePer)
	if err != nil {
		t.Fatal(err)
	}
	b, err := FileAudio(many)
	if err != nil {
		t.Fatal(err)
	}
	o, err := readOggOpusFile(t, many)
	if err != nil {
		t.Fatal(err)
	}
	if pages := bytes.Count(mustRead(t, many), []byte("OggS")); pages >= len(b.Packets)/2 {
		t.Fatalf("%d pages for %d packets: the file does not hold several packets per page", pages, len(b.Packets))
	}
	if len(a.Packets) < 60 || len(a.Packets) != len(b.Packets) || len(o.packets) != len(b.Packets) {
		t.Fatalf("%d packets one per page, %d from pages of a second", len(a.Packets), len(b.Packets))
	}
	for i := range a.Packets {
		if !bytes.Equal(a.Packets[i], b.Packets[i]) {
			t.Fatalf("packet %d differs between the two pagings", i)
		}
	}
}

// Packets of 60 ms (or any framing but 20 ms) are decoded and encoded
// again in 20 ms frames: same length of audio, same loudness.
func TestFileAudioOggReframes(t *testing.T) {
	dir := t.TempDir()
	path := ffmpegOgg(t, dir, "60ms.ogg", frontCenter, "-ac", "1", "-frame_duration", "60")
	a, err := FileAudio(path)
	if err != nil {
		t.Fatal(err)
	}
	w, err := audio.ReadWAVFile(frontCenter)
	if err != nil {
		t.Fatal(err)
	}
	want := int((w.Duration() + opusFrame - 1) / opusFrame)
	if len(a.Packets) < want-3 || len(a.Packets) > want+3 {
		t.Errorf("%d packets of 20 ms for %v of audio, want about %d", len(a.Packets), w.Duration(), want)
	}
	dec, err := opus.NewDecoder()
	if err != nil {
		t.Fatal(err)
	}
	defer dec.Close()
	var pcm []float32
	for i, p := range a.Packets {
		info, err := opus.ParsePacket(p)
		if err != nil || info.Samples() != opusFrameTS {
			t.Fatalf("packet %d: %+v, %v; want 20 ms", i, info, err)
		}
		if pcm, err = dec.AppendDecode(pcm, p); err != nil {
			t.Fatal(err)
		}
	}
	if got, orig := power(pcm), power(w.Mono()); got < orig/2 || got > orig*2 {
		t.Errorf("mean power %.3g after two Opus passes, %.3g in the file", got, orig)
	}
}

func power(x []float32) float64 {
	var s float64
	for _, v := range x {
		s += float64(v) * float64(v)
	}
	return s / float64(len(x))
}

func mustRead(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func readOggOpusFile(t testing.TB, path string) (*oggOpus, error) {
	return readOggOpus(bytes.NewReader(mustRead(t, path)))
}

// Broken, foreign and unsupported files get an error that says what is
// wrong, before any connection is made.
func TestFileAudioRefusesBadFiles(t *testing.T) {
	dir := t.TempDir()
	good := mustRead(t, ffmpegOgg(t, dir, "good.ogg", frontCenter, "-ac", "1"))
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	corrupt := slices.Clone(good)
	corrupt[len(corrupt)/2] ^= 0x55
	var wav bytes.Buffer
	if err := audio.WriteWAV(&wav, &audio.WAV{SampleRate: 16000, Channels: 1}); err != nil {
		t.Fatal(err)
	}
	eightBit := slices.Clone(wav.Bytes())
	eightBit[34] = 8 // bits per sample
	cases := map[string]string{
		write("empty.wav", nil):                           "too short",
		write("corrupt.ogg", corrupt):                     "CRC mismatch",
		write("truncated.ogg", good[:len(good)*2/3]):      "truncated",
		write("headless.ogg", good[:4]):                   "page header unreadable",
		write("empty-data.wav", wav.Bytes()):              "no audio samples",
		write("8bit.wav", eightBit):                       "8-bit",
		write("mp3ish.mp3", []byte("ID3\x04\x00 not it")): "not a WAV (RIFF) or Ogg Opus",
	}
	if vorbis, err := exec.Command("ffmpeg", "-nostdin", "-loglevel", "error", "-i", frontCenter, "-c:a", "libvorbis",
		"-y", filepath.Join(dir, "vorbis.ogg")).CombinedOutput(); err == nil {
		cases[filepath.Join(dir, "vorbis.ogg")] = "not Opus"
	} else {
		t.Logf("no Vorbis case (ffmpeg: %s)", strings.TrimSpace(string(vorbis)))
	}
	for path, want := range cases {
		if _, err := FileAudio(path); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("FileAudio(%s): %v, want an error with %q", filepath.Base(path), err, want)
		}
	}
}

// FuzzReadOggOpus: no input makes the reader panic or keep more than its
// bounds, and what it accepts is an Opus stream's audio packets.
func FuzzReadOggOpus(f *testing.F) {
	dir := f.TempDir()
	f.Add(mustRead(f, ffmpegOgg(f, dir, "one.ogg", frontCenter, "-ac", "1", "-t", "0.3", "-page_duration", "20000")))
	f.Add(mustRead(f, ffmpegOgg(f, dir, "many.ogg", frontCenter, "-ac", "2", "-t", "0.3", "-frame_duration", "60")))
	f.Add([]byte("OggS"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		// Most mutations break a page's CRC; mending it lets the fuzzer
		// reach the lacing, the packet joins and the Opus headers.
		checkOggOpus(t, b)
		checkOggOpus(t, mendCRCs(b))
	})
}

func checkOggOpus(t *testing.T, b []byte) {
	o, err := readOggOpus(bytes.NewReader(b))
	if err != nil {
		return
	}
	if len(o.packets) == 0 || o.channels < 1 || o.channels > 2 {
		t.Fatalf("accepted %d packets, %d channels", len(o.packets), o.channels)
	}
	for _, p := range o.packets {
		if len(p) > maxOggPacket {
			t.Fatalf("packet of %d bytes", len(p))
		}
	}
	// Re-encoding is bounded by maxAudioFile, but a few bytes of 120 ms
	// packets make minutes of audio: keep the fuzzer's inputs quick.
	if len(o.packets) <= 64 {
		if a, err := readOpusPackets(bytes.NewReader(b)); err == nil && len(a.Packets) == 0 {
			t.Fatal("accepted a stream of no packets")
		}
	}
}

// mendCRCs returns b with the CRC of every page it can walk recomputed.
func mendCRCs(b []byte) []byte {
	b = slices.Clone(b)
	for off := 0; off+27 <= len(b) && string(b[off:off+4]) == "OggS"; {
		segs := int(b[off+26])
		if off+27+segs > len(b) {
			break
		}
		size := 0
		for _, l := range b[off+27 : off+27+segs] {
			size += int(l)
		}
		end := off + 27 + segs + size
		if end > len(b) {
			break
		}
		binary.LittleEndian.PutUint32(b[off+22:], 0)
		binary.LittleEndian.PutUint32(b[off+22:], oggCRC(0, b[off:end]))
		off = end
	}
	return b
}

// A stereo 44.1 kHz WAV (sox from the real voice) is mixed to mono,
// resampled to 48 kHz and encoded: the same length and loudness.
func TestFileAudioWAVStereo44k(t *testing.T) {
	path := filepath.Join(t.TempDir(), "stereo.wav")
	if out, err := exec.Command("sox", frontCenter, "-r", "44100", "-c", "2", "-b", "16", path).CombinedOutput(); err != nil {
		t.Fatalf("sox (scripts/install.sh installs it): %v\n%s", err, out)
	}
	w, err := audio.ReadWAVFile(path)
	if err != nil || w.Channels != 2 || w.SampleRate != 44100 {
		t.Fatalf("%+v, %v", w, err)
	}
	a, err := FileAudio(path)
	if err != nil {
		t.Fatal(err)
	}
	if want := int((w.Duration() + opusFrame - 1) / opusFrame); len(a.Packets) != want {
		t.Errorf("%d packets for %v, want %d", len(a.Packets), w.Duration(), want)
	}
	dec, err := opus.NewDecoder()
	if err != nil {
		t.Fatal(err)
	}
	defer dec.Close()
	var pcm []float32
	for _, p := range a.Packets {
		if pcm, err = dec.AppendDecode(pcm, p); err != nil {
			t.Fatal(err)
		}
	}
	if got, orig := power(pcm), power(w.Mono()); got < orig/2 || got > orig*2 {
		t.Errorf("mean power %.3g after resampling and Opus, %.3g in the file", got, orig)
	}
}
