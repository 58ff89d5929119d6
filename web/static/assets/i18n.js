// @ts-check
// Every visible string goes through t(). Simplified Chinese is the default;
// the English switch is remembered in localStorage. Static markup carries
// data-i18n (text), data-i18n-placeholder, data-i18n-title (title and
// aria-label) attributes, which applyI18n fills in; code calls t().
import { zh, en } from './strings.js';

const KEY = 'invigil.lang';
const dicts = { zh, en };
let current = localStorage.getItem(KEY) === 'en' ? 'en' : 'zh';
const listeners = [];

export const lang = () => current;

// t looks key up in the current language, then in Chinese; {name}
// placeholders are replaced from params. A missing key is a bug: it is
// logged (the browser tests fail on it) and shows fallback, or the key.
export function t(key, params, fallback) {
  let s = dicts[current][key];
  if (s === undefined) s = dicts.zh[key];
  if (s === undefined) {
    if (fallback !== undefined) return fallback;
    console.warn('i18n: missing key ' + key);
    return key;
  }
  if (params) s = s.replace(/\{(\w+)\}/g, (m, k) => (params[k] === undefined ? m : String(params[k])));
  return s;
}

// pick chooses the current language's side of a {zh, en} text from the API.
export function pick(text) {
  if (!text) return '';
  if (typeof text === 'string') return text;
  return text[current] || text.zh || text.en || '';
}

export function applyI18n(root = document) {
  document.documentElement.lang = current === 'zh' ? 'zh-CN' : 'en';
  for (const el of root.querySelectorAll('[data-i18n]')) el.textContent = t(/** @type {HTMLElement} */ (el).dataset.i18n);
  for (const el of /** @type {NodeListOf<HTMLInputElement>} */ (root.querySelectorAll('[data-i18n-placeholder]'))) el.placeholder = t(el.dataset.i18nPlaceholder);
  for (const el of /** @type {NodeListOf<HTMLElement>} */ (root.querySelectorAll('[data-i18n-title]'))) {
    el.title = t(el.dataset.i18nTitle);
    el.setAttribute('aria-label', t(el.dataset.i18nTitle));
  }
  for (const el of root.querySelectorAll('.lang-switch')) {
    el.textContent = t('lang.other');
    el.setAttribute('aria-label', t('lang.switch'));
  }
}

export function setLang(l) {
  current = l === 'en' ? 'en' : 'zh';
  localStorage.setItem(KEY, current);
  applyI18n();
  for (const fn of listeners) fn(current);
}

// onLangChange registers fn to redraw what applyI18n cannot reach (text
// built from data).
export function onLangChange(fn) { listeners.push(fn); }
