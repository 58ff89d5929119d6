// @ts-check
// The staff interview room for interview assistants (device checks, spot
// checks) and examiners (interviews, scores). The waiting list follows the
// exam's live events; a call is placed through the API, and the control
// plane subscribes us to the candidate's tracks while it lasts.
import { t, onLangChange } from './i18n.js';
import { get, post, put, errorText } from './api.js';
import { listen } from './events.js';
import { SfuClient } from './sfu.js';
import { SIGNALING_PATH } from './contract.js';
import {
  $, h, show, toast, fmtTime, since, stageText, stageClass, typeText, attachStream,
  wireLangSwitch, staffLogin, topBar, chooseExam, setLive,
} from './ui.js';

const S = {
  user: null,
  exam: null,
  candidates: [],
  tab: '',
  call: null, // the call this staff member is on (ringing/active)
  focus: null, // candidate shown in the call panel (stays after the call for scoring)
  alerts: [],
  sfu: null,
  local: null,
  stopEvents: null,
  reloadTimer: 0,
  timer: 0,
};

// Which waiting lists a role works with, and the call each one places.
const TABS = {
  assistant: [
    { id: 'device', stages: ['device_check_waiting', 'device_check_call'], call: 'device_check', label: 'queue.tab_device' },
    { id: 'spot', stages: ['interview_waiting', 'rest_room', 'device_checked', 'interview_done'], call: 'spot_check', label: 'queue.tab_spot' },
  ],
  examiner: [
    { id: 'interview', stages: ['interview_waiting', 'interview_call'], call: 'interview', label: 'queue.tab_interview' },
    { id: 'done', stages: ['interview_done', 'rest_room'], call: '', label: 'queue.tab_done' },
  ],
};
TABS.admin = [...TABS.assistant, TABS.examiner[0], TABS.examiner[1]];

const tabs = () => TABS[S.user.role] || [];
const isExaminer = () => S.user.role === 'examiner' || S.user.role === 'admin';

// ---- waiting list ---------------------------------------------------------

function drawTabs() {
  const box = $('#queue-tabs');
  box.replaceChildren(...tabs().map((tab) => {
    const n = S.candidates.filter((c) => tab.stages.includes(c.stage)).length;
    return h('button', {
      type: 'button', role: 'tab', class: 'tab', id: 'tab-' + tab.id,
      'aria-selected': String(S.tab === tab.id),
      onclick: () => { S.tab = tab.id; drawQueue(); },
    }, t(tab.label), h('span', { class: 'count', text: String(n) }));
  }));
}

function drawQueue() {
  drawTabs();
  const tab = tabs().find((x) => x.id === S.tab) || tabs()[0];
  if (!tab) return;
  S.tab = tab.id;
  const list = S.candidates
    .filter((c) => tab.stages.includes(c.stage))
    .sort((a, b) => (a.stage_since || '').localeCompare(b.stage_since || ''));
  $('#queue-count').textContent = String(list.length);
  const ul = $('#queue');
  ul.replaceChildren(...list.map((c) => queueRow(c, tab)));
  const empty = $('#queue-empty');
  empty.textContent = t('queue.empty');
  show(empty, list.length === 0);
}

function queueRow(c, tab) {
  const busy = !!S.call;
  const onCall = c.call && c.call.state !== 'ended' && c.call.state !== 'declined';
  const row = h('li', { class: 'queue-row' + (S.focus && S.focus.id === c.id ? ' selected' : ''), dataset: { candidate: c.id } },
    h('span', { class: 'dot ' + (c.online ? 'dot-on' : 'dot-off'), title: t(c.online ? 'presence.online' : 'presence.offline') }),
    h('div', { class: 'queue-main' },
      h('div', { class: 'queue-name', text: c.name }),
      h('div', { class: 'queue-meta' },
        h('span', { class: 'stage-pill ' + stageClass(c.stage), text: stageText(c.stage) }),
        h('span', { class: 'muted', text: since(c.stage_since) }),
        c.open_violations ? h('span', { class: 'badge badge-danger', text: t('queue.open_violations', { n: c.open_violations }) }) : null)),
    tab.call ? h('button', {
      type: 'button', class: 'btn btn-small ' + (tab.call === 'spot_check' ? '' : 'btn-primary'),
      disabled: busy || onCall ? true : null,
      'aria-label': t('queue.call_aria', { name: c.name }),
      onclick: () => placeCall(c, tab.call),
    }, t(tab.call === 'spot_check' ? 'queue.spot' : 'queue.call')) : h('button', {
      type: 'button', class: 'btn btn-small', onclick: () => focusCandidate(c),
    }, t('queue.open')));
  return row;
}

async function loadCandidates() {
  if (!S.exam) return;
  try {
    S.candidates = await get(`/exams/${S.exam.id}/candidates`);
  } catch (e) {
    $('#queue-empty').textContent = errorText(e);
    show($('#queue-empty'), true);
    return;
  }
  // The call we are on may have moved on without us seeing its event.
  if (S.call) {
    const c = S.candidates.find((x) => x.id === S.call.candidate_id);
    if (c) syncCall(c.call && c.call.id === S.call.id ? c.call : { ...S.call, state: c.call ? c.call.state : 'ended' });
  } else {
    const mine = S.candidates.find((c) => c.call && c.call.staff_id === S.user.id && ['ringing', 'active'].includes(c.call.state));
    if (mine) { S.focus = mine; syncCall(mine.call); }
  }
  if (S.focus) S.focus = S.candidates.find((x) => x.id === S.focus.id) || S.focus;
  drawQueue();
  drawCallHeader();
}

function reloadSoon() {
  clearTimeout(S.reloadTimer);
  S.reloadTimer = setTimeout(loadCandidates, 250);
}

// ---- calls ---------------------------------------------------------------

async function placeCall(c, kind) {
  $('#call-error').textContent = '';
  try {
    S.focus = c;
    S.alerts = [];
    drawAlerts();
    const call = await post(`/candidates/${c.id}/calls`, { kind });
    syncCall(call);
    loadAlerts();
    drawScore();
  } catch (e) {
    $('#call-error').textContent = errorText(e);
    toast(errorText(e), 'error');
  }
  reloadSoon();
}

function focusCandidate(c) {
  S.focus = c;
  S.alerts = [];
  drawAlerts();
  loadAlerts();
  drawScore();
  drawQueue();
  drawCallHeader();
}

function syncCall(call) {
  if (!call || call.state === 'ended' || call.state === 'declined') {
    if (S.call) {
      toast(t(call && call.state === 'declined' ? 'call.declined' : 'call.ended'), 'info');
      if (S.sfu && S.call) showRemote(null);
    }
    S.call = null;
  } else {
    S.call = call;
  }
  drawCallHeader();
  drawQueue();
}

function drawCallHeader() {
  const call = S.call;
  const c = S.focus;
  $('#call-name').textContent = c ? c.name : t('call.none_title');
  const st = $('#call-state');
  show(st, !!call);
  if (call) {
    st.textContent = t('callstate.' + call.state) + ' · ' + t('callkind.' + call.kind);
    st.dataset.state = call.state === 'active' ? 'ok' : 'warn';
  }
  const active = call && (call.state === 'active' || call.state === 'ringing');
  $('#end-done').disabled = !active;
  $('#end-done').textContent = t(call && call.kind === 'interview' ? 'call.end_interview' : call && call.kind === 'spot_check' ? 'call.end_spot' : 'call.end_device');
  show($('#end-retry'), !call || call.kind !== 'spot_check');
  $('#end-retry').disabled = !active;
  $('#end-retry').textContent = t(call && call.kind === 'interview' ? 'call.end_back' : 'call.end_retry');
  show($('#calibrate'), !!call && call.kind === 'device_check' && call.state === 'active');
  // A spot check is one-way: the candidate does not see us, so no self-view.
  show($('.call-panel .pip'), !!S.local && (!call || call.kind !== 'spot_check'));
  clearInterval(S.timer);
  if (call && call.state === 'active') {
    const start = new Date(call.accepted_at || call.created_at).getTime();
    const tick = () => {
      const s = Math.max(0, Math.floor((Date.now() - start) / 1000));
      $('#call-timer').textContent = `${String(Math.floor(s / 60)).padStart(2, '0')}:${String(s % 60).padStart(2, '0')}`;
    };
    tick();
    S.timer = setInterval(tick, 1000);
  } else {
    $('#call-timer').textContent = call ? t('call.ringing_hint') : '';
  }
  const remote = c && S.sfu && S.sfu.remote.get('candidate-' + c.id);
  showRemote(call ? remote : null);
}

function showRemote(stream) {
  const v = $('#remote');
  const has = !!(stream && stream.getVideoTracks().length);
  if (has) attachStream(v, stream);
  else v.srcObject = null;
  const empty = $('#remote-empty');
  empty.textContent = t(S.call ? (S.call.state === 'ringing' ? 'call.ringing_video' : 'call.waiting_video') : 'call.pick_someone');
  show(empty, !has);
}

async function endCall(outcome) {
  if (!S.call) return;
  $('#call-error').textContent = '';
  try {
    const call = await post(`/calls/${S.call.id}/end`, { outcome });
    syncCall(call);
  } catch (e) {
    $('#call-error').textContent = errorText(e);
  }
  reloadSoon();
}
$('#end-done').addEventListener('click', () => endCall('done'));
$('#end-retry').addEventListener('click', () => endCall('retry'));
$('#calibrate').addEventListener('click', async () => {
  if (!S.focus) return;
  try {
    await post(`/candidates/${S.focus.id}/calibrate`);
    toast(t('call.calibrate_started'), 'ok');
  } catch (e) {
    toast(errorText(e), 'error');
  }
});

// ---- score (examiner) ---------------------------------------------------------

async function drawScore() {
  const panel = $('#score-panel');
  const c = S.focus;
  const show2 = isExaminer() && !!c && ['interview_call', 'interview_done', 'rest_room', 'interview_waiting'].includes(c.stage);
  show(panel, show2);
  if (!show2) return;
  $('#score-for').textContent = c.name;
  $('#score-error').textContent = '';
  $('#score-status').textContent = '';
  if (panel.dataset.candidate !== String(c.id)) {
    panel.dataset.candidate = String(c.id);
    $('#score-input').value = '';
    $('#score-comment').value = '';
    try {
      const sc = await get(`/candidates/${c.id}/score`);
      if (sc) {
        $('#score-input').value = sc.score ?? '';
        $('#score-comment').value = sc.comment || '';
        $('#score-status').textContent = sc.published_at ? t('score.published_at', { at: fmtTime(sc.published_at) }) : t('score.saved');
      }
    } catch { /* no score yet */ }
  }
}

async function saveScore() {
  const c = S.focus;
  const v = Number($('#score-input').value);
  if ($('#score-input').value === '' || !(v >= 0 && v <= 100)) {
    $('#score-error').textContent = t('score.invalid');
    $('#score-input').focus();
    return false;
  }
  $('#score-error').textContent = '';
  try {
    await put(`/candidates/${c.id}/score`, { score: v, comment: $('#score-comment').value.trim() });
    $('#score-status').textContent = t('score.saved');
    return true;
  } catch (e) {
    $('#score-error').textContent = errorText(e);
    return false;
  }
}
$('#score-form').addEventListener('submit', (ev) => { ev.preventDefault(); saveScore(); });
$('#score-publish').addEventListener('click', async () => {
  if (!(await saveScore())) return;
  try {
    const sc = await post(`/candidates/${S.focus.id}/score/publish`);
    $('#score-status').textContent = t('score.published_at', { at: fmtTime(sc && sc.published_at) });
    toast(t('score.published_toast', { name: S.focus.name }), 'ok');
  } catch (e) {
    $('#score-error').textContent = errorText(e);
  }
});

// ---- AI alerts for the candidate in the panel ------------------------------------

async function loadAlerts() {
  const c = S.focus;
  if (!c) return;
  try {
    const list = await get(`/exams/${S.exam.id}/violations?candidate=${c.id}`);
    if (!S.focus || S.focus.id !== c.id) return;
    S.alerts = list;
  } catch { /* keep what we have */ }
  drawAlerts();
}

function drawAlerts() {
  const ul = $('#alerts');
  const list = [...S.alerts].sort((a, b) => (b.started_at || '').localeCompare(a.started_at || '')).slice(0, 50);
  ul.replaceChildren(...list.map((v) => h('li', { class: 'alert-item' + (v.ended_at ? '' : ' open'), dataset: { type: v.type } },
    h('span', { class: 'alert-type', text: typeText(v.type) }),
    h('span', { class: 'muted tabular', text: fmtTime(v.started_at) }),
    h('span', { class: 'muted', text: v.ended_at ? t('alerts.closed') : t('alerts.ongoing') }))));
  $('#alerts-count').textContent = list.length ? String(list.length) : '';
  show($('#alerts-empty'), list.length === 0);
  $('#alerts-empty').textContent = t(S.focus ? 'alerts.empty' : 'alerts.no_candidate');
}

function helpRequest(ev) {
  const c = S.candidates.find((x) => x.id === ev.candidate_id);
  const name = c ? c.name : '#' + ev.candidate_id;
  const text = (ev.data && ev.data.message) || '';
  if (fresh(ev)) toast(t('helpfeed.toast', { name }), 'warn', 8000);
  const ul = $('#helpfeed');
  ul.prepend(h('li', { class: 'feed-item' },
    h('strong', { text: name }), h('span', { class: 'muted tabular', text: fmtTime(ev.at) }),
    h('div', { text })));
  while (ul.children.length > 30) ul.lastChild.remove();
  show($('#helpfeed-empty'), false);
}

// ---- live events ---------------------------------------------------------------

// The stream starts with the exam's history; only what happens now pops up.
const openedAt = Date.now();
const fresh = (ev) => new Date(ev.at).getTime() > openedAt - 10000;

function onEvent(ev) {
  switch (ev.type) {
    case 'candidate_added': case 'stage_changed': case 'presence':
      reloadSoon();
      break;
    case 'call_ringing': case 'call_started': case 'call_ended': {
      const call = ev.data && (ev.data.call || (ev.data.id && ev.data.state ? ev.data : null));
      if (call && S.call && call.id === S.call.id) syncCall(call);
      reloadSoon();
      break;
    }
    case 'violation_opened': case 'violation_closed': case 'violation_reviewed':
      if (S.focus && ev.candidate_id === S.focus.id) {
        const v = ev.data && (ev.data.violation || ev.data);
        if (v && v.id) {
          const i = S.alerts.findIndex((x) => x.id === v.id);
          if (i >= 0) S.alerts[i] = { ...S.alerts[i], ...v }; else S.alerts.push(v);
          drawAlerts();
        } else loadAlerts();
        if (ev.type === 'violation_opened' && fresh(ev)) toast(t('alerts.toast', { type: typeText(v && v.type), name: S.focus.name }), 'warn');
      }
      reloadSoon();
      break;
    case 'help_requested':
      helpRequest(ev);
      break;
    default:
  }
}

// ---- media ---------------------------------------------------------------------

// Assistants and examiners talk with candidates; an admin here only
// watches (the SFU grants an admin no publishing).
const talks = () => S.user.role === 'assistant' || S.user.role === 'examiner';

async function startMedia() {
  if (talks() && !S.local) {
    try {
      S.local = await navigator.mediaDevices.getUserMedia({ video: { width: { ideal: 640 }, height: { ideal: 480 } }, audio: true });
      attachStream($('#self'), S.local, { muted: true });
    } catch (e) {
      toast(t('staff.no_camera', { reason: e.name }), 'error', 10000);
    }
  }
  show($('.call-panel .pip'), !!S.local);
  try {
    // Each join asks where the exam's media are (with several nodes, its
    // media node, which may change when one goes away) and for a token.
    let tok = null;
    S.sfu = new SfuClient({
      url: async () => {
        tok = await post('/media/token', { exam_id: S.exam.id });
        return tok.url || SIGNALING_PATH;
      },
      token: async () => (tok || (await post('/media/token', { exam_id: S.exam.id }))).token,
      onState: (state) => setLive($('#media-state'), 'media_' + state),
      onTrack: () => drawCallHeader(),
      onTrackEnded: () => drawCallHeader(),
    });
    await S.sfu.connect();
    if (S.local) await S.sfu.publish(S.local);
  } catch (e) {
    setLive($('#media-state'), 'media_failed');
    toast(t('staff.media_failed', { reason: errorText(e) }), 'error', 10000);
  }
}

// ---- start ---------------------------------------------------------------------

async function openExam(exam) {
  S.exam = exam;
  if (S.stopEvents) S.stopEvents();
  S.candidates = [];
  S.call = null;
  S.focus = null;
  if (!exam) { drawQueue(); return; }
  await loadCandidates();
  S.stopEvents = listen(`/api/v1/exams/${exam.id}/events`, onEvent, (state) => {
    setLive($('#live'), state);
    if (state === 'live') reloadSoon();
  });
}

async function main() {
  wireLangSwitch();
  S.user = await staffLogin(['assistant', 'examiner']);
  topBar(S.user);
  S.tab = tabs()[0] ? tabs()[0].id : '';
  onLangChange(() => { drawQueue(); drawCallHeader(); drawAlerts(); });
  drawAlerts();
  show($('#helpfeed-empty'), true);
  try {
    const exam = await chooseExam((e) => { if (S.sfu) S.sfu.leave(); S.sfu = null; openExam(e).then(startMedia); });
    await openExam(exam);
    if (exam) await startMedia();
    else { $('#queue-empty').textContent = t('exam.none'); show($('#queue-empty'), true); }
  } catch (e) {
    toast(errorText(e), 'error', 10000);
  }
  setInterval(() => { if (S.candidates.length) drawQueue(); }, 30000); // "waiting 3 min" ages
  document.body.dataset.ready = '1';
}
main();
