// A candidate's whole day through the pages, with an admin, an interview
// assistant, an examiner and a proctor in their own browser contexts:
// admin console setup (exam, staff accounts put on the exam) → device check → device-check call → interview call
// with a published score → rest room; then the candidate's camera switches
// to the empty scene and the proctor dashboard must show face_off_screen
// within the rule's duration + 2 s, with its evidence, the recording at
// that moment, and a confirmation that updates the timeline.
import {
  env, log, check, until, launch, newPage, shot, visible, textOf, waitText, videoPlaying, staffLogin, run, api, adminToken,
} from './lib.mjs';

const STAFF_PASSWORD = 'e2e-staff-password';

run('flow', async () => {
  const staffBrowser = await launch(env.faceClip);
  const candBrowser = await launch(env.faceClip);

  // ---- admin console: exam, staff accounts, candidates, policy --------------
  const admin = await newPage(staffBrowser, 'admin');
  await staffLogin(admin, '/admin', 'admin', env.adminPassword);
  const examName = 'E2E 面试 ' + new Date().toISOString().slice(0, 16);
  await admin.fill('#exam-name', examName);
  // First logins close ten hours after the start: far enough for this day.
  await admin.fill('#exam-late', '600');
  await admin.click('#exam-form button[type=submit]');
  await waitText(admin, '#exam-table tbody', examName);
  await shot(admin, 'admin-exams');

  await admin.click('.side-link[data-section=users]');
  for (const [username, role] of [['assistant1', 'assistant'], ['examiner1', 'examiner'], ['proctor1', 'proctor']]) {
    await admin.fill('#user-name', username);
    await admin.fill('#user-password', STAFF_PASSWORD);
    await admin.selectOption('#user-role', role);
    await admin.click('#user-form button[type=submit]');
    await waitText(admin, '#user-table tbody', username);
  }
  await shot(admin, 'admin-users');

  // Staff see only the exams they are on: put all three on this one.
  await admin.click('.side-link[data-section=staff]');
  await admin.selectOption('#staff-exam', { label: examName });
  await admin.waitForSelector('#staff-form[data-state=ready]');
  for (const username of ['assistant1', 'examiner1', 'proctor1']) {
    const box = admin.locator(`#staff-table tr[data-user="${username}"] .staff-on`);
    await box.check();
  }
  await admin.click('#staff-form button[type=submit]');
  await waitText(admin, '#staff-status', '本场共 3 名工作人员');
  await shot(admin, 'admin-staff');
  // Saved, not just ticked: a fresh read of the exam's staff has all three.
  const staffExam = Number(await admin.inputValue('#staff-exam'));
  const assigned = await admin.evaluate(async (id) => (await fetch(`/api/v1/exams/${id}/staff`)).json(), staffExam);
  check(['assistant1', 'examiner1', 'proctor1'].every((n) => assigned.users.some((u) => u.username === n)),
    'the exam staff was saved: ' + JSON.stringify(assigned));

  await admin.click('.side-link[data-section=candidates]');
  await admin.fill('#import-text', 'name,external_id\n张伟,A001\n李娜,A002\n王芳,A003');
  await admin.click('#import-form button[type=submit]');
  await waitText(admin, '#import-result', '3');
  await waitText(admin, '#cand-table tbody', '张伟');
  await shot(admin, 'admin-candidates');
  const examId = Number(await admin.inputValue('#cand-exam'));
  const codesHref = await admin.getAttribute('#codes-export', 'href');
  const csv = await admin.evaluate(async (href) => (await fetch(href)).text(), codesHref);
  const rows = csv.trim().split('\n').map((l) => l.split(','));
  const header = rows.shift();
  const col = (n) => header.indexOf(n);
  const zhang = rows.find((r) => r[col('name')] === '张伟');
  check(zhang, 'codes.csv has 张伟: ' + csv);
  const cand = { id: Number(zhang[col('candidate_id')]), interview: zhang[col('interview_code')], rest: zhang[col('rest_room_code')] };
  log('exam', examId, 'candidate', cand);

  await admin.click('.side-link[data-section=policies]');
  await admin.locator('#pol-room button[data-room=rest_room]').click();
  await admin.waitForSelector('#pol-rules tbody tr[data-type=face_off_screen]');
  // The rest room's listening and phone rules are on by default, and the
  // editor shows them so an organiser can change them.
  for (const type of ['talking', 'microphone_off', 'phone_call']) {
    check(await admin.locator(`#pol-rules tbody tr[data-type=${type}] .pol-enabled`).isChecked(), `rest room policy shows ${type} on`);
  }
  await admin.fill('#pol-fields input[data-key=talk_window_ms]', '4000');
  await shot(admin, 'admin-policies');
  await admin.click('#pol-form button[type=submit]');
  await waitText(admin, '#pol-status', '已保存');
  const saved = await api('GET', `/exams/${examId}`, undefined, await adminToken());
  check(saved.policies.rest_room.talk_window_ms === 4000 && saved.policies.rest_room.rules.talking.enabled,
    'saved rest room policy keeps talking and the new window: ' + JSON.stringify(saved.policies.rest_room));

  // ---- candidate: device check ----------------------------------------------
  const cp = await newPage(candBrowser, 'candidate');
  await cp.goto(env.base + '/');
  await visible(cp, '#scr-code');
  await shot(cp, 'candidate-code');
  await cp.fill('#code-input', cand.interview);
  await cp.click('#code-form button[type=submit]');
  await visible(cp, '#scr-check');
  await cp.waitForSelector('#ck-camera[data-state=ok]');
  await cp.waitForSelector('#ck-mic[data-state=ok]');
  await videoPlaying(cp, '#check-video');
  await cp.click('#tone-btn');
  await cp.click('#tone-ok');
  await cp.waitForSelector('#ck-connection[data-state=ok]');
  // The server's live analysis of the published camera.
  await cp.waitForSelector('#an-face[data-state=ok]', { timeout: 30000 });
  await cp.waitForSelector('#an-alone[data-state=ok]');
  await cp.waitForSelector('#an-light[data-state=ok]');
  await shot(cp, 'candidate-device-check');
  check(await cp.isEnabled('#check-continue'), 'continue is enabled once the devices work');
  await cp.click('#check-continue');
  await visible(cp, '#scr-stage');
  await waitText(cp, '#stage-message', '设备调试等待室');
  await shot(cp, 'candidate-waiting-device-check');

  // ---- assistant: device-check call -------------------------------------------
  const asst = await newPage(staffBrowser, 'assistant');
  await staffLogin(asst, '/staff', 'assistant1', STAFF_PASSWORD);
  const row = `#queue li[data-candidate="${cand.id}"]`;
  await visible(asst, row);
  await asst.waitForSelector('#media-state[data-state=media_connected]');
  await shot(asst, 'staff-assistant-queue');
  await asst.click(`${row} button`);
  await visible(cp, '#incoming');
  await waitText(cp, '#incoming-title', '面试助理');
  await shot(cp, 'candidate-incoming-call');
  await cp.click('#accept-call');
  await visible(cp, '#scr-call');
  await videoPlaying(cp, '#call-remote');
  await videoPlaying(asst, '#remote');
  await asst.waitForSelector('#call-state[data-state=ok]');
  await shot(cp, 'candidate-call');
  await shot(asst, 'staff-assistant-call');
  // "Restart camera" swaps the track without dropping the call.
  await cp.click('#restart-camera');
  await waitText(cp, '#toasts', '摄像头已重新启动');
  await videoPlaying(cp, '#call-self');
  await asst.click('#end-done');
  await visible(cp, '#scr-stage');
  await waitText(cp, '#stage-message', '您已调试完毕，请再次输入邀请码进入面试等待室。');
  await visible(cp, '#reenter-form');
  await shot(cp, 'candidate-device-checked');
  await cp.fill('#reenter-input', cand.interview);
  await cp.click('#reenter-form button[type=submit]');
  await waitText(cp, '#stage-message', '面试等待室');

  // ---- examiner: interview, score ------------------------------------------------
  const ex = await newPage(staffBrowser, 'examiner');
  await staffLogin(ex, '/staff', 'examiner1', STAFF_PASSWORD);
  await visible(ex, row);
  await ex.waitForSelector('#media-state[data-state=media_connected]');
  await ex.click(`${row} button`);
  await visible(cp, '#incoming');
  await waitText(cp, '#incoming-title', '考官');
  await cp.click('#accept-call');
  await visible(cp, '#scr-call');
  await videoPlaying(cp, '#call-remote');
  await videoPlaying(ex, '#remote');
  await visible(ex, '#score-panel');
  await ex.fill('#score-input', '88.5');
  await ex.fill('#score-comment', '表达清晰，逻辑完整。');
  await ex.click('#score-publish');
  await waitText(ex, '#score-status', '发布');
  await shot(ex, 'staff-examiner-call');
  await ex.click('#end-done');
  await visible(cp, '#scr-stage');
  await waitText(cp, '#stage-message', '您的面试已结束');
  await visible(cp, '#score-card');
  await waitText(cp, '#score-value', '88.5');
  check((await textOf(cp, '#restcode-value')) === cand.rest, 'the rest-room code is shown');
  await shot(cp, 'candidate-interview-done');
  await cp.fill('#reenter-input', cand.rest);
  await cp.click('#reenter-form button[type=submit]');
  await visible(cp, '#scr-rest');
  await videoPlaying(cp, '#rest-self');
  await shot(cp, 'candidate-rest-room');

  // ---- assistant: a spot check of the rest room ------------------------------------------
  await asst.click('#tab-spot');
  await visible(asst, row);
  await asst.click(`${row} button`);
  await videoPlaying(asst, '#remote');
  await waitText(asst, '#call-state', '抽查');
  // Live AI alerts for the candidate on the call: the rest room wants both
  // hands in view and the face clip shows none.
  try {
    await visible(asst, '#alerts .alert-item[data-type=hands_out_of_view]', 40000);
  } catch (err) {
    // Seen rarely in full `make test` runs: no hands_out_of_view opened at
    // all. Log what the server's analysis sees, so the cause can be told
    // (hands found on the still clip, or no analysis at all).
    const seen = await cp.evaluate(async () => (await fetch('/api/v1/candidate/analysis')).text());
    log('no hands_out_of_view during the spot check; the candidate analysis says', seen);
    const metrics = await cp.evaluate(async () => (await fetch('/metrics')).text());
    log('pipeline metrics:\n' + metrics.split('\n').filter((l) => /^invigil_pipeline_(frames|analyses|decode|keyframe|violations)/.test(l)).join('\n'));
    throw err;
  }
  await shot(asst, 'staff-assistant-spot-check');
  await asst.click('#end-done');
  await asst.waitForSelector('#call-state', { state: 'hidden' });
  check(await cp.isVisible('#scr-rest'), 'a spot check does not disturb the candidate');

  // ---- proctor: the grid ---------------------------------------------------------------
  const pr = await newPage(staffBrowser, 'proctor');
  await staffLogin(pr, '/proctor', 'proctor1', STAFF_PASSWORD);
  const tile = `#grid .tile[data-candidate="${cand.id}"]`;
  await visible(pr, tile);
  await videoPlaying(pr, `${tile} video`, 30000);
  await shot(pr, 'proctor-dashboard');

  // ---- the rest room: what is watched, the nudges, the browser's own signals -------------
  await waitText(cp, '#rest-watched', '是否停留在本页面');
  await visible(cp, '#fs-prompt');
  // hands_out_of_view has been open since the spot check (the face clip
  // shows no hands): the candidate is told, calmly and specifically.
  await cp.waitForFunction(() => window.invigil.nudgesShown().includes('hands_out_of_view'), null, { timeout: 30000 });
  await visible(cp, '#nudge');
  await shot(cp, 'candidate-rest-nudge');
  // A second real tab brought to the front takes the focus from the
  // candidate's page. Playwright fakes focus for every page unless told
  // not to; headless Chromium keeps each page visible in its own window,
  // so the blur is what a headless run can show (a headed browser also
  // hides the page, reported as "hidden").
  const cdp = await cp.context().newCDPSession(cp);
  await cdp.send('Emulation.setFocusEmulationEnabled', { enabled: false });
  await cp.bringToFront();
  await cp.waitForFunction(() => document.hasFocus());
  check((await pr.$$('#feed .feed-row[data-type=left_page]')).length === 0, 'no left_page before the candidate leaves the page');
  const other = await cp.context().newPage();
  await other.goto(env.base + '/healthz');
  await other.bringToFront();
  await until('the candidate page to notice it lost the focus', async () => (await cp.evaluate(() => window.invigil.state().away)) === 'blur');
  // Reported at once: the proctor sees it while it lasts.
  const leftRow = '#feed .feed-row[data-type=left_page]';
  await visible(pr, `${leftRow}.open .feed-source[data-source=browser]`, 10000);
  await waitText(pr, leftRow, '浏览器报告');
  await waitText(pr, leftRow, '离开页面');
  await shot(pr, 'proctor-left-page');
  await cp.bringToFront();
  await other.close();
  await until('the candidate page to report coming back', async () => (await cp.evaluate(() => window.invigil.state().away)) === '');
  await pr.waitForSelector(`${leftRow}:not(.open)`, { timeout: 10000 });
  // The nudge was up while the candidate was away and went with the close.
  check((await cp.evaluate(() => window.invigil.nudgesShown())).includes('left_page'), 'the left_page nudge was shown');
  await cp.waitForFunction(() => window.invigil.state().nudge !== 'left_page', null, { timeout: 10000 });
  await shot(cp, 'candidate-back-on-page');
  const lid = await pr.getAttribute(leftRow, 'data-violation');
  const lv = await pr.evaluate(async (x) => (await fetch(`/api/v1/violations/${x}`)).json(), lid);
  check(lv.details.source === 'browser' && lv.details.reason === 'blur' && lv.ended_at, 'left_page stored from the browser, closed: ' + JSON.stringify(lv));
  await pr.click(leftRow);
  await visible(pr, '#detail');
  await waitText(pr, '#facts', '浏览器报告');
  await shot(pr, 'proctor-left-page-detail');
  await pr.click('#detail-close');
  // Leaving fullscreen is leaving too; the button is the gesture that
  // enters it again.
  await cp.click('#fs-enter');
  await cp.waitForFunction(() => !!document.fullscreenElement);
  await cp.waitForSelector('#fs-prompt', { state: 'hidden' });
  await cp.evaluate(() => document.exitFullscreen());
  await until('leaving fullscreen to be noticed', async () => (await cp.evaluate(() => window.invigil.state().away)) === 'fullscreen');
  await visible(cp, '#fs-prompt');
  await cp.click('#fs-enter');
  await until('the fullscreen episode to end', async () => (await cp.evaluate(() => window.invigil.state().away)) === '');
  await until('two left_page on the dashboard, both closed', async () =>
    (await pr.$$(`${leftRow}:not(.open)`)).length === 2 && (await pr.$$(`${leftRow}.open`)).length === 0);
  await cp.evaluate(() => document.exitFullscreen().catch(() => {}));
  await cdp.send('Emulation.setFocusEmulationEnabled', { enabled: true });

  const before = await pr.$$eval('#feed .feed-row[data-type=face_off_screen]', (els) => els.map((e) => e.dataset.violation));

  // ---- the camera switches to the empty scene ----------------------------------------------
  const exam = await admin.evaluate(async (id) => (await fetch(`/api/v1/exams/${id}`)).json(), examId);
  check(exam.late_login_minutes === 600, `the console stored late_login_minutes (got ${exam.late_login_minutes})`);
  const rule = exam.policies.rest_room.rules.face_off_screen;
  check(rule && rule.enabled, 'face_off_screen is on in the rest room');
  // The timed part shares two cores with the server's analysis: pages that
  // are done (and whose cameras encode video) go first.
  for (const page of [admin, asst, ex]) await page.context().close();
  // The switch is timed from the moment the empty scene's first frames
  // leave the candidate's browser, which on loopback is when the server
  // starts receiving them. From then on the rule needs min_ms of "no face",
  // plus at most 2 s to decode, analyse, store and deliver the alert. For
  // the log only: when the proctor's tile shows the empty scene (its centre
  // changes), which comes later, after the resubscription.
  await pr.evaluate((videoSel) => {
    const v = document.querySelector(videoSel);
    const c = document.createElement('canvas');
    c.width = 32;
    c.height = 24;
    const g = c.getContext('2d', { willReadFrequently: true });
    const centre = () => { g.drawImage(v, 0, 0, 32, 24); return g.getImageData(10, 8, 12, 14).data; };
    const face = centre();
    window.e2eSceneChangedAt = 0;
    const onFrame = () => {
      const now = centre();
      let diff = 0;
      for (let i = 0; i < now.length; i += 4) {
        diff += Math.abs(now[i] - face[i]) + Math.abs(now[i + 1] - face[i + 1]) + Math.abs(now[i + 2] - face[i + 2]);
      }
      if (diff / ((now.length / 4) * 3) > 30) { window.e2eSceneChangedAt = Date.now(); return; }
      v.requestVideoFrameCallback(onFrame);
    };
    v.requestVideoFrameCallback(onFrame);
  }, `${tile} video`);
  const emptyBrowser = await launch(env.emptyClip);
  const ep = await newPage(emptyBrowser, 'candidate-empty-scene');
  await ep.goto(env.base + '/');
  await ep.fill('#code-input', cand.rest);
  await ep.click('#code-form button[type=submit]');
  await visible(ep, '#scr-check');
  await until('the empty scene to be sent', async () => (await ep.evaluate(() => window.invigil.framesSent())) > 0);
  const sentAt = Date.now();
  log('the empty scene is being sent; face_off_screen min_ms', rule.min_ms);
  const sel = `#feed .feed-row[data-type=face_off_screen]${before.map((id) => `:not([data-violation="${id}"])`).join('')}`;
  await pr.waitForSelector(sel, { timeout: rule.min_ms + 20000 });
  const shownAt = Date.now();
  // The grid follows the candidate to the new camera.
  await pr.waitForFunction(() => window.e2eSceneChangedAt > 0, null, { timeout: 15000 });
  const seenAt = await pr.evaluate(() => window.e2eSceneChangedAt);
  // The browser's statistics lag a little behind its sending; the server's
  // own record of the first frame without a face can be earlier, and then
  // it is the switch.
  const vid = await pr.getAttribute(sel, 'data-violation');
  const vv = await pr.evaluate(async (x) => (await fetch(`/api/v1/violations/${x}`)).json(), vid);
  const switchedAt = Math.min(sentAt, new Date(vv.started_at).getTime());
  const ms = (x) => (typeof x === 'string' ? new Date(x).getTime() : x) - switchedAt;
  log(`after the switch: frames counted as sent +${ms(sentAt)} ms, no face from +${ms(vv.started_at)} ms, ` +
    `tile changed +${ms(seenAt)} ms, opened +${ms(vv.opened_at)} ms, shown +${ms(shownAt)} ms`);
  const took = shownAt - switchedAt;
  log(`face_off_screen shown ${took} ms after the switch (deadline ${rule.min_ms + 2000} ms)`);
  check(took <= rule.min_ms + 2000, `alert within the rule's duration + 2 s: took ${took} ms`);
  await shot(pr, 'proctor-alert');
  // The candidate's page (the one now sending the empty scene) nudges them
  // back into the picture.
  await ep.waitForFunction(() => window.invigil.nudgesShown().includes('face_off_screen'), null, { timeout: 10000 });
  await ep.waitForFunction(() => window.invigil.state().nudge === 'face_off_screen', null, { timeout: 10000 });
  await waitText(ep, '#nudge-text', '请回到画面中');
  await shot(ep, 'candidate-nudge-face-off-screen');
  await ep.waitForSelector('#an-face[data-state=bad]', { timeout: 20000 });
  await shot(ep, 'candidate-empty-scene-check');
  // The first page was replaced by the second: it must say so, not hang.
  await cp.waitForSelector('#conn-state[data-state=bad]', { timeout: 15000 });
  await waitText(cp, '#banner-text', '其他页面');
  await shot(cp, 'candidate-replaced');

  // ---- the violation's detail --------------------------------------------------------------------
  const id = await pr.getAttribute(sel, 'data-violation');
  await pr.click(sel);
  await visible(pr, '#detail');
  await pr.waitForFunction(() => {
    const img = document.querySelector('#evidence');
    return img.dataset.loaded === '1' && img.naturalWidth > 0;
  }, null, { timeout: 20000 });
  const v = await pr.evaluate(async (vid) => (await fetch(`/api/v1/violations/${vid}`)).json(), id);
  check(typeof v.recording_offset_ms === 'number', 'the violation has a recording offset: ' + JSON.stringify(v));
  await pr.waitForSelector('#player[data-ready="1"]', { timeout: 20000 });
  const at = Number(await pr.getAttribute('#player', 'data-at'));
  const want = v.recording_offset_ms / 1000 - Math.min(v.recording_offset_ms / 1000, 1);
  log('player opened at', at, 's; violation at', v.recording_offset_ms / 1000, 's');
  check(Math.abs(at - want) < 0.5, `the player opens the recording at the violation (${at} s, want ${want} s)`);
  check(Number(await pr.getAttribute('#player-bar', 'data-markers')) >= 1, 'the violation is marked on the player bar');
  await pr.waitForSelector(`#timeline li[data-violation="${id}"][data-status=pending]`);
  const riskBefore = await textOf(pr, '#risk');
  await shot(pr, 'proctor-violation-detail');
  await pr.fill('#review-note', '考生离开画面，确认违规。');
  await pr.click('#review-confirm');
  await pr.waitForSelector(`#timeline li[data-violation="${id}"][data-status=confirmed]`);
  await waitText(pr, '#detail-status', '已确认');
  const riskAfter = await textOf(pr, '#risk');
  const score = (s) => Number((s.match(/\d+/) || ['0'])[0]);
  log('risk', riskBefore, '→', riskAfter);
  check(score(riskAfter) > score(riskBefore) || score(riskAfter) === 100, `confirming raises the risk score (${riskBefore} → ${riskAfter})`);
  await shot(pr, 'proctor-violation-confirmed');
  await pr.click('#detail-close');

  // Filters narrow the feed; the keyboard opens a tile's newest violation.
  await pr.selectOption('#f-status', 'confirmed');
  await pr.waitForFunction((vid) => {
    const rows = [...document.querySelectorAll('#feed .feed-row')];
    return rows.length > 0 && rows.every((r) => r.dataset.status === 'confirmed') && rows.some((r) => r.dataset.violation === vid);
  }, id);
  await pr.selectOption('#f-status', 'dismissed');
  await visible(pr, '#feed-empty');
  await pr.selectOption('#f-status', '');
  await pr.focus(tile);
  await pr.keyboard.press('Enter');
  await visible(pr, '#detail');
  await pr.keyboard.press('Escape');
  await pr.waitForSelector('#detail', { state: 'hidden' });

  // A violation deep inside a recording: the rest room wants both hands in
  // view, and the face clip shows none, so one opened a while after the
  // candidate entered it. The player must seek there, not start at 0.
  const hands = '#feed .feed-row[data-type=hands_out_of_view]';
  await visible(pr, hands);
  const hid = await pr.getAttribute(hands, 'data-violation');
  const hv = await pr.evaluate(async (x) => (await fetch(`/api/v1/violations/${x}`)).json(), hid);
  check(hv.recording_offset_ms > 3000, 'hands_out_of_view lies inside its recording: ' + hv.recording_offset_ms);
  await pr.click(hands);
  await pr.waitForSelector('#player[data-ready="1"]', { timeout: 20000 });
  const hat = Number(await pr.getAttribute('#player', 'data-at'));
  log('player opened at', hat, 's; hands_out_of_view at', hv.recording_offset_ms / 1000, 's');
  check(Math.abs(hat - (hv.recording_offset_ms / 1000 - 1)) < 0.5, `the player seeks into the recording (${hat} s)`);
  await shot(pr, 'proctor-violation-seek');
  await pr.click('#detail-close');

  // The export covers the confirmed violation.
  const report = await pr.evaluate(async (href) => {
    const r = await fetch(href);
    return { status: r.status, type: r.headers.get('content-type'), text: await r.text() };
  }, await pr.getAttribute('#export', 'href'));
  check(report.status === 200 && report.text.includes('face_off_screen'), 'report.csv lists the violation');

  // English, for a look at the other language.
  await pr.click('.lang-switch');
  await waitText(pr, '#feed-title', 'Alerts');
  await shot(pr, 'proctor-dashboard-en');
  await pr.click('.lang-switch');
  await waitText(pr, '#feed-title', '违规提醒');
});
