// @ts-check
// The SFU's signalling protocol (sfu/protocol) in the browser: one
// WebSocket, a publisher RTCPeerConnection on which we offer and a
// subscriber RTCPeerConnection on which the server offers, trickle ICE both
// ways. Network trouble is repaired without the user: an ICE restart while
// the socket lives, a resume (join with resume_session) when it dies.
// onState tells the page 'connecting' | 'connected' | 'reconnecting' |
// 'failed' | 'closed' so it can show "reconnecting".
import { SIGNALING_PATH } from './contract.js';

const FATAL = new Set(['unauthorized', 'kicked', 'replaced']);
const PING_EVERY_MS = 5000;
const PONG_TIMEOUT_MS = 12000;
const JOIN_TIMEOUT_MS = 10000;
// Video goes out in three temporal layers (VP8 L1T3): staff and the
// recording get every frame, while the server's analysis decodes only the
// base layer, a quarter of them, which is all it can use.
const VIDEO_ENCODINGS = [{ scalabilityMode: 'L1T3' }];

export class SfuError extends Error {
  constructor(code, message) {
    super(message || code);
    this.name = 'SfuError';
    this.code = code;
  }
}

// addSender adds a send-only transceiver for the track, video with
// temporal layers. A browser that refuses the mode (it throws on
// scalabilityMode it cannot do) publishes without layers: the server then
// decodes every frame, which costs it more but works the same.
function addSender(pc, track, stream) {
  if (track.kind === 'video') {
    try {
      return pc.addTransceiver(track, { direction: 'sendonly', streams: [stream], sendEncodings: VIDEO_ENCODINGS });
    } catch (e) {
      console.warn('sfu: video without temporal layers:', e && e.message);
    }
  }
  return pc.addTransceiver(track, { direction: 'sendonly', streams: [stream] });
}

export class SfuClient {
  // opts.url: signalling URL path or absolute ws(s) URL (default /sfu/ws),
  // or an async function returning one, called on each join and resume (so
  // a page whose media node went away follows its exam to the next one);
  // opts.token: a string or an async function returning one (called on each
  // join, so a page can refresh it); opts.onState(state, detail);
  // opts.onTrack(identity, stream, track) for each forwarded track, with one
  // MediaStream per publisher; opts.onTrackEnded(identity, stream, track);
  // opts.onMessage(msg) for notifications (participant_joined, subscribed…).
  constructor(opts) {
    this.opts = opts;
    this.state = 'idle';
    this.ws = null;
    this.sessionId = '';
    this.identity = '';
    this.joined = null;
    this.pub = null;
    this.sub = null;
    this.senders = new Map(); // kind → RTCRtpSender
    this.localStream = null;
    this.remote = new Map(); // identity → MediaStream
    this.pending = { publisher: [], subscriber: [] };
    this.haveRemote = { publisher: false, subscriber: false };
    this.answerWaiter = null;
    this.pubChain = Promise.resolve();
    this.subChain = Promise.resolve();
    this.closing = false;
    this.offline = !navigator.onLine;
    this.reconnectTimer = 0;
    this.attempt = 0;
    this.restarting = false;
    this.lastPong = Date.now();
    this.pingTimer = 0;
    this.onOnline = () => { this.offline = false; this.checkNow(); };
    this.onOffline = () => { this.offline = true; this.updateState(); };
    addEventListener('online', this.onOnline);
    addEventListener('offline', this.onOffline);
  }

  // connect opens the socket and joins; it rejects with an SfuError when the
  // server refuses (e.g. code 'unauthorized') or cannot be reached.
  async connect() {
    this.closing = false;
    this.setState('connecting');
    try {
      await this.join('');
    } catch (e) {
      this.setState('failed', e);
      throw e;
    }
    this.startPing();
    this.updateState();
    return this.joined;
  }

  async join(resumeSession) {
    const tok = typeof this.opts.token === 'function' ? await this.opts.token() : this.opts.token;
    const url = typeof this.opts.url === 'function' ? await this.opts.url() : this.opts.url;
    const ws = new WebSocket(wsURL(url || SIGNALING_PATH));
    this.ws = ws;
    await new Promise((resolve, reject) => {
      const timer = setTimeout(() => { ws.close(); reject(new SfuError('timeout', 'join timed out')); }, JOIN_TIMEOUT_MS);
      let settled = false;
      const done = (err, msg) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        if (err) reject(err); else resolve(msg);
      };
      ws.onopen = () => this.send({ type: 'join', token: tok, resume_session: resumeSession || undefined });
      ws.onerror = () => {};
      ws.onclose = () => { done(new SfuError('closed', 'connection closed')); this.onSocketClosed(ws); };
      ws.onmessage = (ev) => {
        let msg;
        try { msg = JSON.parse(ev.data); } catch { return; }
        if (!settled) {
          if (msg.type === 'joined') {
            this.joined = msg;
            this.sessionId = msg.session_id;
            this.identity = msg.identity;
            done(null, msg);
            return;
          }
          if (msg.type === 'error') {
            done(new SfuError(msg.code, msg.message));
            return;
          }
        }
        this.onSignal(msg);
      };
    });
    this.lastPong = Date.now();
    (this.joined.participants || []).forEach((p) => this.emit({ type: 'participant_joined', participant: p, initial: true }));
  }

  send(msg) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) {
      this.ws.send(JSON.stringify(msg));
      return true;
    }
    return false;
  }

  emit(msg) {
    if (this.opts.onMessage) {
      try { this.opts.onMessage(msg); } catch (e) { console.error('sfu onMessage', e); }
    }
  }

  setState(state, detail) {
    if (this.state === state) return;
    this.state = state;
    if (this.opts.onState) this.opts.onState(state, detail);
  }

  // updateState derives the state the user sees from the socket, the
  // browser's idea of the network and the publisher connection's ICE.
  updateState() {
    if (this.closing || this.state === 'failed' || this.state === 'closed') return;
    const wsUp = this.ws && this.ws.readyState === WebSocket.OPEN && this.joined;
    const ice = this.pub ? this.pub.iceConnectionState : 'connected';
    const iceUp = ice === 'connected' || ice === 'completed' || ice === 'new' || ice === 'checking';
    this.setState(wsUp && iceUp && !this.offline && !this.restarting ? 'connected' : 'reconnecting');
  }

  onSignal(msg) {
    switch (msg.type) {
      case 'answer':
        if (this.answerWaiter) this.answerWaiter(msg.sdp);
        return;
      case 'offer':
        this.subChain = this.subChain.then(() => this.answerOffer(msg.sdp)).catch((e) => console.error('sfu subscriber offer', e));
        return;
      case 'candidate':
        this.addCandidate(msg.target, msg.candidate);
        return;
      case 'pong':
        this.lastPong = Date.now();
        this.updateState();
        return;
      case 'error':
        if (FATAL.has(msg.code)) {
          this.fail(new SfuError(msg.code, msg.message));
          return;
        }
        // A refused offer (not allowed to publish, bad SDP) is the answer
        // to the pending negotiation: fail it now rather than time out.
        if (this.answerWaiter && (msg.code === 'not_allowed' || msg.code === 'bad_sdp')) {
          this.answerWaiter(new SfuError(msg.code, msg.message));
        }
        this.emit(msg);
        return;
      case 'track_unpublished':
        this.dropTrack(msg.track);
        this.emit(msg);
        return;
      case 'participant_left': {
        const s = this.remote.get(msg.identity);
        if (s) s.getTracks().forEach((tr) => { s.removeTrack(tr); this.trackEnded(msg.identity, s, tr); });
        this.emit(msg);
        return;
      }
      default:
        this.emit(msg);
    }
  }

  fail(err) {
    this.closing = true;
    this.teardown();
    this.setState('failed', err);
  }

  // publish sends the stream's tracks on the publisher connection. The
  // stream is remembered and sent again after a resume.
  publish(stream) {
    this.localStream = stream;
    return this.queuePub(async () => {
      const pc = this.publisher();
      for (const track of stream.getTracks()) {
        const old = this.senders.get(track.kind);
        if (old) { await old.replaceTrack(track); continue; }
        const tr = addSender(pc, track, stream);
        this.senders.set(track.kind, tr.sender);
      }
      await this.negotiate(pc, false);
    });
  }

  // replaceTrack swaps the camera or microphone without renegotiating
  // (the "restart camera" button).
  async replaceTrack(track) {
    if (this.localStream) {
      this.localStream.getTracks().filter((x) => x.kind === track.kind).forEach((x) => this.localStream.removeTrack(x));
      this.localStream.addTrack(track);
    }
    const s = this.senders.get(track.kind);
    if (s) await s.replaceTrack(track);
  }

  subscribe(identity) { return this.send({ type: 'subscribe', identity }); }
  unsubscribe(identity) { return this.send({ type: 'unsubscribe', identity }); }

  queuePub(fn) {
    const p = this.pubChain.then(fn);
    this.pubChain = p.catch(() => {});
    return p;
  }

  publisher() {
    if (this.pub) return this.pub;
    const pc = this.newPC('publisher');
    pc.oniceconnectionstatechange = () => this.onPubIce(pc);
    this.pub = pc;
    return pc;
  }

  newPC(target) {
    const pc = new RTCPeerConnection({ bundlePolicy: 'max-bundle' });
    pc.onicecandidate = (e) => {
      if (!e.candidate || !e.candidate.candidate) return;
      this.send({ type: 'candidate', target, candidate: e.candidate.toJSON() });
    };
    return pc;
  }

  async negotiate(pc, iceRestart) {
    const offer = await pc.createOffer({ iceRestart });
    await pc.setLocalDescription(offer);
    // Candidates for this round wait for its answer: after an ICE restart
    // they belong to credentials the connection does not know yet.
    this.haveRemote.publisher = false;
    const answer = new Promise((resolve, reject) => {
      const timer = setTimeout(() => { this.answerWaiter = null; reject(new SfuError('timeout', 'no answer')); }, JOIN_TIMEOUT_MS);
      this.answerWaiter = (sdp) => { clearTimeout(timer); this.answerWaiter = null; resolve(sdp); };
    });
    // Nobody may be left waiting on the answer when we give up early.
    answer.catch(() => {});
    if (!this.send({ type: 'offer', sdp: pc.localDescription.sdp })) {
      if (this.answerWaiter) this.answerWaiter(null);
      throw new SfuError('closed', 'not connected');
    }
    const sdp = await answer;
    if (sdp instanceof SfuError) throw sdp;
    if (sdp === null || pc !== this.pub) return; // given up, or torn down meanwhile
    await pc.setRemoteDescription({ type: 'answer', sdp });
    this.flush('publisher', pc);
  }

  async answerOffer(sdp) {
    if (!this.sub) {
      const pc = this.newPC('subscriber');
      pc.ontrack = (e) => this.onRemoteTrack(e);
      pc.oniceconnectionstatechange = () => {
        if (pc.iceConnectionState === 'failed' && !this.pub) this.send({ type: 'restart_ice' });
      };
      this.sub = pc;
    }
    const pc = this.sub;
    this.haveRemote.subscriber = false;
    await pc.setRemoteDescription({ type: 'offer', sdp });
    const answer = await pc.createAnswer();
    await pc.setLocalDescription(answer);
    this.send({ type: 'answer', sdp: pc.localDescription.sdp });
    this.flush('subscriber', pc);
  }

  addCandidate(target, cand) {
    const pc = target === 'subscriber' ? this.sub : this.pub;
    if (!pc || !this.haveRemote[target]) {
      this.pending[target].push(cand);
      return;
    }
    pc.addIceCandidate(cand).catch(() => {});
  }

  flush(target, pc) {
    this.haveRemote[target] = true;
    const list = this.pending[target];
    this.pending[target] = [];
    list.forEach((c) => pc.addIceCandidate(c).catch(() => {}));
  }

  onRemoteTrack(e) {
    // The stream ID is the publisher's identity (the protocol's promise).
    const identity = (e.streams[0] && e.streams[0].id) || 'unknown';
    let stream = this.remote.get(identity);
    if (!stream) {
      stream = new MediaStream();
      this.remote.set(identity, stream);
    }
    stream.getTracks().filter((x) => x.kind === e.track.kind).forEach((x) => stream.removeTrack(x));
    stream.addTrack(e.track);
    e.track.addEventListener('ended', () => {
      if (stream.getTracks().includes(e.track)) {
        stream.removeTrack(e.track);
        this.trackEnded(identity, stream, e.track);
      }
    });
    if (this.opts.onTrack) this.opts.onTrack(identity, stream, e.track);
  }

  dropTrack(track) {
    if (!track) return;
    const stream = this.remote.get(track.identity || track.stream_id);
    if (!stream) return;
    // After a resume the browser may keep the receiver (and its track ID)
    // of the m-line the server reused, so the kind identifies it then.
    let gone = stream.getTracks().filter((x) => x.id === track.id);
    if (!gone.length) gone = stream.getTracks().filter((x) => x.kind === track.kind);
    gone.forEach((x) => {
      stream.removeTrack(x);
      this.trackEnded(track.identity, stream, x);
    });
  }

  trackEnded(identity, stream, track) {
    if (this.opts.onTrackEnded) this.opts.onTrackEnded(identity, stream, track);
  }

  onPubIce(pc) {
    if (pc !== this.pub) return;
    const s = pc.iceConnectionState;
    this.updateState();
    if (s === 'failed') this.restartIce();
    if (s === 'disconnected') {
      // 'disconnected' often heals by itself within a few seconds.
      setTimeout(() => { if (pc === this.pub && pc.iceConnectionState === 'disconnected') this.restartIce(); }, 2500);
    }
  }

  restartIce() {
    if (this.restarting || !this.pub || this.closing) return;
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN) return; // the resume will make new connections
    this.restarting = true;
    this.updateState();
    this.queuePub(() => this.negotiate(this.pub, true))
      .catch(() => { if (this.ws) this.ws.close(); })
      .finally(() => { this.restarting = false; this.updateState(); });
  }

  startPing() {
    clearInterval(this.pingTimer);
    this.pingTimer = setInterval(() => {
      if (this.closing) return;
      if (this.ws && this.ws.readyState === WebSocket.OPEN) {
        if (Date.now() - this.lastPong > PONG_TIMEOUT_MS) {
          // A dead TCP connection can stay "open" for minutes: give up on it.
          this.ws.close();
          return;
        }
        this.send({ type: 'ping' });
      }
    }, PING_EVERY_MS);
  }

  // checkNow runs after the browser says the network is back: a ping tells
  // whether the socket survived, an ICE restart repairs the media path.
  checkNow() {
    this.updateState();
    if (this.closing) return;
    if (this.ws && this.ws.readyState === WebSocket.OPEN) {
      this.send({ type: 'ping' });
      if (this.pub && !['connected', 'completed'].includes(this.pub.iceConnectionState)) this.restartIce();
    } else if (!this.reconnectTimer) {
      this.reconnect();
    }
  }

  onSocketClosed(ws) {
    if (ws !== this.ws || this.closing || !this.joined) return;
    this.scheduleReconnect();
  }

  scheduleReconnect() {
    this.setState('reconnecting');
    this.teardown(true);
    clearTimeout(this.reconnectTimer);
    const delay = Math.min(5000, 300 * 2 ** Math.min(this.attempt, 5));
    this.reconnectTimer = setTimeout(() => this.reconnect(), delay);
  }

  async reconnect() {
    this.reconnectTimer = 0;
    if (this.closing) return;
    this.attempt++;
    try {
      await this.join(this.sessionId);
    } catch (e) {
      if (e.code && FATAL.has(e.code)) { this.fail(e); return; }
      if (!this.closing && !this.reconnectTimer) this.scheduleReconnect();
      return;
    }
    this.attempt = 0;
    // A resumed session has new peer connections on the server side: both
    // are made anew here and the camera is published again.
    if (this.localStream) {
      try {
        await this.publish(this.localStream);
      } catch (e) {
        if (this.ws) this.ws.close();
        return;
      }
    }
    this.emit({ type: 'resumed', resumed: !!this.joined.resumed, connection: this.joined.connection });
    this.updateState();
  }

  // teardown closes the peer connections (and, unless keepWs, the socket).
  teardown(keepWs) {
    if (this.answerWaiter) this.answerWaiter(null); // the pending negotiation ends quietly
    for (const pc of [this.pub, this.sub]) if (pc) pc.close();
    this.pub = null;
    this.sub = null;
    this.senders.clear();
    this.pending = { publisher: [], subscriber: [] };
    this.haveRemote = { publisher: false, subscriber: false };
    for (const [identity, stream] of this.remote) {
      stream.getTracks().forEach((tr) => { stream.removeTrack(tr); this.trackEnded(identity, stream, tr); });
    }
    this.remote.clear();
    if (!keepWs && this.ws) {
      const ws = this.ws;
      this.ws = null;
      ws.onclose = null;
      ws.close();
    }
  }

  // leave ends the session for good (no resume).
  leave() {
    this.send({ type: 'leave' });
    this.close();
  }

  // close drops everything without telling the server (it keeps the
  // session for its resume window).
  close() {
    this.closing = true;
    clearInterval(this.pingTimer);
    clearTimeout(this.reconnectTimer);
    removeEventListener('online', this.onOnline);
    removeEventListener('offline', this.onOffline);
    this.teardown(false);
    this.setState('closed');
  }
}

function wsURL(path) {
  if (/^wss?:/.test(path)) return path;
  const u = new URL(path, location.href);
  u.protocol = location.protocol === 'https:' ? 'wss:' : 'ws:';
  return u.toString();
}
