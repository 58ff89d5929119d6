// What the camera cannot see, through a real Chromium: a candidate whose
// fake microphone plays recorded speech, whose browser names a Bluetooth
// headset among its audio devices and reports an extended screen. The
// device check warns about both; once in the waiting room the proctor's
// dashboard shows headphones and second_screen reported by the browser,
// and talking within the rule's minimum plus 2 s.
import {
  env, log, check, until, launch, newPage, shot, visible, waitText, api, adminToken, staffLogin, run,
} from './lib.mjs';

// The page sees the fake devices as Chromium names them ("Fake Default
// Audio Input"); a headset's label and a second screen are what a real
// machine would add, so they are added before the page's scripts run.
function fakeHeadsetAndScreen() {
  const md = navigator.mediaDevices;
  const real = md.enumerateDevices.bind(md);
  md.enumerateDevices = async () => {
    const list = await real();
    return [...list, {
      deviceId: 'e2e-headset', groupId: 'e2e', kind: 'audiooutput', label: 'Bluetooth Headset (AirPods Pro)',
      toJSON() { return this; },
    }];
  };
  Object.defineProperty(Screen.prototype, 'isExtended', { configurable: true, get: () => true });
}

run('listen', async () => {
  const admin = await adminToken();
  const now = Date.now();
  const { id: examId } = await api('POST', '/exams', {
    name: 'E2E 听觉与浏览器',
    starts_at: new Date(now - 5 * 60e3).toISOString(),
    ends_at: new Date(now + 3 * 3600e3).toISOString(),
  }, admin);
  const cand = await api('POST', `/exams/${examId}/candidates`, { name: '周杰' }, admin);
  const exam = await api('GET', `/exams/${examId}`, undefined, admin);
  const rule = exam.policies.waiting.rules.talking;
  check(rule && rule.enabled, 'talking is on in the waiting rooms: ' + JSON.stringify(exam.policies.waiting.rules));

  // ---- the proctor watches this exam ---------------------------------------------------
  const staffBrowser = await launch(env.emptyClip);
  const pr = await newPage(staffBrowser, 'proctor-listen');
  await staffLogin(pr, '/proctor', 'admin', env.adminPassword);
  await pr.selectOption('#exam-select', String(examId));
  await pr.waitForSelector('#live[data-state=live]');

  // ---- the candidate: device check warns, the waiting room is watched -------------------------
  const candBrowser = await launch(env.faceClip, { audio: env.speechWav });
  const cp = await newPage(candBrowser, 'candidate-listen');
  await cp.addInitScript(fakeHeadsetAndScreen);
  const warnings = [];
  cp.on('console', (m) => { if (m.type() === 'warning') warnings.push(m.text()); });
  await cp.goto(env.base + '/');
  await cp.fill('#code-input', cand.codes.interview);
  await cp.click('#code-form button[type=submit]');
  await visible(cp, '#scr-check');
  await cp.waitForSelector('#ck-mic[data-state=ok]');
  await cp.waitForSelector('#ck-extras[data-state=warn]');
  await waitText(cp, '#ck-extras', 'AirPods');
  // Renders asked for at once (events, the language switch, a reconnect)
  // run one after the other, never interleaved: here, in the device check,
  // each would otherwise await the check and open the camera again.
  await cp.evaluate(() => window.invigil.renderTwice());
  check(await cp.evaluate(() => window.invigil.mostRendersAtOnce()) === 1, 'the page never renders twice at once');
  await shot(cp, 'candidate-check-headphones');
  await cp.click('#tone-btn');
  await cp.click('#tone-ok');
  await cp.waitForSelector('#ck-connection[data-state=ok]');
  await cp.click('#check-continue');
  await visible(cp, '#scr-stage');
  await waitText(cp, '#stage-message', '设备调试等待室');
  // From here the waiting room's rules apply to what the microphone has
  // been sending all along (the speech file loops).
  const watchedAt = Date.now();
  check(await cp.evaluate(() => window.invigil.audioPacketsSent()) > 0, 'the microphone is being sent');

  const talking = '#feed .feed-row[data-type=talking]';
  await pr.waitForSelector(talking, { timeout: rule.min_ms + 20000 });
  const shownAt = Date.now();
  const id = await pr.getAttribute(talking, 'data-violation');
  const v = await pr.evaluate(async (x) => (await fetch(`/api/v1/violations/${x}`)).json(), id);
  const took = shownAt - Math.max(watchedAt, new Date(v.started_at).getTime());
  log(`talking: started ${new Date(v.started_at).getTime() - watchedAt} ms, opened ${new Date(v.opened_at).getTime() - watchedAt} ms, ` +
    `shown ${shownAt - watchedAt} ms after the waiting room began; ${took} ms after its onset (deadline ${rule.min_ms + 2000} ms)`);
  check(took <= rule.min_ms + 2000, `talking shown within its minimum + 2 s of its onset: took ${took} ms`);
  // The banner names it (the browser's own reports may open just after and
  // take the banner's place, so its text is read from what was shown).
  await cp.waitForFunction(() => window.invigil.nudgesShown().includes('talking'), null, { timeout: 10000 });
  const said = (await cp.evaluate(() => window.invigil.nudgeTexts())).talking;
  check(said && said.includes('说话'), 'the talking banner asks for quiet: ' + said);
  await shot(cp, 'candidate-nudge-talking');

  // The talking violation's evidence: a picture and a clip of what was
  // heard, which the proctor's detail view plays.
  await pr.click(talking);
  await visible(pr, '#detail');
  await visible(pr, '#clip-box', 20000);
  await pr.waitForFunction(() => {
    const img = document.querySelector('#evidence');
    return img.dataset.loaded === '1' && img.naturalWidth > 0;
  }, null, { timeout: 20000 });
  await pr.waitForFunction(() => document.querySelector('#clip').readyState >= 1, null, { timeout: 20000 });
  const clipSeconds = await pr.evaluate(() => document.querySelector('#clip').duration);
  log('talking clip:', clipSeconds, 's');
  check(clipSeconds >= 0.5 && clipSeconds <= 10.5, `the clip lasts 0.5–10 s: ${clipSeconds} s`);
  await pr.evaluate(() => { const a = document.querySelector('#clip'); a.muted = true; return a.play(); });
  await pr.waitForFunction(() => document.querySelector('#clip').currentTime > 0.2, null, { timeout: 10000 });
  await shot(pr, 'proctor-talking-clip');
  await pr.click('#detail-close');
  // The dialog's close event, which pauses the players, is dispatched as a
  // task after close(): wait for it rather than read the state at once
  // (read at once it failed 1 run in many).
  const stopped = await pr.waitForFunction(() => document.querySelector('#clip').paused, null, { timeout: 3000 })
    .then(() => true, () => false);
  check(stopped, 'closing the detail stops the clip');

  // The browser's own reports.
  for (const type of ['headphones', 'second_screen']) {
    const row = `#feed .feed-row[data-type=${type}]`;
    try {
      await visible(pr, `${row} .feed-source[data-source=browser]`, 10000);
    } catch (err) {
      const stored = await api('GET', `/exams/${examId}/violations`, undefined, admin);
      log(`no ${type} on the dashboard; stored:`, JSON.stringify(stored.map((x) => [x.type, x.details])),
        'candidate page warnings:', JSON.stringify(warnings));
      throw err;
    }
    const bid = await pr.getAttribute(row, 'data-violation');
    const bv = await pr.evaluate(async (x) => (await fetch(`/api/v1/violations/${x}`)).json(), bid);
    check(bv.details.source === 'browser', `${type} stored as reported by the browser: ` + JSON.stringify(bv));
  }
  await shot(pr, 'proctor-listen-feed');

  await until('the candidate page to keep its connection', async () =>
    (await cp.getAttribute('#st-conn', 'data-state')) === 'ok');
});
