// What a candidate sees when things go wrong: a wrong invitation code, a
// camera the browser may not use, and a network that drops and comes back.
import {
  env, log, check, until, launch, newPage, shot, visible, textOf, waitText, api, adminToken, staffLogin, run,
} from './lib.mjs';

run('errors', async () => {
  const admin = await adminToken();
  const now = Date.now();
  const { id: examId } = await api('POST', '/exams', {
    name: 'E2E 异常情况',
    starts_at: new Date(now - 5 * 60e3).toISOString(),
    ends_at: new Date(now + 3 * 3600e3).toISOString(),
  }, admin);
  const denied = await api('POST', `/exams/${examId}/candidates`, { name: '赵敏' }, admin);
  const dropped = await api('POST', `/exams/${examId}/candidates`, { name: '孙磊' }, admin);

  // ---- a wrong code ----------------------------------------------------------------
  const faceBrowser = await launch(env.faceClip);
  const p = await newPage(faceBrowser, 'candidate-network');
  await p.goto(env.base + '/');
  await visible(p, '#scr-code');
  await p.fill('#code-input', '000000');
  await p.click('#code-form button[type=submit]');
  await waitText(p, '#code-error', '邀请码错误');
  check(await p.isVisible('#scr-code'), 'a wrong code stays on the code screen');
  await shot(p, 'candidate-wrong-code');
  await p.fill('#code-input', '12');
  await p.click('#code-form button[type=submit]');
  await waitText(p, '#code-error', '6 位数字');

  // ---- a dropped network ---------------------------------------------------------------
  await p.fill('#code-input', dropped.codes.interview);
  await p.click('#code-form button[type=submit]');
  await visible(p, '#scr-check');
  await p.waitForSelector('#ck-camera[data-state=ok]');
  await p.click('#tone-btn');
  await p.click('#tone-ok');
  await p.click('#check-continue');
  await visible(p, '#scr-stage');
  await p.waitForSelector('#st-conn[data-state=ok]');
  check(!(await p.isVisible('#banner')), 'no reconnecting banner while the network is fine');
  await p.context().setOffline(true);
  await visible(p, '#banner', 10000);
  await waitText(p, '#banner-text', '网络');
  await p.waitForSelector('#st-conn[data-state=warn]');
  await shot(p, 'candidate-network-lost');
  await p.waitForTimeout(3000);
  await p.context().setOffline(false);
  await p.waitForSelector('#banner', { state: 'hidden', timeout: 30000 });
  await p.waitForSelector('#st-conn[data-state=ok]', { timeout: 30000 });
  // Recovered by itself: video flows again and the API answers.
  // A resume makes a new peer connection whose count starts again: flowing
  // means the count grows, whatever it was.
  const frames = () => p.evaluate(() => window.invigil.framesSent());
  await until('video to flow again', async () => {
    const a = await frames();
    await p.waitForTimeout(700);
    return (await frames()) > a;
  });
  const me = await p.evaluate(async () => (await fetch('/api/v1/candidate/me')).json());
  check(me.stage === 'device_check_waiting', 'still waiting for the device check after the drop: ' + me.stage);
  await shot(p, 'candidate-network-back');
  log('network drop: banner shown, recovered');

  // The help button reaches the staff.
  const staff = await newPage(faceBrowser, 'staff-help');
  await staffLogin(staff, '/staff', 'admin', env.adminPassword);
  await staff.selectOption('#exam-select', String(examId));
  await staff.waitForSelector('#live[data-state=live]');
  await p.click('#help-btn');
  await visible(p, '#help');
  await p.fill('#help-text', '我听不到声音');
  await shot(p, 'candidate-help');
  await p.click('#help-send');
  await waitText(p, '#toasts', '已通知工作人员');
  await waitText(staff, '#helpfeed', '我听不到声音');
  await waitText(staff, '#helpfeed', '孙磊');
  await shot(staff, 'staff-help-request');
  await staff.context().close();

  // ---- a denied camera ----------------------------------------------------------------------
  const noPromptBrowser = await launch(env.faceClip, { fakeUI: false });
  const d = await newPage(noPromptBrowser, 'candidate-denied', { grant: false });
  await d.goto(env.base + '/');
  await d.fill('#code-input', denied.codes.interview);
  await d.click('#code-form button[type=submit]');
  await visible(d, '#scr-check');
  await visible(d, '#denied');
  await d.waitForSelector('#ck-camera[data-state=bad]');
  await visible(d, '#denied-steps');
  const steps = await textOf(d, '#denied-steps');
  check(steps.includes('锁') && steps.includes('网站设置') && steps.includes('重新加载'), 'the guide\'s steps: lock icon, site settings, reload: ' + steps);
  check(!(await d.isEnabled('#check-continue')), 'cannot continue without a camera');
  await shot(d, 'candidate-camera-denied');
  await d.click('.lang-switch');
  await waitText(d, '#denied-title', 'Camera or microphone blocked');
  await waitText(d, '#denied-steps', 'lock icon');
  await shot(d, 'candidate-camera-denied-en');
});
