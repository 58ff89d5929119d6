// Package sfu is Invigil's media server: a selective forwarding unit on
// pion/webrtc. Participants join a room over a WebSocket with a token,
// publish their camera and microphone, and receive the tracks of the
// participants they are subscribed to. Every published track is also
// handed to the configured taps (recording, live analysis) as copies of
// its RTP packets. Nothing is re-encoded.
//
// # Model
//
// A participant is one session of one identity (a candidate ID, a staff
// user ID) in one room (an exam). The token's Grants decide what it may do:
// publish (CanPublish), receive (CanSubscribe), be invisible to others
// (Hidden), and which identities it may subscribe to by itself (Subscribe,
// "*" for anyone in the room). The control plane moves subscriptions with
// Server.Subscribe and Server.Unsubscribe as a candidate goes from stage to
// stage, so the candidate's publication is never interrupted: its
// publisher connection lives for the whole session. A second join with the
// same identity replaces the first session.
//
// Each participant has up to two peer connections. On the publisher
// connection the client offers and the server answers; on the subscriber
// connection the server offers and the client answers. Each side is the
// only offerer on its connection, so offers never collide ("glare" cannot
// happen) and neither side ever needs a rollback. The subscriber connection
// exists from the first time the participant is sent a track; a participant
// that only publishes (a candidate in a waiting room) has one connection.
//
// # Reconnecting
//
//   - ICE restart: when the network changes under a live WebSocket, the
//     client sends an offer with new ICE credentials (iceRestart) on its
//     publisher connection; the server answers and also restarts ICE on the
//     subscriber connection with a new offer. A client with no publisher
//     connection sends restart_ice instead. Session, connection number and
//     tracks stay.
//   - Resume: when the WebSocket drops, the server keeps the participant
//     (and whatever media still flows) for Config.ResumeWindow (30 s). A new
//     join with resume_session set to the session ID and a token of the same
//     identity and room takes the session over: both peer connections are
//     closed and made anew (the session's connection number goes up by
//     one; taps see the old tracks Close and the new ones start with the same
//     SessionID and Connection+1), and subscriptions carry over in both
//     directions, so watchers receive the re-published tracks without
//     asking. The client publishes again after joined. A resume of an
//     unknown or expired session, or of another identity's, joins as a new
//     session instead (joined has resumed false and code
//     "session_not_found"). After the window the participant is removed.
//
// # Signaling protocol
//
// One JSON object per WebSocket text message, with a "type". Messages are
// limited to Config.MaxMessageBytes (64 KiB); a larger one is answered with
// an error and skipped. The first message must be join, within
// Config.JoinTimeout (10 s). The server sends WebSocket pings; browsers
// answer them by themselves. Package sfu/protocol has the Go types and
// sfu/client a complete Go client.
//
// Client to server:
//
//	{"type":"join","token":"eyJ…","resume_session":"S…"}     resume_session only to resume
//	{"type":"offer","sdp":"v=0…"}                             publisher connection
//	{"type":"answer","sdp":"v=0…"}                            subscriber connection
//	{"type":"candidate","target":"publisher","candidate":{"candidate":"candidate:…","sdpMid":"0","sdpMLineIndex":0}}
//	{"type":"subscribe","identity":"cand-42"}                 needs CanSubscribe and the identity in Subscribe (or "*")
//	{"type":"unsubscribe","identity":"cand-42"}
//	{"type":"restart_ice"}                                    the server re-offers the subscriber connection with ICE restart
//	{"type":"leave"}                                          ends the session for good (no resume)
//	{"type":"ping"}
//
// Server to client:
//
//	{"type":"joined","session_id":"S…","identity":"examiner-1","connection":1,
//	 "participants":[{"identity":"cand-42","name":"…","role":"candidate",
//	   "tracks":[{"identity":"cand-42","id":"video-1-1","stream_id":"cand-42","kind":"video","mime_type":"video/VP8"}]}]}
//	{"type":"joined","session_id":"S…","identity":"cand-42","resumed":true,"connection":2}
//	{"type":"answer","sdp":"v=0…"}                            to the client's offer
//	{"type":"offer","sdp":"v=0…"}                             subscriber connection: answer it
//	{"type":"candidate","target":"subscriber","candidate":{…}}
//	{"type":"subscribed","identity":"cand-42"}                also when the control plane subscribed it
//	{"type":"unsubscribed","identity":"cand-42"}
//	{"type":"participant_joined","participant":{"identity":"cand-42","role":"candidate","tracks":[…]}}
//	{"type":"participant_left","identity":"cand-42"}
//	{"type":"track_published","track":{"identity":"cand-42","id":"video-2-3","stream_id":"cand-42","kind":"video","mime_type":"video/VP8"}}
//	{"type":"track_unpublished","track":{…}}
//	{"type":"error","code":"not_allowed","message":"not allowed to subscribe to \"cand-7\""}
//	{"type":"pong"}
//
// A participant is told about (participants in joined, participant_joined,
// participant_left, track_published, track_unpublished) only the others it
// may see: not hidden, in its room, and subscribed to or allowed to
// subscribe to. A forwarded track arrives on the subscriber connection with
// the publisher's identity as its stream ID and the track's id as its track
// ID; a resumed publisher's tracks arrive as new tracks.
//
// Error codes (protocol.Code*): bad_json, unknown_type, bad_request,
// message_too_large, not_joined, already_joined, not_allowed, limit,
// bad_sdp, bad_candidate — the socket stays open; unauthorized (bad or
// expired token), kicked, replaced (the same identity joined or resumed
// elsewhere), slow_client (did not read its messages), shutdown — the
// server closes the socket after the error.
//
// A client's sequence, as the web pages and `invigil simulate` do it:
//
//  1. Open the WebSocket, send join, wait for joined (keep session_id).
//  2. To publish: create the publisher RTCPeerConnection, add the camera
//     and microphone (send-only), send its offer, apply the answer; trickle
//     candidates both ways with target "publisher".
//  3. When an offer arrives: create the subscriber RTCPeerConnection if
//     there is none, apply the offer, send the answer; trickle with target
//     "subscriber". ontrack's stream ID says whose track it is.
//  4. On a network change with the socket up: restart ICE on the publisher
//     connection (or send restart_ice). When the socket drops: close both
//     connections, reconnect with join + resume_session, and go to 2.
//
// # Forwarding
//
// Each published track has one read loop. For every RTP packet it gives a
// copy to each tap writer (which must not block) and queues the packet for
// each subscriber's forwarding goroutine in a bounded queue
// (Config.ForwardQueue); a full queue drops the packet and counts it, so a
// slow subscriber never slows the publisher, the taps or other subscribers.
// Subscribers get the publisher's sequence numbers and timestamps with
// their own SSRC and payload type and without the publisher's header
// extensions. pion interceptors answer subscribers' NACKs from a send
// buffer, generate NACKs to publishers, send RTCP reports and
// transport-wide congestion control feedback to publishers (so browsers
// ramp up their bitrate). Keyframe requests (PLI, FIR) from subscribers,
// from new subscriptions and from taps (media.Track.RequestKeyframe) reach
// the publisher as PLIs at most once per Config.KeyframeInterval per track.
// Only VP8 and Opus are negotiated.
//
// # Metrics
//
// In the registry passed in Config.Registry: invigil_sfu_participants,
// invigil_sfu_tracks{kind}, invigil_sfu_subscribers{kind},
// invigil_sfu_rtp_packets_in_total{kind}, invigil_sfu_rtp_bytes_in_total{kind},
// invigil_sfu_rtp_packets_out_total{kind}, invigil_sfu_rtp_bytes_out_total{kind},
// invigil_sfu_rtp_packets_dropped_total{reason}, invigil_sfu_nacks_total{direction},
// invigil_sfu_plis_total{direction}, invigil_sfu_pli_rate_limited_total,
// invigil_sfu_reconnects_total{kind} (resume, resume_failed, ice_restart, expired),
// invigil_sfu_signalling_errors_total{code}, invigil_sfu_events_dropped_total.
//
// Config.OnEvent tells the control plane when participants join, resume,
// disconnect, leave, publish and unpublish.
//
// # Wiring
//
//	tokens := sfu.HMACTokens{Key: key}   // until the control plane's verifier
//	srv, err := sfu.New(sfu.Config{Tokens: tokens, Taps: []media.Tap{rec, pipe}, Registry: reg, Logger: log})
//	mux.Handle("/sfu/ws", srv)
//	defer srv.Close()
package sfu
