// Several nodes in a real browser: the candidate page, served by the
// control node, sends its camera to the media node its exam is placed on
// (another origin: that node allows the control node's with
// --sfu-origins); when that media node is killed, the page asks the
// control node again and carries on at the other media node by itself.
import { env, log, check, until, launch, newPage, shot, visible, api, adminToken, run } from './lib.mjs';

const media = process.env.INVIGIL_MEDIA.split(',').map((s) => {
  const [name, url, pid] = s.split('|');
  return { name, url, pid: Number(pid) };
});

// candidatesOn reads a media node's own count of its candidates.
async function candidatesOn(node) {
  try {
    const text = await (await fetch(node.url + '/metrics')).text();
    let n = 0;
    for (const line of text.split('\n')) {
      if (line.startsWith('invigil_sfu_participants{')) n += Number(line.split(' ').pop());
    }
    return n;
  } catch {
    return -1; // gone
  }
}

run('cluster', async () => {
  const admin = await adminToken();
  const now = Date.now();
  const { id: examId } = await api('POST', '/exams', {
    name: 'E2E 多节点',
    starts_at: new Date(now - 5 * 60e3).toISOString(),
    ends_at: new Date(now + 3 * 3600e3).toISOString(),
  }, admin);
  const cand = await api('POST', `/exams/${examId}/candidates`, { name: '周芷若' }, admin);

  const browser = await launch(env.faceClip);
  const p = await newPage(browser, 'candidate-cluster');
  await p.goto(env.base + '/');
  await visible(p, '#scr-code');
  await p.fill('#code-input', cand.codes.interview);
  await p.click('#code-form button[type=submit]');
  await visible(p, '#scr-check');
  await p.waitForSelector('#ck-camera[data-state=ok]');
  await p.click('#tone-btn');
  await p.click('#tone-ok');
  await p.click('#check-continue');
  await visible(p, '#scr-stage');
  await p.waitForSelector('#st-conn[data-state=ok]', { timeout: 30000 });

  // The page's media went to one media node, not the control node.
  let first = null;
  await until('the candidate on a media node', async () => {
    for (const m of media) if ((await candidatesOn(m)) > 0) first = m;
    return first !== null;
  }, 20000, 250);
  const second = media.find((m) => m !== first);
  log(`the candidate page on the control node sends to ${first.name}`);
  await shot(p, 'candidate-cluster-connected');

  // Kill that node; the page finds the other by itself.
  const killed = Date.now();
  process.kill(first.pid, 'SIGKILL');
  await until(`the candidate on ${second.name}`, async () => (await candidatesOn(second)) > 0, 60000, 250);
  const moved = Date.now() - killed;
  await p.waitForSelector('#st-conn[data-state=ok]', { timeout: 30000 });
  const frames = () => p.evaluate(() => window.invigil.framesSent());
  await until('video to flow to the new node', async () => {
    const a = await frames();
    await p.waitForTimeout(700);
    return (await frames()) > a;
  });
  log(`after ${first.name} was killed the page joined ${second.name} ${(moved / 1000).toFixed(2)} s later`);
  check(await candidatesOn(first) === -1, `${first.name} is gone`);
  await shot(p, 'candidate-cluster-moved');
});
