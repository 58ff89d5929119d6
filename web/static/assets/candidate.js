// @ts-check
// The candidate page: invitation code → device check → waiting room →
// calls → result → rest room, driven by the API's stage and the candidate's
// live events. The camera and microphone are published to the SFU from the
// device check on and stay published until the candidate leaves; a dropped
// network shows "reconnecting" and heals by itself (sfu.js, events.js).
import { t, pick, onLangChange } from './i18n.js';
import { get, post, setCSRF, errorText, ApiError } from './api.js';
import { listen } from './events.js';
import { SfuClient } from './sfu.js';
import { SIGNALING_PATH } from './contract.js';
import { $, $$, show, toast, attachStream, wireLangSwitch, stageText, stageClass } from './ui.js';

const S = {
  me: null, // GET /candidate/me (or the login answer until it arrives)
  token: sessionStorage.getItem('invigil.cand.token') || '',
  stream: null, // our camera + microphone
  checked: sessionStorage.getItem('invigil.cand.checked') === '1', // device check passed in this tab
  sfu: null,
  sfuState: 'idle',
  eventsState: 'idle',
  offline: !navigator.onLine,
  stopEvents: null,
  audio: null, // AudioContext
  meterRaf: 0,
  analysisTimer: 0,
  heardTone: false,
  callTimer: 0,
  accepting: false,
  screen: '',
};

const MEDIA = {
  video: { width: { ideal: 640 }, height: { ideal: 480 }, frameRate: { ideal: 15, max: 30 } },
  audio: { echoCancellation: true, noiseSuppression: true },
};

// ---- screens ----------------------------------------------------------------

function screen(name) {
  S.screen = name;
  for (const s of $$('.screen')) show(s, s.id === 'scr-' + name);
  document.body.dataset.screen = name;
  show($('#help-btn'), name !== 'code' || !!S.me);
  // Fullscreen is asked for in the rest room and the interview only; an
  // episode of "left fullscreen" ends when the candidate is elsewhere.
  if (away && away.reason === 'fullscreen' && !fullscreenWanted()) comeBack(true);
  drawFullscreenPrompt();
  drawNudge();
}

function setCheck(id, state, statusKey, params) {
  const li = $('#' + id);
  if (!li) return;
  li.dataset.state = state; // pending | ok | warn | bad
  const st = $('.ck-status', li);
  st.dataset.i18nKey = statusKey || '';
  st.dataset.params = params ? JSON.stringify(params) : '';
  st.textContent = statusKey ? t(statusKey, params) : '';
}

function redrawChecks() {
  for (const st of $$('.ck-status')) {
    if (st.dataset.i18nKey) st.textContent = t(st.dataset.i18nKey, st.dataset.params ? JSON.parse(st.dataset.params) : null);
  }
}

// ---- code entry ---------------------------------------------------------

async function login(code, errorEl) {
  errorEl.textContent = '';
  if (!/^\d{6}$/.test(code)) {
    errorEl.textContent = t('code.invalid_format');
    return false;
  }
  // The page's first click is our chance to create the AudioContext: the
  // browser allows sound only after a gesture.
  ensureAudio();
  try {
    const res = await post('/candidate/login', { code });
    S.token = res.token;
    sessionStorage.setItem('invigil.cand.token', res.token);
    setCSRF(res.csrf_token);
    S.me = { ...(S.me || {}), ...res };
    await refresh();
    return true;
  } catch (e) {
    if (e instanceof ApiError && e.code === 'too_many_attempts' && e.retryAfter) {
      errorEl.textContent = t('code.too_many', { s: e.retryAfter });
    } else if (e instanceof ApiError && e.code === 'unknown_code') {
      errorEl.textContent = e.message || t('err.unknown_code');
    } else {
      errorEl.textContent = errorText(e);
    }
    return false;
  }
}

$('#code-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const btn = $('#code-form button[type=submit]');
  btn.disabled = true;
  await login($('#code-input').value.trim(), $('#code-error'));
  btn.disabled = false;
});

$('#reenter-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const btn = $('#reenter-form button[type=submit]');
  btn.disabled = true;
  if (await login($('#reenter-input').value.trim(), $('#reenter-error'))) $('#reenter-input').value = '';
  btn.disabled = false;
});

for (const input of [$('#code-input'), $('#reenter-input')]) {
  input.addEventListener('input', () => { input.value = input.value.replace(/\D/g, '').slice(0, 6); });
}

// ---- the candidate's state ------------------------------------------------

async function refresh() {
  try {
    S.me = await get('/candidate/me');
  } catch (e) {
    if (e instanceof ApiError && (e.status === 401 || e.status === 403)) {
      signOut();
      return;
    }
    toast(errorText(e), 'error');
  }
  startEvents();
  await render();
}

function signOut() {
  sessionStorage.removeItem('invigil.cand.token');
  S.token = '';
  S.me = null;
  if (S.stopEvents) { S.stopEvents(); S.stopEvents = null; }
  screen('code');
}

const needsCamera = (stage) => ['mock', 'device_check_waiting', 'device_check_call', 'device_checked',
  'interview_waiting', 'interview_call', 'interview_done', 'rest_room'].includes(stage);

// render is entered from the event stream, the language switch, buttons
// and reconnects, and it awaits the camera and the device check: two at
// once would open the camera twice. So one runs at a time; a render asked
// for meanwhile runs once after it, on the newest state.
let rendering = null;
let renderAgain = false;
let rendersAtOnce = 0;
let mostRendersAtOnce = 0;
function render() {
  if (rendering) {
    renderAgain = true;
    return rendering;
  }
  rendering = (async () => {
    try {
      do {
        renderAgain = false;
        rendersAtOnce++;
        mostRendersAtOnce = Math.max(mostRendersAtOnce, rendersAtOnce);
        try { await renderOnce(); } finally { rendersAtOnce--; }
      } while (renderAgain);
    } finally {
      rendering = null;
    }
  })();
  return rendering;
}

async function renderOnce() {
  const me = S.me;
  if (!me) { screen('code'); return; }
  $('#exam-name').textContent = me.exam_name ? `${me.exam_name} · ${me.name || ''}` : (me.name || '');
  const stage = me.stage;
  if (stage === 'left') {
    stopMedia();
    renderStage();
    return;
  }
  if (needsCamera(stage) && !S.stream) {
    // Without a camera the candidate cannot go on: the device check says why.
    if (!S.checked || !(await startMedia())) {
      await showCheck();
      return;
    }
  }
  if (needsCamera(stage) && !S.checked) {
    await showCheck();
    return;
  }
  ensureSfu();
  checkExtras();
  const call = me.call && me.call.kind !== 'spot_check' ? me.call : null;
  if (call && call.state === 'ringing') {
    renderStage();
    ring(call);
    return;
  }
  closeRing();
  if (call && call.state === 'active') {
    renderCall(call);
    return;
  }
  stopCallTimer();
  if (stage === 'rest_room') {
    renderRest();
    return;
  }
  renderStage();
}

function renderStage() {
  const me = S.me;
  screen('stage');
  const badge = $('#stage-badge');
  badge.textContent = stageText(me.stage);
  badge.className = 'stage-badge ' + stageClass(me.stage);
  $('#stage-message').textContent = pick(me.message) || stageText(me.stage);
  const sub = { device_check_waiting: 'wait.sub_device', interview_waiting: 'wait.sub_interview', mock: 'wait.sub_mock' }[me.stage];
  $('#stage-sub').textContent = sub ? t(sub) : '';
  const score = me.score && me.score.published_at ? me.score : null;
  show($('#score-card'), !!score);
  if (score) {
    $('#score-value').textContent = formatScore(score.score);
    $('#score-comment').textContent = score.comment || '';
  }
  show($('#restcode-card'), !!me.rest_room_code);
  $('#restcode-value').textContent = me.rest_room_code || '';
  // The guide: after the device check the candidate enters the same code
  // again; after the interview, the rest-room code.
  const reenter = { device_checked: 'reenter.interview', interview_done: 'reenter.rest', mock: 'reenter.after_mock' }[me.stage];
  show($('#reenter-form'), !!reenter);
  if (reenter) $('#reenter-label').textContent = t(reenter);
  attachStream($('#stage-self'), S.stream, { muted: true });
  show($('#stage-self').parentElement, !!S.stream);
  show($('#stage-status'), !!S.stream);
  drawStatus();
}

function formatScore(v) {
  if (v === null || v === undefined) return '—';
  return Number.isInteger(v) ? String(v) : Number(v).toFixed(1);
}

function renderRest() {
  screen('rest');
  $('#rest-message').textContent = pick(S.me.message) || stageText('rest_room');
  attachStream($('#rest-self'), S.stream, { muted: true });
  drawStatus();
}

function renderCall(call) {
  screen('call');
  const who = call.kind === 'interview' ? t('role.examiner') : t('role.assistant');
  $('#call-title').textContent = t('call.with', { who, name: call.staff_name || '' });
  $('#call-remote-label').textContent = call.staff_name ? `${who} · ${call.staff_name}` : who;
  attachStream($('#call-self'), S.stream, { muted: true });
  const remote = S.sfu && S.sfu.remote.get('staff-' + call.staff_id);
  showRemote(remote);
  startCallTimer(call.accepted_at);
}

function showRemote(stream) {
  const v = $('#call-remote');
  const has = !!(stream && stream.getVideoTracks().length);
  if (stream) attachStream(v, stream);
  show($('#call-remote-empty'), !has);
}

function startCallTimer(from) {
  stopCallTimer();
  const start = from ? new Date(from).getTime() : Date.now();
  const tick = () => {
    const s = Math.max(0, Math.floor((Date.now() - start) / 1000));
    $('#call-timer').textContent = `${String(Math.floor(s / 60)).padStart(2, '0')}:${String(s % 60).padStart(2, '0')}`;
  };
  tick();
  S.callTimer = setInterval(tick, 1000);
}

function stopCallTimer() { clearInterval(S.callTimer); S.callTimer = 0; }

// ---- incoming call ----------------------------------------------------------

function ring(call) {
  const dlg = $('#incoming');
  const who = call.kind === 'interview' ? t('role.examiner') : t('role.assistant');
  $('#incoming-title').textContent = t('incoming.title', { who, name: call.staff_name || '' });
  dlg.dataset.callId = call.id;
  $('#incoming-error').textContent = '';
  if (!dlg.open) {
    dlg.showModal();
    $('#accept-call').focus();
    beep();
  }
}

function closeRing() {
  const dlg = $('#incoming');
  if (dlg.open) dlg.close();
}

$('#incoming').addEventListener('cancel', (ev) => ev.preventDefault()); // Esc must not hide a call

$('#accept-call').addEventListener('click', async () => {
  const dlg = $('#incoming');
  if (S.accepting) return;
  S.accepting = true;
  $('#accept-call').disabled = true;
  try {
    await post(`/calls/${dlg.dataset.callId}/accept`);
    closeRing();
    await refresh();
  } catch (e) {
    $('#incoming-error').textContent = errorText(e);
    await refresh();
  } finally {
    S.accepting = false;
    $('#accept-call').disabled = false;
  }
});

// ---- devices ----------------------------------------------------------------

function browserSupported() {
  return !!(window.RTCPeerConnection && navigator.mediaDevices && navigator.mediaDevices.getUserMedia &&
    window.WebSocket && window.EventSource && (window.AudioContext || /** @type {any} */ (window).webkitAudioContext));
}

// startMedia asks for the camera and microphone; it reports what failed on
// the check list and returns whether both are working.
async function startMedia() {
  if (!browserSupported()) return false;
  try {
    const stream = await navigator.mediaDevices.getUserMedia(MEDIA);
    S.stream = stream;
    setCheck('ck-camera', 'ok', 'check.cam_ok', { label: trackLabel(stream.getVideoTracks()[0]) });
    setCheck('ck-mic', 'ok', 'check.mic_ok');
    show($('#denied'), false);
    show($('#analysis-box'), true);
    for (const tr of stream.getTracks()) tr.addEventListener('ended', () => drawStatus());
    if (S.sfu) await S.sfu.publish(stream).catch(() => {});
    startMeter();
    return true;
  } catch (e) {
    deviceError(e);
    return false;
  }
}

function trackLabel(track) {
  const s = track && track.getSettings ? track.getSettings() : {};
  return s.width ? `${s.width}×${s.height}` : '';
}

function deviceError(e) {
  const name = (e && e.name) || 'Error';
  const key = {
    NotAllowedError: 'denied.reason_denied',
    SecurityError: 'denied.reason_denied',
    NotFoundError: 'denied.reason_missing',
    OverconstrainedError: 'denied.reason_missing',
    NotReadableError: 'denied.reason_busy',
    AbortError: 'denied.reason_busy',
  }[name] || 'denied.reason_other';
  const denied = key === 'denied.reason_denied';
  setCheck('ck-camera', 'bad', denied ? 'check.denied' : 'check.unavailable');
  setCheck('ck-mic', 'bad', denied ? 'check.denied' : 'check.unavailable');
  $('#denied').dataset.kind = denied ? 'denied' : 'other';
  $('#denied-title').textContent = t(denied ? 'denied.title' : 'denied.title_other');
  $('#denied-title').dataset.i18n = denied ? 'denied.title' : 'denied.title_other';
  $('#denied-reason').textContent = t(key);
  $('#denied-reason').dataset.i18n = key;
  show($('#denied-steps'), denied);
  show($('#denied'), true);
  show($('#analysis-box'), false); // nothing to analyse without a camera
  const empty = $('#check-video-empty');
  empty.dataset.i18n = 'check.camera_unavailable';
  empty.textContent = t('check.camera_unavailable');
  show(empty, true);
}

function stopMedia() {
  if (S.sfu) { S.sfu.leave(); S.sfu = null; }
  if (S.stream) S.stream.getTracks().forEach((tr) => tr.stop());
  S.stream = null;
  cancelAnimationFrame(S.meterRaf);
}

async function restartCamera() {
  try {
    const fresh = await navigator.mediaDevices.getUserMedia({ video: MEDIA.video });
    const track = fresh.getVideoTracks()[0];
    const old = S.stream ? S.stream.getVideoTracks() : [];
    if (S.sfu) await S.sfu.replaceTrack(track);
    else if (S.stream) { old.forEach((x) => S.stream.removeTrack(x)); S.stream.addTrack(track); }
    old.forEach((x) => x.stop());
    for (const v of ['#call-self', '#stage-self', '#rest-self', '#check-video']) {
      const el = $(v);
      el.srcObject = null;
      attachStream(el, S.stream, { muted: true });
    }
    track.addEventListener('ended', () => drawStatus());
    toast(t('call.camera_restarted'), 'ok');
  } catch (e) {
    toast(t('call.camera_restart_failed', { reason: e.name || e.message }), 'error');
  }
  drawStatus();
}
$('#restart-camera').addEventListener('click', restartCamera);
$('#rest-restart-camera').addEventListener('click', restartCamera);

function ensureAudio() {
  if (S.audio) return S.audio;
  const AC = window.AudioContext || /** @type {any} */ (window).webkitAudioContext;
  if (!AC) return null;
  S.audio = new AC();
  S.audio.resume().catch(() => {});
  return S.audio;
}

function startMeter() {
  const ac = ensureAudio();
  if (!ac || !S.stream || !S.stream.getAudioTracks().length) return;
  const src = ac.createMediaStreamSource(S.stream);
  const an = ac.createAnalyser();
  an.fftSize = 512;
  src.connect(an);
  const buf = new Float32Array(an.fftSize);
  const fill = $('#mic-meter');
  const wrap = $('#mic-meter-wrap');
  let peak = 0;
  cancelAnimationFrame(S.meterRaf);
  const draw = () => {
    an.getFloatTimeDomainData(buf);
    let sum = 0;
    for (const x of buf) sum += x * x;
    const rms = Math.sqrt(sum / buf.length);
    // A log scale: speech sits mid-bar, silence near zero.
    const level = Math.max(0, Math.min(100, Math.round((20 * Math.log10(rms + 1e-6) + 60) * (100 / 60))));
    peak = Math.max(level, peak - 1.5);
    fill.style.width = peak + '%';
    wrap.setAttribute('aria-valuenow', String(Math.round(peak)));
    if (S.screen === 'check') S.meterRaf = requestAnimationFrame(draw);
  };
  draw();
}

function beep(freq = 880, ms = 300) {
  const ac = ensureAudio();
  if (!ac) return;
  ac.resume().catch(() => {});
  const osc = ac.createOscillator();
  const gain = ac.createGain();
  osc.frequency.value = freq;
  gain.gain.value = 0.15;
  osc.connect(gain).connect(ac.destination);
  osc.start();
  osc.stop(ac.currentTime + ms / 1000);
}

$('#tone-btn').addEventListener('click', () => {
  // A two-second rising tone, long enough to find the volume knob.
  const ac = ensureAudio();
  if (!ac) return;
  ac.resume().catch(() => {});
  const osc = ac.createOscillator();
  const gain = ac.createGain();
  osc.type = 'sine';
  osc.frequency.setValueAtTime(440, ac.currentTime);
  osc.frequency.linearRampToValueAtTime(880, ac.currentTime + 2);
  gain.gain.setValueAtTime(0.0001, ac.currentTime);
  gain.gain.exponentialRampToValueAtTime(0.2, ac.currentTime + 0.1);
  gain.gain.setValueAtTime(0.2, ac.currentTime + 1.8);
  gain.gain.exponentialRampToValueAtTime(0.0001, ac.currentTime + 2);
  osc.connect(gain).connect(ac.destination);
  osc.start();
  osc.stop(ac.currentTime + 2);
  if (!S.heardTone) setCheck('ck-speaker', 'warn', 'check.tone_playing');
});
$('#tone-ok').addEventListener('click', () => {
  S.heardTone = true;
  setCheck('ck-speaker', 'ok', 'check.tone_ok');
  updateContinue();
});

$('#retry-devices').addEventListener('click', async () => {
  if (await startMedia()) {
    attachStream($('#check-video'), S.stream, { muted: true });
    show($('#check-video-empty'), false);
    ensureSfu();
  }
  updateContinue();
});
$('#reload-page').addEventListener('click', () => location.reload());

// ---- the device check ---------------------------------------------------------

async function showCheck() {
  screen('check');
  const ok = browserSupported();
  setCheck('ck-browser', ok ? 'ok' : 'bad', ok ? 'check.browser_ok' : 'check.browser_bad');
  if (!ok) { updateContinue(); return; }
  if (!S.heardTone) setCheck('ck-speaker', 'pending', 'check.tone_hint');
  if (!S.stream) {
    setCheck('ck-camera', 'pending', 'check.asking');
    setCheck('ck-mic', 'pending', 'check.asking');
    await startMedia();
  }
  if (S.stream) {
    attachStream($('#check-video'), S.stream, { muted: true });
    show($('#check-video-empty'), false);
    startMeter();
    ensureSfu();
  }
  drawStatus();
  pollAnalysis();
  updateContinue();
  checkExtras();
}

function updateContinue() {
  const ready = browserSupported() && !!S.stream && S.heardTone;
  $('#check-continue').disabled = !ready;
  let key = 'check.summary_ready';
  if (!S.stream) key = 'check.summary_devices';
  else if (!S.heardTone) key = 'check.summary_speaker';
  $('#check-summary').textContent = t(key);
  $('#check-summary').dataset.i18n = key;
}

$('#check-continue').addEventListener('click', async () => {
  S.checked = true;
  sessionStorage.setItem('invigil.cand.checked', '1');
  clearTimeout(S.analysisTimer);
  await render();
});

async function pollAnalysis() {
  clearTimeout(S.analysisTimer);
  if (S.screen !== 'check' || !S.token) return;
  try {
    const a = await get('/candidate/analysis');
    const c = a.checks || {};
    setCheck('an-face', c.face ? 'ok' : 'bad', c.face ? 'an.face_ok' : 'an.face_bad');
    if (!a.faces) setCheck('an-distance', 'pending', 'an.distance_unknown');
    else if (c.distance) setCheck('an-distance', 'ok', 'an.distance_ok', { cm: Math.round(a.distance_cm || 0) });
    else setCheck('an-distance', 'warn', (a.distance_cm || 0) < 50 ? 'an.distance_near' : 'an.distance_far', { cm: Math.round(a.distance_cm || 0) });
    setCheck('an-light', c.light ? 'ok' : 'warn', c.light ? 'an.light_ok' : 'an.light_bad');
    setCheck('an-alone', c.alone ? 'ok' : 'bad', c.alone ? 'an.alone_ok' : 'an.alone_bad', { n: a.faces || 0 });
  } catch (e) {
    const key = e instanceof ApiError && e.code === 'no_video' ? 'an.waiting' : 'an.unavailable';
    for (const id of ['an-face', 'an-distance', 'an-light', 'an-alone']) setCheck(id, 'pending', key);
  }
  S.analysisTimer = setTimeout(pollAnalysis, 1500);
}

// ---- media connection ---------------------------------------------------------

// mediaURL asks where the media go: with several nodes, the exam's media
// node (an absolute wss:// URL); with one, this server's own SFU.
async function mediaURL() {
  try {
    return (await post('/media/token', {})).url || SIGNALING_PATH;
  } catch (e) {
    console.warn('media url', e);
    return SIGNALING_PATH;
  }
}

function ensureSfu() {
  if (S.sfu || !S.token || !S.stream) return;
  const sfu = new SfuClient({
    // Asked again on every join and resume: with several nodes a media
    // node that went away is replaced by the one the exam moved to.
    url: mediaURL,
    token: () => S.token,
    onState: (state, err) => {
      S.sfuState = state;
      if (state === 'failed' && err) {
        S.sfuError = err.code === 'replaced' ? t('net.replaced') : t('net.failed', { code: err.code || '' });
      }
      if (state === 'connected') S.sfuError = '';
      drawStatus();
    },
    onTrack: (identity, stream) => {
      if (S.screen === 'call' && S.me.call && identity === 'staff-' + S.me.call.staff_id) showRemote(stream);
      else if (S.screen === 'call') showRemote(stream);
    },
    onTrackEnded: () => { if (S.screen === 'call') showRemote(null); },
  });
  S.sfu = sfu;
  sfu.connect()
    .then(() => sfu.publish(S.stream))
    .catch((e) => {
      console.warn('sfu', e);
      S.sfuState = 'failed';
      if (!S.sfuError) S.sfuError = t('net.failed', { code: e.code || '' });
      drawStatus();
      // A refused join (e.g. the server restarted) is tried again later:
      // the candidate must not be left unwatched by a transient failure.
      setTimeout(() => { if (S.sfu === sfu && sfu.state === 'failed') { S.sfu = null; ensureSfu(); } }, 5000);
    });
}

// drawStatus shows the camera and the connection state everywhere they
// appear, and the "reconnecting" banner.
function drawStatus() {
  const video = S.stream && S.stream.getVideoTracks()[0];
  const camOk = video && video.readyState === 'live';
  for (const id of ['#st-camera', '#rest-camera']) {
    const el = $(id);
    el.textContent = t(camOk ? 'status.cam_live' : 'status.cam_off');
    el.dataset.state = camOk ? 'ok' : 'bad';
  }
  const reconnecting = S.offline || S.sfuState === 'reconnecting' || (S.eventsState === 'reconnecting' && !!S.me);
  let key = 'status.conn_ok';
  let state = 'ok';
  if (reconnecting) { key = 'status.conn_reconnecting'; state = 'warn'; }
  else if (S.sfuState === 'failed') { key = 'status.conn_failed'; state = 'bad'; }
  else if (S.sfuState !== 'connected') { key = 'status.conn_connecting'; state = 'warn'; }
  for (const id of ['#st-conn', '#rest-conn']) {
    const el = $(id);
    el.textContent = t(key);
    el.dataset.state = state;
  }
  if (S.screen === 'check' && !S.stream) {
    setCheck('ck-connection', 'pending', 'check.conn_needs_camera');
  } else if (S.screen === 'check') {
    setCheck('ck-connection', state === 'ok' ? 'ok' : state === 'bad' ? 'bad' : 'pending',
      state === 'ok' ? 'check.conn_ok' : state === 'bad' ? 'check.conn_bad' : 'check.conn_wait');
  }
  const pill = $('#conn-state');
  show(pill, !!S.me && S.screen !== 'code' && !!S.stream);
  pill.textContent = t(key);
  pill.dataset.state = state;
  const banner = $('#banner');
  const failed = S.sfuState === 'failed' && !!S.sfuError;
  show(banner, (reconnecting || failed) && !!S.me);
  banner.dataset.kind = failed && !reconnecting ? 'bad' : 'warn';
  $('#banner-text').textContent = reconnecting ? t(S.offline ? 'net.offline' : 'net.reconnecting') : (failed ? S.sfuError : '');
}

addEventListener('offline', () => { S.offline = true; drawStatus(); });
addEventListener('online', () => { S.offline = false; drawStatus(); refresh(); });

// ---- live events -------------------------------------------------------------

// The stream replays the candidate's history on connect: one fetch after a
// burst of events is enough.
let refreshTimer = 0;
function refreshSoon() {
  clearTimeout(refreshTimer);
  refreshTimer = setTimeout(refresh, 120);
}

function startEvents() {
  if (S.stopEvents) return;
  S.stopEvents = listen('/api/v1/candidate/events', (ev) => {
    if (['stage_changed', 'call_ringing', 'call_started', 'call_ended', 'score_published'].includes(ev.type)) refreshSoon();
    if (ev.type === 'violation_opened' || ev.type === 'violation_closed') onViolation(ev);
  }, (state) => {
    const was = S.eventsState;
    S.eventsState = state;
    drawStatus();
    // Back after a gap: whatever was missed is replayed, but the stage may
    // have moved through events we dedupe; one fetch settles it.
    if (state === 'live' && was === 'reconnecting') refreshSoon();
  });
}

// ---- the browser's own signals -------------------------------------------------
// What the camera cannot see: the page left (hidden, blurred, out of
// fullscreen), a second screen, headphones. Reported once the device check
// is passed, in the stages the server watches; the device check only warns.

const WATCHED = ['device_check_waiting', 'device_check_call', 'device_checked', 'interview_waiting',
  'interview_call', 'interview_done', 'rest_room'];
const watching = () => !!S.token && !!S.me && S.checked && WATCHED.includes(S.me.stage);
const fullscreenWanted = () => S.screen === 'rest' || S.screen === 'call';
// Device labels that name something worn on or in the ears.
const HEADSET = /head ?set|head ?phone|ear ?bud|earphone|airpods|耳机|bluetooth|蓝牙/i;

let away = null; // the left_page episode in progress: {key, at, reason}
let headset = null; // {key, at, labels} while headphones are connected
let extended = null; // {key, at} while the screen is extended
const newKey = (p) => `${p}-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// report sends one signal; a network failure, a 5xx or a 429 is retried
// with the same key (the server stores it once), anything else is a bug
// worth a console line but not the candidate's attention.
async function report(body, tries = 4) {
  body.sent_at = new Date().toISOString(); // the server corrects our clock with it
  try {
    return await post('/candidate/signals', body);
  } catch (e) {
    const retry = !(e instanceof ApiError) || e.status >= 500 || e.status === 429;
    if (retry && tries > 1) {
      await sleep(((e && e.retryAfter) || 2) * 1000);
      return report(body, tries - 1);
    }
    console.warn('signal not reported', body.type, e && e.message);
    return null;
  }
}

function goAway(reason) {
  if (away || !watching()) return;
  away = { key: newKey('lp'), at: new Date(), reason };
  // At once, so a proctor sees it while it lasts.
  report({ type: 'left_page', key: away.key, reason, started_at: away.at.toISOString() });
}

function comeBack(force = false) {
  if (!away) return;
  if (!force) {
    if (document.visibilityState !== 'visible') return;
    if (away.reason === 'blur' && !document.hasFocus()) return;
    if (away.reason === 'fullscreen' && !document.fullscreenElement) return;
  }
  const a = away;
  away = null;
  report({ type: 'left_page', key: a.key, reason: a.reason, started_at: a.at.toISOString(),
    duration_ms: Math.max(0, Date.now() - a.at.getTime()) });
}

document.addEventListener('visibilitychange', () => {
  if (document.visibilityState === 'hidden') goAway('hidden');
  else comeBack();
});
addEventListener('blur', () => goAway('blur'));
addEventListener('focus', () => comeBack());
document.addEventListener('fullscreenchange', () => {
  if (document.fullscreenElement) comeBack();
  else if (fullscreenWanted()) goAway('fullscreen');
  drawFullscreenPrompt();
});

function drawFullscreenPrompt() {
  const el = $('#fs-prompt');
  if (!el) return;
  show(el, fullscreenWanted() && !document.fullscreenElement && !!document.documentElement.requestFullscreen);
}
$('#fs-enter').addEventListener('click', () => {
  document.documentElement.requestFullscreen().catch((e) => toast(e.message || String(e), 'error'));
});

async function headsetLabels() {
  if (!navigator.mediaDevices || !navigator.mediaDevices.enumerateDevices) return [];
  const devices = await navigator.mediaDevices.enumerateDevices();
  const labels = devices.filter((d) => (d.kind === 'audioinput' || d.kind === 'audiooutput') && HEADSET.test(d.label))
    .map((d) => d.label.slice(0, 120));
  return [...new Set(labels)].slice(0, 8);
}

// checkExtras looks for headphones and a second screen: the device check
// shows what it found (a warning first), later stages report it.
async function checkExtras() {
  let labels = [];
  try { labels = await headsetLabels(); } catch (e) { console.warn('enumerateDevices', e); }
  // window.screen: this module's screen() shows one of the page's screens.
  // isExtended is the Window Management API's, not in every browser (nor
  // in TypeScript's DOM types yet).
  const scr = /** @type {any} */ (window.screen);
  const ext = typeof scr.isExtended === 'boolean' ? scr.isExtended : null;
  if (S.screen === 'check') {
    const parts = [];
    let state = 'ok';
    if (labels.length) { parts.push(['check.headphones_warn', { labels: labels.join('、') }]); state = 'warn'; }
    else parts.push(['check.headphones_ok']);
    if (ext === true) { parts.push(['check.screen_extended']); state = 'warn'; }
    else parts.push([ext === false ? 'check.screen_single' : 'check.screen_unknown']);
    // One status line holds both findings: the first that needs attention.
    const [key, params] = parts.find(([k]) => k === 'check.headphones_warn' || k === 'check.screen_extended') || parts[0];
    setCheck('ck-extras', state, key, params);
  }
  if (!watching()) return;
  if (labels.length && !headset) {
    headset = { key: newKey('hp'), at: new Date(), labels };
    report({ type: 'headphones', key: headset.key, started_at: headset.at.toISOString(), labels });
  } else if (!labels.length && headset) {
    const h = headset;
    headset = null;
    report({ type: 'headphones', key: h.key, started_at: h.at.toISOString(), labels: h.labels,
      duration_ms: Math.max(0, Date.now() - h.at.getTime()) });
  }
  if (ext === true && !extended) {
    extended = { key: newKey('ss'), at: new Date() };
    report({ type: 'second_screen', key: extended.key, started_at: extended.at.toISOString() });
  } else if (ext === false && extended) {
    const x = extended;
    extended = null;
    report({ type: 'second_screen', key: x.key, started_at: x.at.toISOString(), duration_ms: Math.max(0, Date.now() - x.at.getTime()) });
  }
}
if (navigator.mediaDevices && navigator.mediaDevices.addEventListener) {
  navigator.mediaDevices.addEventListener('devicechange', () => checkExtras());
}
const watchedScreen = /** @type {any} */ (window.screen);
if (watchedScreen.addEventListener) watchedScreen.addEventListener('change', () => checkExtras());

// ---- nudges ---------------------------------------------------------------------
// While one of the candidate's violations lasts, a calm banner says what
// to do about it; it goes when the violation closes. The stream replays
// the history on connect, so the open set is right after a reload too.

const openViolations = new Map(); // id → type, in opening order
const nudgesShown = []; // for the browser tests: every type that was shown
const nudgeTexts = {}; // and what its banner said (a later violation may replace it at once)

function onViolation(ev) {
  const v = ev.data || {};
  if (!v.id) return;
  if (ev.type === 'violation_opened' && !v.ended_at) openViolations.set(v.id, v.type);
  else openViolations.delete(v.id);
  drawNudge();
}

function drawNudge() {
  const el = $('#nudge');
  if (!el) return;
  const types = [...openViolations.values()];
  const type = types[types.length - 1];
  const on = !!type && !!S.me && S.screen !== 'code' && S.me.stage !== 'left';
  show(el, on);
  el.dataset.type = on ? type : '';
  if (!on) return;
  // A type this page does not know yet still gets a polite general line.
  $('#nudge-text').textContent = t('nudge.' + type, null, t('nudge.other'));
  if (nudgesShown[nudgesShown.length - 1] !== type) nudgesShown.push(type);
  nudgeTexts[type] = $('#nudge-text').textContent;
}

// ---- help ---------------------------------------------------------------------

$('#help-btn').addEventListener('click', () => {
  $('#help-error').textContent = '';
  $('#help').showModal();
  $('#help-text').focus();
});
$('#help-cancel').addEventListener('click', () => $('#help').close());
$('#help-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const text = $('#help-text').value.trim() || t('help.default');
  if (!S.token) {
    $('#help-error').textContent = t('help.need_code');
    return;
  }
  $('#help-send').disabled = true;
  try {
    await post('/candidate/help', { message: text });
    $('#help').close();
    $('#help-text').value = '';
    toast(t('help.sent'), 'ok');
  } catch (e) {
    $('#help-error').textContent = errorText(e);
  } finally {
    $('#help-send').disabled = false;
  }
});

// ---- start ---------------------------------------------------------------------

onLangChange(() => {
  redrawChecks();
  updateContinue();
  drawStatus();
  drawNudge();
  if (S.me) render();
  if ($('#denied-reason').dataset.i18n) $('#denied-reason').textContent = t($('#denied-reason').dataset.i18n);
});
wireLangSwitch();
$('#code-hint').textContent = t('code.hint');
if (S.token) {
  refresh();
} else {
  screen('code');
  $('#code-input').focus();
}
// A read-only view of the page for the browser tests (and for support, from
// the console): where the candidate is and whether video and audio are
// being sent.
/** @type {any} */ (window).invigil = {
  state: () => ({ screen: S.screen, stage: S.me && S.me.stage, sfu: S.sfuState, offline: S.offline,
    away: away ? away.reason : '', nudge: $('#nudge').dataset.type || '' }),
  nudgesShown: () => [...nudgesShown],
  nudgeTexts: () => ({ ...nudgeTexts }),
  // for the browser tests: render never runs twice at once
  mostRendersAtOnce: () => mostRendersAtOnce,
  renderTwice: () => Promise.all([render(), render()]),
  framesSent: () => sentCount('video', 'framesSent'),
  audioPacketsSent: () => sentCount('audio', 'packetsSent'),
};

async function sentCount(kind, field) {
  const pc = S.sfu && S.sfu.pub;
  if (!pc) return 0;
  let n = 0;
  (await pc.getStats()).forEach((r) => { if (r.type === 'outbound-rtp' && r.kind === kind) n += r[field] || 0; });
  return n;
}
document.body.dataset.ready = '1';
