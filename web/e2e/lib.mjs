// Shared pieces of the browser tests: Debian's Chromium with a fake camera
// playing a Y4M clip (see ../../../shared/BROWSER.md), page watchers that
// fail the run on script errors, CSP refusals and untranslated strings,
// screenshots, and a small API client for setting up data.
import { chromium } from 'playwright-core';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

function need(name) {
  const v = process.env[name];
  if (!v) throw new Error(`environment variable ${name} is not set (web/browser_test.go sets it)`);
  return v;
}

// Read when used, so a script needs only the variables it uses.
export const env = {
  get base() { return need('INVIGIL_URL').replace(/\/$/, ''); },
  get adminPassword() { return need('INVIGIL_ADMIN_PASSWORD'); },
  get faceClip() { return need('INVIGIL_FACE_Y4M'); },
  get emptyClip() { return need('INVIGIL_EMPTY_Y4M'); },
  get speechWav() { return need('INVIGIL_SPEECH_WAV'); },
  get shots() { return need('INVIGIL_SCREENSHOTS'); },
  get chromium() { return process.env.INVIGIL_CHROMIUM || '/usr/bin/chromium'; },
};

const problems = [];
const browsers = [];
const t0 = Date.now();

export function log(...args) {
  console.log(`[${((Date.now() - t0) / 1000).toFixed(1).padStart(6)}s]`, ...args);
}

export function fail(msg) {
  throw new Error(msg);
}

export function check(cond, msg) {
  if (!cond) throw new Error('check failed: ' + msg);
}

// launch starts a Chromium whose camera plays clip (and, given audio, whose
// microphone plays that WAV file, looping; otherwise Chromium's beeps).
// Without fakeUI the permission prompt is not auto-accepted, so
// getUserMedia is refused (the "denied camera" case).
export async function launch(clip, { fakeUI = true, audio = '' } = {}) {
  const args = [
    '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
    '--use-fake-device-for-media-stream', `--use-file-for-fake-video-capture=${clip}`,
    '--autoplay-policy=no-user-gesture-required',
  ];
  if (audio) args.push(`--use-file-for-fake-audio-capture=${audio}`);
  if (fakeUI) args.push('--use-fake-ui-for-media-stream');
  const browser = await chromium.launch({ executablePath: env.chromium, headless: true, args });
  browsers.push(browser);
  return browser;
}

export async function newPage(browser, name, { grant = true, lang = 'zh' } = {}) {
  const ctx = await browser.newContext({
    viewport: { width: 1366, height: 800 },
    locale: lang === 'en' ? 'en-GB' : 'zh-CN',
    timezoneId: 'Asia/Shanghai',
    permissions: grant ? ['camera', 'microphone'] : [],
  });
  const page = await ctx.newPage();
  page.setDefaultTimeout(20000);
  watch(page, name);
  return page;
}

// watch records what must never happen on a page.
export function watch(page, name) {
  page.on('pageerror', (e) => problems.push(`${name}: uncaught ${e.message}`));
  page.on('console', (m) => {
    const text = m.text();
    if (text.includes('i18n: missing')) problems.push(`${name}: ${text}`);
    if (text.includes('Content Security Policy') || text.includes('Refused to')) problems.push(`${name}: CSP: ${text}`);
    if (m.type() === 'error' && !/Failed to load resource|net::ERR_INTERNET_DISCONNECTED|WebSocket connection|EventSource/.test(text)) {
      problems.push(`${name}: console error: ${text}`);
    }
  });
  page.on('response', (res) => {
    const url = res.url();
    if (url.includes('/assets/') && res.status() >= 400) problems.push(`${name}: ${res.status()} for ${url}`);
  });
}

// until polls an async condition from Node (page.waitForFunction does not
// await a promise its predicate returns: a pending promise counts as true).
export async function until(what, cond, timeout = 20000, every = 50) {
  const end = Date.now() + timeout;
  for (;;) {
    if (await cond()) return;
    if (Date.now() > end) throw new Error(`timed out after ${timeout} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, every));
  }
}

export async function shot(page, file) {
  // Let fades finish so the picture shows the settled page.
  await page.waitForTimeout(300);
  mkdirSync(env.shots, { recursive: true });
  const path = join(env.shots, file + '.png');
  await page.screenshot({ path });
  log('screenshot', path);
}

export async function visible(page, selector, timeout) {
  await page.locator(selector).first().waitFor({ state: 'visible', timeout });
}

export async function textOf(page, selector) {
  return (await page.locator(selector).first().textContent() || '').trim();
}

// waitText waits until selector's text contains want.
export async function waitText(page, selector, want, timeout = 20000) {
  await page.waitForFunction(([sel, w]) => {
    const el = document.querySelector(sel);
    return el && el.textContent.includes(w);
  }, [selector, want], { timeout });
}

// videoPlaying waits until the <video> matched by selector shows frames.
export async function videoPlaying(page, selector, timeout = 20000) {
  await page.waitForFunction((sel) => {
    const v = document.querySelector(sel);
    return v && v.videoWidth > 0 && v.readyState >= 2 && !v.paused;
  }, selector, { timeout });
}

export async function staffLogin(page, path, username, password) {
  await page.goto(env.base + path);
  await visible(page, '#login-form');
  await page.fill('#login-username', username);
  await page.fill('#login-password', password);
  await page.click('#login-form button[type=submit]');
  await visible(page, '#app');
  await page.waitForSelector('body[data-ready="1"]');
}

// api is a bearer-token client for setting up data from Node.
export async function api(method, path, body, token) {
  const headers = { Accept: 'application/json' };
  if (token) headers.Authorization = 'Bearer ' + token;
  let payload;
  if (typeof body === 'string') { headers['Content-Type'] = 'text/csv'; payload = body; }
  else if (body !== undefined) { headers['Content-Type'] = 'application/json'; payload = JSON.stringify(body); }
  const res = await fetch(env.base + '/api/v1' + path, { method, headers, body: payload });
  const text = await res.text();
  if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${text}`);
  return text ? JSON.parse(text) : null;
}

export async function adminToken() {
  return (await api('POST', '/auth/login', { username: 'admin', password: env.adminPassword })).token;
}

// run executes a scenario and exits non-zero if it threw or any page
// misbehaved on the way.
export async function run(name, fn) {
  let code = 0;
  try {
    await fn();
    log(`${name}: scenario finished`);
  } catch (e) {
    console.error(`${name}: FAILED: ${e.stack || e}`);
    code = 1;
  }
  if (problems.length) {
    console.error(`${name}: page problems:\n  ` + problems.join('\n  '));
    code = 1;
  }
  for (const b of browsers) await b.close().catch(() => {});
  process.exit(code);
}
