// Package simulate makes synthetic candidates: Go participants of the SFU
// that join with a candidate's token and publish a picture as their camera,
// the way a browser would, so the media plane can be tested end to end and
// loaded without browsers.
//
// A Camera renders what a scenario shows (images and video files, each for
// a number of seconds, looping) at a fixed size and frame rate. A Candidate
// encodes it live to VP8 with libvpx (package vpx), answering keyframe
// requests with a keyframe, or replays a Stream encoded once, so that many
// candidates cost little more than sending their packets (`invigil simulate
// --candidates N`). A microphone, if asked for, is a WAV file (mixed to
// mono, resampled to 48 kHz, encoded with libopus in 20 ms packets), an Ogg
// Opus file, or a sine made with ffmpeg, encoded once and looped.
//
// A candidate whose signaling socket drops resumes its session within the
// SFU's resume window, as the web page does; the first frame on the new
// connection is a keyframe.
package simulate
