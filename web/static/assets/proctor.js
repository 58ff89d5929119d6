// @ts-check
// The proctor's violation dashboard: a grid of every candidate in a waiting
// room or the rest room (live video, open-violation badges), the live alert
// feed with filters, and a violation's detail — evidence image, the
// recording opened at that moment with the candidate's violations marked
// on its bar, confirm/dismiss with a note, the candidate's timeline and
// risk score.
import { t, onLangChange } from './i18n.js';
import { get, post, errorText } from './api.js';
import { listen } from './events.js';
import { SfuClient } from './sfu.js';
import { VIOLATION_TYPES, SIGNALING_PATH } from './contract.js';
import {
  $, $$, h, show, toast, fmtTime, fmtDuration, stageText, stageClass, typeText, attachStream,
  wireLangSwitch, staffLogin, topBar, chooseExam, setLive,
} from './ui.js';

const TYPES = VIOLATION_TYPES;

// fromBrowser: the candidate's page reported it, not the camera's analysis.
const fromBrowser = (v) => !!(v.details && v.details.source === 'browser');
const WATCHED = ['mock', 'device_check_waiting', 'device_checked', 'interview_waiting', 'interview_done', 'rest_room'];
const roomOf = (stage) => (stage === 'rest_room' ? 'rest_room' : WATCHED.includes(stage) ? 'waiting' : '');

const S = {
  exam: null,
  candidates: new Map(), // id → CANDIDATE
  violations: new Map(), // id → VIOLATION
  room: '',
  sfu: null,
  stopEvents: null,
  reloadTimer: 0,
  detail: null, // the violation open in the dialog
  tiles: new Map(), // candidate id → tile element (kept, so videos never restart)
};

// ---- tiles ---------------------------------------------------------------------

function tileFor(c) {
  let tile = S.tiles.get(c.id);
  if (!tile) {
    tile = h('article', { class: 'tile', tabindex: '0', dataset: { candidate: c.id },
      onclick: () => openCandidate(c.id),
      onkeydown: (e) => { if (e.key === 'Enter' || e.key === ' ') { e.preventDefault(); openCandidate(c.id); } } },
    h('div', { class: 'tile-video' },
      h('video', { muted: true, playsinline: true, autoplay: true }),
      h('div', { class: 'tile-novideo' }),
      h('span', { class: 'tile-badge', hidden: true })),
    h('div', { class: 'tile-foot' },
      h('span', { class: 'dot' }),
      h('span', { class: 'tile-name' }),
      h('span', { class: 'stage-pill' }),
      h('span', { class: 'risk-chip' })));
    S.tiles.set(c.id, tile);
    const stream = S.sfu && S.sfu.remote.get('candidate-' + c.id);
    if (stream) attachStream($('video', tile), stream, { muted: true });
  }
  $('.tile-name', tile).textContent = c.name;
  const pill = $('.stage-pill', tile);
  pill.textContent = stageText(c.stage);
  pill.className = 'stage-pill ' + stageClass(c.stage);
  $('.dot', tile).className = 'dot ' + (c.online ? 'dot-on' : 'dot-off');
  $('.dot', tile).title = t(c.online ? 'presence.online' : 'presence.offline');
  const open = openCount(c.id);
  const badge = $('.tile-badge', tile);
  show(badge, open > 0);
  badge.textContent = t('grid.badge', { n: open });
  tile.classList.toggle('alarm', open > 0);
  tile.classList.toggle('offline', !c.online);
  const risk = c.risk || {};
  const chip = $('.risk-chip', tile);
  chip.textContent = risk.score !== undefined ? t('risk.short', { score: Math.round(risk.score) }) : '';
  chip.dataset.level = risk.level || 'low';
  tile.setAttribute('aria-label', t('grid.tile_aria', { name: c.name, stage: stageText(c.stage), n: open }));
  drawTileVideo(c.id);
  return tile;
}

function drawTileVideo(id) {
  const tile = S.tiles.get(id);
  if (!tile) return;
  const stream = S.sfu && S.sfu.remote.get('candidate-' + id);
  const has = !!(stream && stream.getVideoTracks().length);
  const v = $('video', tile);
  if (has && v.srcObject !== stream) attachStream(v, stream, { muted: true });
  const nv = $('.tile-novideo', tile);
  const c = S.candidates.get(id);
  nv.textContent = t(c && c.online ? 'grid.connecting' : 'grid.no_video');
  show(nv, !has);
}

function openCount(candidateId) {
  let n = 0;
  for (const v of S.violations.values()) if (v.candidate_id === candidateId && !v.ended_at && v.status !== 'dismissed') n++;
  // The list API's count also covers what our window of violations misses.
  const c = S.candidates.get(candidateId);
  return Math.max(n, c && c.open_violations ? c.open_violations : 0);
}

function drawGrid() {
  const list = [...S.candidates.values()]
    .filter((c) => roomOf(c.stage) && (!S.room || roomOf(c.stage) === S.room))
    .sort((a, b) => (openCount(b.id) - openCount(a.id)) || (Number(b.online) - Number(a.online)) || a.name.localeCompare(b.name));
  const grid = $('#grid');
  const tiles = list.map(tileFor);
  // Reorder without recreating: moving a <video> keeps it playing.
  tiles.forEach((tile, i) => { if (grid.children[i] !== tile) grid.insertBefore(tile, grid.children[i] || null); });
  while (grid.children.length > tiles.length) grid.lastChild.remove();
  $('#grid-count').textContent = String(list.length);
  const empty = $('#grid-empty');
  empty.textContent = t(S.candidates.size ? 'grid.empty_filter' : 'grid.empty');
  show(empty, list.length === 0);
}

for (const b of $$('#room-filter button')) {
  b.addEventListener('click', () => {
    S.room = b.dataset.room;
    for (const x of $$('#room-filter button')) x.setAttribute('aria-pressed', String(x === b));
    drawGrid();
  });
}

// ---- feed ---------------------------------------------------------------------

function filters() {
  return { type: $('#f-type').value, status: $('#f-status').value, candidate: $('#f-candidate').value };
}

function drawFeed() {
  const f = filters();
  const list = [...S.violations.values()]
    .filter((v) => (!f.type || v.type === f.type) && (!f.status || v.status === f.status) && (!f.candidate || String(v.candidate_id) === f.candidate))
    .sort((a, b) => (b.started_at || '').localeCompare(a.started_at || ''))
    .slice(0, 300);
  const ul = $('#feed');
  ul.replaceChildren(...list.map(feedItem));
  $('#feed-count').textContent = String(list.length);
  const empty = $('#feed-empty');
  empty.textContent = t(S.violations.size ? 'feed.empty_filter' : 'feed.empty');
  show(empty, list.length === 0);
}

function candidateName(v) {
  const c = S.candidates.get(v.candidate_id);
  return v.candidate_name || (c && c.name) || '#' + v.candidate_id;
}

function feedItem(v) {
  const open = !v.ended_at;
  return h('li', {}, h('button', {
    type: 'button', class: 'feed-row' + (open ? ' open' : ''), dataset: { violation: v.id, type: v.type, status: v.status },
    onclick: () => openDetail(v.id),
  },
  h('span', { class: 'sev sev-' + (v.status || 'pending'), 'aria-hidden': 'true' }),
  h('span', { class: 'feed-main' },
    h('span', { class: 'feed-type', text: typeText(v.type) }),
    fromBrowser(v) ? h('span', { class: 'feed-source', dataset: { source: 'browser' }, i18n: 'source.browser' }) : null,
    h('span', { class: 'feed-name', text: candidateName(v) })),
  h('span', { class: 'feed-side' },
    h('span', { class: 'tabular muted', text: fmtTime(v.started_at) }),
    h('span', { class: 'feed-status' },
      open ? h('span', { class: 'ongoing', text: t('alerts.ongoing') }) : null,
      h('span', { class: 'vstatus vstatus-' + v.status, text: t('vstatus.' + v.status) })))));
}

function drawFilters() {
  const typeSel = $('#f-type');
  const keep = typeSel.value;
  typeSel.replaceChildren(h('option', { value: '', i18n: 'filter.all_types' }), ...TYPES.map((x) => h('option', { value: x, text: typeText(x) })));
  typeSel.value = keep;
  const candSel = $('#f-candidate');
  const keepC = candSel.value;
  const cands = [...S.candidates.values()].sort((a, b) => a.name.localeCompare(b.name));
  candSel.replaceChildren(h('option', { value: '', i18n: 'filter.all_candidates' }), ...cands.map((c) => h('option', { value: c.id, text: c.name })));
  candSel.value = keepC;
}
for (const id of ['#f-type', '#f-status', '#f-candidate']) $(id).addEventListener('change', drawFeed);

// ---- loading -------------------------------------------------------------------

async function loadCandidates() {
  try {
    const list = await get(`/exams/${S.exam.id}/candidates`);
    const seen = new Set();
    for (const c of list) { S.candidates.set(c.id, c); seen.add(c.id); }
    for (const id of [...S.candidates.keys()]) if (!seen.has(id)) S.candidates.delete(id);
  } catch (e) {
    $('#grid-empty').textContent = errorText(e);
    show($('#grid-empty'), true);
    return;
  }
  subscribeAll();
  drawFilters();
  drawGrid();
}

async function loadViolations() {
  try {
    const list = await get(`/exams/${S.exam.id}/violations`);
    S.violations.clear();
    for (const v of list) S.violations.set(v.id, v);
  } catch (e) {
    $('#feed-empty').textContent = errorText(e);
    show($('#feed-empty'), true);
    return;
  }
  drawFeed();
  drawGrid();
}

function reloadSoon() {
  clearTimeout(S.reloadTimer);
  S.reloadTimer = setTimeout(loadCandidates, 300);
}

async function upsertViolation(ev) {
  let v = ev.data && (ev.data.violation || (ev.data.id ? ev.data : null));
  const id = v ? v.id : ev.data && ev.data.violation_id;
  // The event may carry only part of the violation: the API has the rest.
  if (id && (!v || !v.type || v.status === undefined)) {
    try { v = await get(`/violations/${id}`); } catch { v = null; }
  }
  if (!v) { loadViolations(); return; }
  S.violations.set(v.id, { ...(S.violations.get(v.id) || {}), ...v });
  drawFeed();
  drawGrid();
  if (S.detail && S.detail.id === v.id) openDetail(v.id, { keepPlayer: true });
  else if (S.detail && S.detail.candidate_id === v.candidate_id) drawTimeline(v.candidate_id);
}

// The stream starts with the exam's history; only what happens now pops up.
const openedAt = Date.now();

function onEvent(ev) {
  switch (ev.type) {
    case 'violation_opened':
      upsertViolation(ev);
      reloadSoon();
      break;
    case 'violation_closed': case 'violation_reviewed':
      upsertViolation(ev);
      reloadSoon();
      break;
    case 'candidate_added': case 'stage_changed': case 'presence': case 'call_started': case 'call_ended':
      reloadSoon();
      break;
    case 'help_requested': {
      const c = S.candidates.get(ev.candidate_id);
      if (new Date(ev.at).getTime() > openedAt - 10000) toast(t('helpfeed.toast', { name: c ? c.name : '#' + ev.candidate_id }), 'warn', 8000);
      break;
    }
    default:
  }
}

// ---- media ---------------------------------------------------------------------

function subscribeAll() {
  if (!S.sfu || S.sfu.state !== 'connected') return;
  for (const c of S.candidates.values()) {
    const id = 'candidate-' + c.id;
    if (roomOf(c.stage) && c.online && !S.sfu.remote.has(id) && !S.asked.has(id)) {
      S.asked.add(id);
      S.sfu.subscribe(id);
    }
  }
}

async function startMedia() {
  S.asked = new Set();
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
      onState: (state) => {
        setLive($('#media-state'), 'media_' + state);
        if (state === 'connected') { S.asked.clear(); subscribeAll(); }
      },
      onMessage: (m) => {
        const p = m.participant;
        if (m.type === 'participant_joined' && p && (p.role === 'candidate' || p.identity.startsWith('candidate-'))) {
          S.asked.add(p.identity);
          S.sfu.subscribe(p.identity);
        }
        if (m.type === 'participant_left') S.asked.delete(m.identity);
      },
      onTrack: (identity) => drawTileVideo(Number(identity.replace('candidate-', ''))),
      onTrackEnded: (identity) => drawTileVideo(Number(identity.replace('candidate-', ''))),
    });
    await S.sfu.connect();
    subscribeAll();
  } catch (e) {
    setLive($('#media-state'), 'media_failed');
    toast(t('staff.media_failed', { reason: errorText(e) }), 'error', 10000);
  }
}

// ---- detail ---------------------------------------------------------------------

async function openDetail(id, { keepPlayer = false } = {}) {
  let v = S.violations.get(id);
  try {
    v = await get(`/violations/${id}`);
    S.violations.set(id, v);
  } catch (e) {
    if (!v) { toast(errorText(e), 'error'); return; }
  }
  S.detail = v;
  const dlg = $('#detail');
  $('#detail-title').textContent = `${typeText(v.type)} · ${candidateName(v)}`;
  const st = $('#detail-status');
  st.textContent = t('vstatus.' + v.status);
  st.dataset.state = v.status === 'confirmed' ? 'bad' : v.status === 'dismissed' ? 'off' : 'warn';
  drawFacts(v);
  drawReviews(v);
  $('#review-error').textContent = '';
  if (!keepPlayer) {
    $('#review-note').value = '';
    loadEvidence(v);
    loadClip(v);
    loadPlayer(v);
  } else {
    drawMarkers();
  }
  if (!dlg.open) dlg.showModal();
  drawTimeline(v.candidate_id);
}

function drawFacts(v) {
  const dl = $('#facts');
  const rows = [
    ['detail.candidate', candidateName(v)],
    ['detail.type', fromBrowser(v) ? `${typeText(v.type)} · ${t('source.browser')}` : typeText(v.type)],
    ['detail.started', fmtTime(v.started_at)],
    ['detail.ended', v.ended_at ? fmtTime(v.ended_at) : t('alerts.ongoing')],
    ['detail.duration', v.ended_at ? fmtDuration(new Date(v.ended_at).getTime() - new Date(v.started_at).getTime()) : '—'],
    ['detail.confidence', v.confidence !== undefined ? Math.round(v.confidence * 100) + '%' : '—'],
    ['detail.reason', v.reason || '—'],
  ];
  if (fromBrowser(v)) {
    const why = v.details.reason ? t('browser_reason.' + v.details.reason, null, v.details.reason) : '';
    const labels = (v.details.labels || []).join('、');
    rows.push(['detail.source', [t('source.browser'), why, labels].filter(Boolean).join(' · ')]);
  }
  dl.replaceChildren(...rows.flatMap(([k, val]) => [h('dt', { i18n: k }), h('dd', { text: val })]));
}

function drawReviews(v) {
  const ul = $('#reviews');
  const list = v.reviews || [];
  ul.replaceChildren(...list.map((r) => h('li', { class: 'review' },
    h('span', { class: 'vstatus vstatus-' + r.decision, text: t('vstatus.' + r.decision) }),
    h('span', { class: 'muted', text: `${r.reviewer || r.username || r.staff_name || ''} ${fmtTime(r.at || r.created_at)}` }),
    r.note ? h('div', { text: r.note }) : null)));
}

function loadEvidence(v) {
  const img = $('#evidence');
  const missing = $('#evidence-missing');
  show(missing, false);
  show(img, true);
  img.onerror = () => { show(img, false); show(missing, true); };
  img.onload = () => { img.dataset.loaded = '1'; };
  img.dataset.loaded = '';
  img.alt = t('detail.evidence_alt', { type: typeText(v.type) });
  img.src = v.evidence_url || `/api/v1/violations/${v.id}/evidence`;
}

// loadClip offers what the microphone heard up to the opening, when the
// violation has a clip (it opened while the candidate's microphone was live).
function loadClip(v) {
  const audio = $('#clip');
  show($('#clip-box'), Boolean(v.clip_url));
  if (!v.clip_url) { audio.removeAttribute('src'); audio.load(); return; }
  if (audio.getAttribute('src') !== v.clip_url) audio.src = v.clip_url;
}

function loadPlayer(v) {
  const video = $('#player');
  const msg = $('#player-msg');
  video.dataset.ready = '';
  msg.dataset.i18n = 'detail.player_hint';
  msg.textContent = t('detail.player_hint');
  const url = v.recording_url || `/api/v1/violations/${v.id}/recording`;
  const at = Math.max(0, (v.recording_offset_ms || 0) / 1000);
  video.onloadedmetadata = () => {
    // Open the recording a moment before the violation began, so the
    // proctor sees it happen.
    const lead = Math.min(at, 1);
    video.currentTime = at - lead;
    drawMarkers();
  };
  video.onseeked = () => {
    video.dataset.ready = '1';
    video.dataset.at = String(video.currentTime);
    drawMarkers();
  };
  video.ontimeupdate = drawPosition;
  video.ondurationchange = drawMarkers;
  video.onerror = () => { msg.dataset.i18n = 'detail.no_recording'; msg.textContent = t('detail.no_recording'); };
  if (video.getAttribute('src') !== url) video.src = url;
  else if (video.readyState >= 1) video.onloadedmetadata();
}

// playerSpan is the length the marker bar covers: the file's duration when
// the browser knows it (a recording still being written has none), else
// enough to hold every marker.
function playerSpan() {
  const video = $('#player');
  if (Number.isFinite(video.duration) && video.duration > 0) return video.duration;
  let end = video.seekable.length ? video.seekable.end(video.seekable.length - 1) : 0;
  for (const m of markerViolations()) end = Math.max(end, m.recording_offset_ms / 1000 + 5);
  return Math.max(end, video.currentTime + 5, 10);
}

function markerViolations() {
  const v = S.detail;
  if (!v) return [];
  return [...S.violations.values()].filter((x) => x.candidate_id === v.candidate_id && x.recording_url === v.recording_url &&
    typeof x.recording_offset_ms === 'number');
}

function drawMarkers() {
  const bar = $('#player-bar');
  const span = playerSpan();
  const marks = markerViolations().map((x) => {
    const startPct = Math.min(100, (x.recording_offset_ms / 1000 / span) * 100);
    const len = x.ended_at ? (new Date(x.ended_at).getTime() - new Date(x.started_at).getTime()) / 1000 : 2;
    const m = h('button', {
      type: 'button', class: 'marker marker-' + x.status + (S.detail && x.id === S.detail.id ? ' current' : ''),
      title: `${typeText(x.type)} ${fmtTime(x.started_at)}`, 'aria-label': `${typeText(x.type)} ${fmtTime(x.started_at)}`,
      dataset: { violation: x.id },
      onclick: () => { $('#player').currentTime = x.recording_offset_ms / 1000; },
    });
    m.style.left = startPct + '%';
    m.style.width = Math.max(0.8, Math.min(100 - startPct, (len / span) * 100)) + '%';
    return m;
  });
  bar.replaceChildren($('#player-pos') || h('div', { id: 'player-pos', class: 'player-pos' }), ...marks);
  bar.dataset.markers = String(marks.length);
  drawPosition();
}

function drawPosition() {
  const video = $('#player');
  const pos = $('#player-pos');
  if (pos) pos.style.left = Math.min(100, (video.currentTime / playerSpan()) * 100) + '%';
}

async function review(decision) {
  const v = S.detail;
  if (!v) return;
  $('#review-error').textContent = '';
  const buttons = [$('#review-confirm'), $('#review-dismiss')];
  buttons.forEach((b) => { b.disabled = true; });
  try {
    const updated = await post(`/violations/${v.id}/review`, { decision, note: $('#review-note').value.trim() });
    S.violations.set(v.id, { ...v, ...updated });
    toast(t(decision === 'confirmed' ? 'review.confirmed_toast' : 'review.dismissed_toast'), 'ok');
    drawFeed();
    drawGrid();
    await openDetail(v.id, { keepPlayer: true });
  } catch (e) {
    $('#review-error').textContent = errorText(e);
  } finally {
    buttons.forEach((b) => { b.disabled = false; });
  }
}
$('#review-confirm').addEventListener('click', () => review('confirmed'));
$('#review-dismiss').addEventListener('click', () => review('dismissed'));
$('#detail-close').addEventListener('click', () => $('#detail').close());
$('#detail').addEventListener('close', () => {
  const video = $('#player');
  video.pause();
  $('#clip').pause();
  S.detail = null;
});

// A tile opens the candidate's newest violation, or just the timeline.
function openCandidate(id) {
  const list = [...S.violations.values()].filter((v) => v.candidate_id === id)
    .sort((a, b) => (b.started_at || '').localeCompare(a.started_at || ''));
  if (list.length) { openDetail(list[0].id); return; }
  $('#f-candidate').value = String(id);
  drawFeed();
  toast(t('grid.no_violations', { name: (S.candidates.get(id) || {}).name || '' }), 'info');
}

async function drawTimeline(candidateId) {
  const ol = $('#timeline');
  let tl;
  try {
    tl = await get(`/candidates/${candidateId}/timeline`);
  } catch (e) {
    ol.replaceChildren(h('li', { class: 'empty small', text: errorText(e) }));
    return;
  }
  const risk = tl.risk || {};
  const r = $('#risk');
  r.textContent = t('risk.label', { score: Math.round(risk.score || 0), level: t('risk.' + (risk.level || 'low')) });
  r.dataset.level = risk.level || 'low';
  const items = [];
  for (const s of tl.stages || []) items.push({ at: s.at, kind: 'stage', node: h('span', { text: t('timeline.stage', { stage: stageText(s.to || s.stage) }) }) });
  for (const c of tl.calls || []) items.push({ at: c.created_at, kind: 'call', node: h('span', { text: t('timeline.call', { kind: t('callkind.' + c.kind), name: c.staff_name || '', state: t('callstate.' + c.state) }) }) });
  for (const v of tl.violations || []) {
    items.push({ at: v.started_at, kind: 'violation', id: v.id, status: v.status, node: h('button', {
      type: 'button', class: 'link', onclick: () => openDetail(v.id),
    }, typeText(v.type), ' ', h('span', { class: 'vstatus vstatus-' + v.status, text: t('vstatus.' + v.status) })) });
  }
  items.sort((a, b) => (a.at || '').localeCompare(b.at || ''));
  ol.replaceChildren(...items.map((it) => h('li', {
    class: 'tl-' + it.kind + (S.detail && it.id === S.detail.id ? ' current' : ''),
    dataset: it.id ? { violation: it.id, status: it.status } : {},
  }, h('span', { class: 'tabular muted', text: fmtTime(it.at) }), it.node)));
}

// ---- start ---------------------------------------------------------------------

async function openExam(exam) {
  S.exam = exam;
  if (S.stopEvents) S.stopEvents();
  S.candidates.clear();
  S.violations.clear();
  S.tiles.clear();
  $('#grid').replaceChildren();
  if (!exam) { drawGrid(); drawFeed(); return; }
  $('#export').href = `/api/v1/exams/${exam.id}/report.csv`;
  $('#export').setAttribute('download', `invigil-exam-${exam.id}-report.csv`);
  await Promise.all([loadCandidates(), loadViolations()]);
  S.stopEvents = listen(`/api/v1/exams/${exam.id}/events`, onEvent, (state) => {
    setLive($('#live'), state);
    if (state === 'live') { reloadSoon(); }
  });
}

async function main() {
  wireLangSwitch();
  const user = await staffLogin(['proctor']);
  topBar(user);
  onLangChange(() => { drawFilters(); drawGrid(); drawFeed(); if (S.detail) openDetail(S.detail.id, { keepPlayer: true }); });
  try {
    const exam = await chooseExam(async (e) => {
      if (S.sfu) S.sfu.leave();
      await openExam(e);
      await startMedia();
    });
    await openExam(exam);
    if (exam) await startMedia();
  } catch (e) {
    toast(errorText(e), 'error', 10000);
  }
  drawGrid();
  drawFeed();
  document.body.dataset.ready = '1';
}
main();
