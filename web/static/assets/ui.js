// @ts-check
// Small DOM helpers shared by the pages, and the pieces every staff page
// has: the top bar, the language switch, the login form and the exam choice.
import { t, lang, setLang, applyI18n, onLangChange } from './i18n.js';
import { get, post, setCSRF, errorText, ApiError } from './api.js';

export const $ = (sel, root = document) => root.querySelector(sel);
export const $$ = (sel, root = document) => Array.from(root.querySelectorAll(sel));

// h builds an element: h('button', {class: 'btn', i18n: 'call', onclick}, child…).
// 'i18n' sets a translated text that follows the language switch; 'text'
// sets a literal one (names, numbers).
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') el.className = v;
    else if (k === 'text') el.textContent = v;
    else if (k === 'i18n') { el.dataset.i18n = v; el.textContent = t(v); }
    else if (k === 'i18nTitle') { el.dataset.i18nTitle = v; el.title = t(v); el.setAttribute('aria-label', t(v)); }
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (v === true) el.setAttribute(k, '');
    else el.setAttribute(k, String(v));
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

export function show(el, on = true) { el.hidden = !on; }

// toast shows a short message in a fixed corner, so nothing on the page moves.
export function toast(message, kind = 'info', ms = 4000) {
  let box = $('#toasts');
  if (!box) {
    box = h('div', { id: 'toasts', class: 'toasts', role: 'status', 'aria-live': 'polite' });
    document.body.append(box);
  }
  const el = h('div', { class: 'toast toast-' + kind, text: message });
  box.append(el);
  // A burst (several saves in a row) must not cover the page: the newest three stay.
  while (box.children.length > 3) box.firstChild.remove();
  setTimeout(() => el.remove(), ms);
  return el;
}

export function fmtTime(iso) {
  if (!iso) return '—';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return '—';
  return d.toLocaleTimeString(lang() === 'zh' ? 'zh-CN' : 'en-GB', { hour: '2-digit', minute: '2-digit', second: '2-digit' });
}

export function fmtDateTime(iso) {
  if (!iso) return '—';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return '—';
  // One compact form in both languages: tables stay on one line.
  const p = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}`;
}

export function fmtDuration(ms) {
  if (ms === null || ms === undefined || ms < 0) return '—';
  const s = Math.round(ms / 1000);
  const m = Math.floor(s / 60);
  return m ? t('dur.ms', { m, s: String(s % 60).padStart(2, '0') }) : t('dur.s', { s });
}

// since says how long ago iso was, coarse ("3 min").
export function since(iso) {
  if (!iso) return '';
  const ms = Date.now() - new Date(iso).getTime();
  if (ms < 60000) return t('ago.now');
  return t('ago.min', { n: Math.floor(ms / 60000) });
}

export const stageText = (s) => t('stage.' + s, null, s);
export const typeText = (type) => t('vtype.' + type, null, type);

export function stageClass(s) {
  if (s === 'device_check_call' || s === 'interview_call') return 'st-call';
  if (s === 'device_check_waiting' || s === 'interview_waiting') return 'st-wait';
  if (s === 'rest_room') return 'st-rest';
  if (s === 'left' || s === 'invited') return 'st-off';
  return 'st-done';
}

// wireLangSwitch makes every button.lang-switch toggle the language.
export function wireLangSwitch() {
  for (const b of $$('.lang-switch')) {
    b.addEventListener('click', () => setLang(lang() === 'zh' ? 'en' : 'zh'));
  }
  applyI18n();
}

// attachStream plays a MediaStream in a <video>, keeping it muted when it
// is our own picture (no echo) and retrying play() after autoplay refusals.
export function attachStream(video, stream, { muted = false } = {}) {
  if (video.srcObject !== stream) video.srcObject = stream;
  video.muted = muted;
  video.playsInline = true;
  video.autoplay = true;
  const p = video.play();
  if (p && p.catch) p.catch(() => {});
}

// ---- staff pages ----------------------------------------------------------

// staffLogin resolves with {user} once a staff member is signed in: at once
// from the session cookie, otherwise after the login form is used.
// roles limits who may use the page; others see a refusal and may sign in
// as someone else.
export async function staffLogin(roles) {
  const form = $('#login-form');
  const err = $('#login-error');
  const loginView = $('#login');
  const app = $('#app');
  const allowed = (u) => u.role === 'admin' || roles.includes(u.role);
  try {
    const me = await get('/auth/me');
    setCSRF(me.csrf_token);
    if (allowed(me.user)) {
      show(loginView, false);
      show(app, true);
      return me.user;
    }
    err.textContent = t('login.wrong_role');
  } catch (e) {
    if (!(e instanceof ApiError) || e.status !== 401) err.textContent = errorText(e);
  }
  show(app, false);
  show(loginView, true);
  $('#login-username', form).focus();
  return new Promise((resolve) => {
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      err.textContent = '';
      const btn = $('button[type=submit]', form);
      btn.disabled = true;
      try {
        const res = await post('/auth/login', {
          username: $('#login-username', form).value.trim(),
          password: $('#login-password', form).value,
        });
        setCSRF(res.csrf_token);
        if (!allowed(res.user)) {
          err.textContent = t('login.wrong_role');
          return;
        }
        show(loginView, false);
        show(app, true);
        resolve(res.user);
      } catch (e) {
        err.textContent = e.code === 'unauthenticated' || e.status === 401 ? t('login.bad') : errorText(e);
      } finally {
        btn.disabled = false;
      }
    });
  });
}

// topBar fills in the signed-in user and the logout button, and shows the
// links to the other staff pages the user may open.
export function topBar(user) {
  const who = $('#who');
  if (who) who.textContent = `${user.username} · ${t('role.' + user.role)}`;
  onLangChange(() => { if (who) who.textContent = `${user.username} · ${t('role.' + user.role)}`; });
  const nav = $('#nav');
  if (nav) {
    const links = [
      ['/staff', 'nav.staff', ['assistant', 'examiner']],
      ['/proctor', 'nav.proctor', ['proctor']],
      ['/admin', 'nav.admin', []],
    ];
    nav.replaceChildren(...links
      .filter(([, , roles]) => user.role === 'admin' || roles.includes(user.role))
      .map(([href, key]) => h('a', { href, i18n: key, class: location.pathname === href ? 'active' : '', 'aria-current': location.pathname === href ? 'page' : null })));
    // A link to the page one is on, alone, says nothing.
    show(nav, nav.children.length > 1);
  }
  const out = $('#logout');
  if (out) {
    out.hidden = false;
    out.addEventListener('click', async () => {
      try { await post('/auth/logout'); } catch { /* the cookie goes either way */ }
      setCSRF('');
      location.reload();
    });
  }
}

// chooseExam fills the exam <select> and resolves with the chosen exam;
// onChange is called when the user picks another one. The choice is
// remembered per browser.
export async function chooseExam(onChange) {
  const sel = $('#exam-select');
  const exams = await get('/exams');
  exams.sort((a, b) => (b.starts_at || '').localeCompare(a.starts_at || ''));
  sel.replaceChildren(...exams.map((e) => h('option', { value: e.id, text: e.name })));
  if (!exams.length) {
    // Staff see only the exams an admin assigned them to.
    sel.append(h('option', { value: '', i18n: 'exam.none_assigned' }));
    toast(t('exam.none_assigned_hint'), 'info', 15000);
    sel.disabled = true;
    return null;
  }
  const saved = Number(localStorage.getItem('invigil.exam'));
  const exam = exams.find((e) => e.id === saved) || exams[0];
  sel.value = String(exam.id);
  sel.addEventListener('change', () => {
    localStorage.setItem('invigil.exam', sel.value);
    if (onChange) onChange(exams.find((e) => String(e.id) === sel.value));
  });
  return exam;
}

// liveBadge reflects an event stream's or the SFU's state in a small pill.
export function setLive(el, state) {
  if (!el) return;
  el.dataset.state = state;
  el.dataset.i18n = 'live.' + state;
  el.textContent = t('live.' + state);
}
