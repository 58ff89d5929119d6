// @ts-check
// The admin console: exams, candidates (CSV import, codes export), staff
// accounts, which staff work on each exam, and the detection policy of
// each room.
import { t, onLangChange } from './i18n.js';
import { get, post, put, patch, errorText } from './api.js';
import { $, $$, h, show, toast, fmtDateTime, stageText, stageClass, typeText, wireLangSwitch, staffLogin, topBar } from './ui.js';
import { POLICY_TYPES } from './contract.js';

// The rules a policy can turn on; the browser's own reports (left_page,
// second_screen, headphones) are not policy rules.
const TYPES = POLICY_TYPES;
// The thresholds shown in the form; the rest keep their defaults.
const FIELDS = [
  ['analysis_fps', 'pol.analysis_fps', 0.5],
  ['distance_cm', 'pol.distance_cm', 1],
  ['distance_tolerance_cm', 'pol.distance_tolerance_cm', 1],
  ['yaw_limit_deg', 'pol.yaw_limit_deg', 1],
  ['pitch_limit_deg', 'pol.pitch_limit_deg', 1],
  ['min_visible_fraction', 'pol.min_visible_fraction', 0.05],
  ['required_hands', 'pol.required_hands', 1],
  ['hands_every', 'pol.hands_every', 1],
  ['face_detect_every', 'pol.face_detect_every', 1],
  ['palm_still_every', 'pol.palm_still_every', 1],
  ['talk_window_ms', 'pol.talk_window_ms', 100],
  ['phone_speech_ms', 'pol.phone_speech_ms', 100],
  ['phone_silent_ms', 'pol.phone_silent_ms', 100],
];

const S = { user: null, exams: [], users: [], section: 'exams', room: 'waiting' };

// ---- sections --------------------------------------------------------------

function openSection(name) {
  S.section = name;
  for (const b of $$('.side-link')) {
    if (b.dataset.section === name) b.setAttribute('aria-current', 'page'); else b.removeAttribute('aria-current');
  }
  for (const s of $$('.section')) show(s, s.id === 'sec-' + name);
  history.replaceState(null, '', '#' + name);
  if (name === 'candidates') loadCandidates();
  if (name === 'users') loadUsers();
  if (name === 'staff') loadStaff();
  if (name === 'policies') drawPolicy();
}
for (const b of $$('.side-link')) b.addEventListener('click', () => openSection(b.dataset.section));

// ---- exams -----------------------------------------------------------------

async function loadExams() {
  try {
    S.exams = await get('/exams');
  } catch (e) {
    toast(errorText(e), 'error');
    return;
  }
  S.exams.sort((a, b) => (b.starts_at || '').localeCompare(a.starts_at || ''));
  drawExams();
}

function drawExams() {
  const tb = $('#exam-table tbody');
  tb.replaceChildren(...S.exams.map((e) => h('tr', {},
    h('td', { text: e.name }),
    h('td', { class: 'tabular', text: fmtDateTime(e.starts_at) }),
    h('td', { class: 'tabular', text: fmtDateTime(e.ends_at) }),
    h('td', {}, h('button', { type: 'button', class: 'btn btn-small', onclick: () => { pickExam(e.id); openSection('candidates'); } }, t('exam.open'))))));
  show($('#exam-empty'), !S.exams.length);
  for (const sel of $$('.exam-picker')) {
    const keep = sel.value || localStorage.getItem('invigil.exam') || '';
    sel.replaceChildren(...S.exams.map((e) => h('option', { value: e.id, text: e.name })));
    if (S.exams.some((e) => String(e.id) === keep)) sel.value = keep;
  }
}

function pickExam(id) {
  localStorage.setItem('invigil.exam', String(id));
  for (const sel of $$('.exam-picker')) sel.value = String(id);
}
const examId = () => Number($('#cand-exam').value) || 0;

function defaultTimes() {
  // From now (to five minutes) for three hours, in local time: an exam
  // made on the day is usually one about to start.
  const pad = (n) => String(n).padStart(2, '0');
  const local = (d) => `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
  const start = new Date();
  start.setMinutes(start.getMinutes() - (start.getMinutes() % 5), 0, 0);
  $('#exam-starts').value = local(start);
  $('#exam-ends').value = local(new Date(start.getTime() + 3 * 3600e3));
}

$('#exam-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const err = $('#exam-error');
  err.textContent = '';
  const name = $('#exam-name').value.trim();
  const starts = new Date($('#exam-starts').value);
  const ends = new Date($('#exam-ends').value);
  if (!name) { err.textContent = t('exam.need_name'); $('#exam-name').focus(); return; }
  if (Number.isNaN(starts.getTime()) || Number.isNaN(ends.getTime()) || ends <= starts) { err.textContent = t('exam.bad_times'); return; }
  const body = { name, starts_at: starts.toISOString(), ends_at: ends.toISOString() };
  const late = $('#exam-late').value.trim();
  if (late !== '') {
    const n = Number(late);
    if (!Number.isInteger(n) || n < 0 || n > 1440) { err.textContent = t('exam.bad_late'); $('#exam-late').focus(); return; }
    body.late_login_minutes = n;
  }
  try {
    const res = await post('/exams', body);
    toast(t('exam.created', { name }), 'ok');
    $('#exam-name').value = '';
    await loadExams();
    pickExam(res.id);
  } catch (e) {
    err.textContent = errorText(e);
  }
});

// ---- candidates ----------------------------------------------------------------

async function loadCandidates() {
  const id = examId();
  const tb = $('#cand-table tbody');
  $('#codes-export').href = id ? `/api/v1/exams/${id}/codes.csv` : '#';
  $('#codes-export').setAttribute('download', `invigil-exam-${id}-codes.csv`);
  if (!id) { tb.replaceChildren(); show($('#cand-empty'), true); return; }
  try {
    const list = await get(`/exams/${id}/candidates`);
    tb.replaceChildren(...list.map((c) => h('tr', {},
      h('td', { class: 'tabular', text: c.id }),
      h('td', { text: c.name }),
      h('td', { text: c.external_id || '' }),
      h('td', {}, h('span', { class: 'stage-pill ' + stageClass(c.stage), text: stageText(c.stage) })),
      h('td', { class: 'tabular', text: c.open_violations || 0 }))));
    show($('#cand-empty'), !list.length);
  } catch (e) {
    tb.replaceChildren();
    $('#cand-empty').textContent = errorText(e);
    show($('#cand-empty'), true);
  }
}
$('#cand-exam').addEventListener('change', () => { pickExam($('#cand-exam').value); loadCandidates(); });

$('#import-file').addEventListener('change', async () => {
  const f = $('#import-file').files[0];
  if (f) $('#import-text').value = await f.text();
});

$('#import-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const err = $('#import-error');
  err.textContent = '';
  $('#import-result').textContent = '';
  const csv = $('#import-text').value.trim();
  if (!csv) { err.textContent = t('cand.import_empty'); return; }
  if (!examId()) { err.textContent = t('exam.none'); return; }
  try {
    const res = await post(`/exams/${examId()}/candidates/import`, csv + '\n', { type: 'text/csv; charset=utf-8' });
    const n = (res.created || []).length;
    $('#import-result').textContent = t('cand.imported', { n });
    toast(t('cand.imported', { n }), 'ok');
    $('#import-text').value = '';
    $('#import-file').value = '';
    loadCandidates();
  } catch (e) {
    err.textContent = errorText(e);
  }
});

$('#add-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const err = $('#add-error');
  err.textContent = '';
  const name = $('#add-name').value.trim();
  if (!name) { err.textContent = t('cand.need_name'); return; }
  try {
    const res = await post(`/exams/${examId()}/candidates`, { name });
    $('#add-result').textContent = t('cand.added', { name, mock: res.codes.mock, interview: res.codes.interview, rest: res.codes.rest_room });
    $('#add-name').value = '';
    loadCandidates();
  } catch (e) {
    err.textContent = errorText(e);
  }
});

// ---- users ------------------------------------------------------------------------

async function loadUsers() {
  try {
    S.users = await get('/users');
  } catch (e) {
    toast(errorText(e), 'error');
    return;
  }
  const tb = $('#user-table tbody');
  tb.replaceChildren(...S.users.map((u) => h('tr', { class: u.disabled ? 'disabled' : '' },
    h('td', { text: u.username }),
    h('td', { text: t('role.' + u.role) }),
    h('td', {}, h('span', { class: 'pill', dataset: { state: u.disabled ? 'off' : 'ok' }, text: t(u.disabled ? 'user.disabled' : 'user.active') })),
    h('td', {}, u.id === S.user.id ? null : h('button', {
      type: 'button', class: 'btn btn-small',
      onclick: async () => {
        try {
          await patch(`/users/${u.id}`, { disabled: !u.disabled });
          loadUsers();
        } catch (e) { toast(errorText(e), 'error'); }
      },
    }, t(u.disabled ? 'user.enable' : 'user.disable'))))));
}

$('#user-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const err = $('#user-error');
  err.textContent = '';
  const username = $('#user-name').value.trim();
  const password = $('#user-password').value;
  if (!username || password.length < 8) { err.textContent = t('user.need_fields'); return; }
  try {
    await post('/users', { username, password, role: $('#user-role').value });
    toast(t('user.created', { name: username }), 'ok');
    $('#user-name').value = '';
    $('#user-password').value = '';
    loadUsers();
  } catch (e) {
    err.textContent = errorText(e);
  }
});

// ---- exam staff ---------------------------------------------------------------------
// Who works on the chosen exam: every enabled assistant, examiner and
// proctor with a tick box; saving replaces the exam's staff as a whole.

let staffLoads = 0;

async function loadStaff() {
  // Only the latest load draws (a quick change of exam must not leave the
  // ticks of the one before), and the form says when it has: ticking a box
  // in a table about to be redrawn would be lost.
  const seq = ++staffLoads;
  const form = $('#staff-form');
  form.dataset.state = 'loading';
  const id = Number($('#staff-exam').value);
  $('#staff-error').textContent = '';
  $('#staff-status').textContent = '';
  if (!id) { $('#staff-error').textContent = t('exam.none'); form.dataset.state = 'ready'; return; }
  let users, staff;
  try {
    [users, staff] = await Promise.all([get('/users'), get(`/exams/${id}/staff`)]);
  } catch (e) {
    if (seq !== staffLoads) return;
    $('#staff-error').textContent = errorText(e);
    form.dataset.state = 'ready';
    return;
  }
  if (seq !== staffLoads) return;
  const on = new Set(staff.user_ids || []);
  // Disabled accounts cannot be assigned; one still on the list is shown so
  // that saving visibly takes them off.
  const rows = users.filter((u) => !u.disabled || on.has(u.id));
  $('#staff-table tbody').replaceChildren(...rows.map((u) => h('tr', { class: u.disabled ? 'disabled' : '', dataset: { user: u.username } },
    h('td', {}, u.role === 'admin'
      ? h('span', { class: 'muted small', text: t('staff.admin_all') })
      : h('input', { type: 'checkbox', class: 'staff-on', value: u.id, checked: on.has(u.id) ? true : null,
        disabled: u.disabled && !on.has(u.id) ? true : null, 'aria-label': t('staff.toggle_aria', { name: u.username }) })),
    h('td', { text: u.username }),
    h('td', { text: t('role.' + u.role) }),
    h('td', {}, h('span', { class: 'pill', dataset: { state: u.disabled ? 'off' : 'ok' }, text: t(u.disabled ? 'user.disabled' : 'user.active') })))));
  show($('#staff-empty'), !rows.some((u) => u.role !== 'admin'));
  form.dataset.exam = String(id);
  form.dataset.state = 'ready';
}
$('#staff-exam').addEventListener('change', () => { pickExam($('#staff-exam').value); loadStaff(); });

$('#staff-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const id = Number($('#staff-exam').value);
  $('#staff-error').textContent = '';
  $('#staff-status').textContent = '';
  if (!id) { $('#staff-error').textContent = t('exam.none'); return; }
  const ids = $$('#staff-table .staff-on').filter((b) => b.checked).map((b) => Number(b.value));
  try {
    const res = await put(`/exams/${id}/staff`, { user_ids: ids });
    const n = (res.user_ids || []).length;
    $('#staff-status').textContent = t('staff.saved', { n });
    toast(t('staff.saved', { n }), 'ok');
    loadStaff().then(() => { $('#staff-status').textContent = t('staff.saved', { n }); });
  } catch (e) {
    $('#staff-error').textContent = errorText(e);
  }
});

// ---- policies ----------------------------------------------------------------------

for (const b of $$('#pol-room button')) {
  b.addEventListener('click', () => {
    S.room = b.dataset.room;
    for (const x of $$('#pol-room button')) x.setAttribute('aria-pressed', String(x === b));
    drawPolicy();
  });
}
$('#pol-exam').addEventListener('change', () => { pickExam($('#pol-exam').value); drawPolicy(); });

async function drawPolicy() {
  const id = Number($('#pol-exam').value);
  $('#pol-error').textContent = '';
  $('#pol-status').textContent = '';
  if (!id) { $('#pol-error').textContent = t('exam.none'); return; }
  let exam;
  try { exam = await get(`/exams/${id}`); } catch (e) { $('#pol-error').textContent = errorText(e); return; }
  const p = (exam.policies || {})[S.room] || {};
  const rules = p.rules || {};
  $('#pol-rules tbody').replaceChildren(...TYPES.map((type) => {
    const r = rules[type] || { enabled: false, min_ms: 2000, clear_ms: 1500 };
    return h('tr', { dataset: { type } },
      h('th', { scope: 'row', text: typeText(type) }),
      h('td', {}, h('input', { type: 'checkbox', class: 'pol-enabled', checked: r.enabled ? true : null, 'aria-label': t('pol.enabled_aria', { type: typeText(type) }) })),
      h('td', {}, h('input', { type: 'number', class: 'pol-min', min: 0, step: 100, value: r.min_ms, 'aria-label': t('pol.min_ms') })),
      h('td', {}, h('input', { type: 'number', class: 'pol-clear', min: 0, step: 100, value: r.clear_ms, 'aria-label': t('pol.clear_ms') })));
  }));
  $('#pol-fields').replaceChildren(...FIELDS.map(([key, label, step]) => h('label', { class: 'field' },
    h('span', { class: 'field-label', text: t(label) }),
    h('input', { type: 'number', step, dataset: { key }, value: p[key] ?? '' }))));
}

$('#pol-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const id = Number($('#pol-exam').value);
  const body = { rules: {} };
  for (const tr of $$('#pol-rules tbody tr')) {
    body.rules[tr.dataset.type] = {
      enabled: $('.pol-enabled', tr).checked,
      min_ms: Number($('.pol-min', tr).value),
      clear_ms: Number($('.pol-clear', tr).value),
    };
  }
  for (const input of $$('#pol-fields input')) {
    if (input.value !== '') body[input.dataset.key] = Number(input.value);
  }
  $('#pol-error').textContent = '';
  try {
    await put(`/exams/${id}/policies/${S.room}`, body);
    $('#pol-status').textContent = t('pol.saved');
    toast(t('pol.saved'), 'ok');
  } catch (e) {
    $('#pol-error').textContent = errorText(e);
  }
});

// ---- start --------------------------------------------------------------------------

async function main() {
  wireLangSwitch();
  S.user = await staffLogin([]);
  topBar(S.user);
  defaultTimes();
  await loadExams();
  onLangChange(() => { drawExams(); openSection(S.section); });
  const want = location.hash.slice(1);
  openSection(['exams', 'candidates', 'users', 'staff', 'policies'].includes(want) ? want : 'exams');
  document.body.dataset.ready = '1';
}
main();
