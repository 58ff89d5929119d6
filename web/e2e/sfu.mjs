// sfu.js against the real SFU, without the control plane: a candidate page
// publishes its camera, a hidden watcher subscribes and sees it; then the
// publisher's network is repaired both ways the client knows: an ICE
// restart with the socket up, and a resume after the socket dropped. The
// watcher must keep seeing live video throughout. Tokens are minted by the
// Go test (INVIGIL_PUB_TOKEN, INVIGIL_SUB_TOKEN).
import { env, log, check, launch, newPage, run } from './lib.mjs';

run('sfu', async () => {
  const browser = await launch(env.faceClip);
  const pub = await newPage(browser, 'publisher');
  const sub = await newPage(browser, 'watcher');
  // Any page of ours will do as an origin; the modules are imported by hand.
  await pub.goto(env.base + '/');
  await sub.goto(env.base + '/');
  await pub.evaluate(async (token) => {
    const { SfuClient } = await import('/assets/sfu.js');
    const stream = await navigator.mediaDevices.getUserMedia({ video: true, audio: true });
    window.states = [];
    window.c = new SfuClient({ token, onState: (s) => window.states.push(s) });
    await window.c.connect();
    await window.c.publish(stream);
  }, process.env.INVIGIL_PUB_TOKEN);
  const mode = await pub.evaluate(() => {
    const s = window.c.pub.getSenders().find((x) => x.track && x.track.kind === 'video');
    const e = s && s.getParameters().encodings;
    return e && e[0] && e[0].scalabilityMode;
  });
  check(mode === 'L1T3', 'the camera is sent in three temporal layers (scalabilityMode L1T3): ' + mode);
  await sub.evaluate(async (token) => {
    const { SfuClient } = await import('/assets/sfu.js');
    const v = document.createElement('video');
    v.muted = true;
    document.body.append(v);
    window.v = v;
    const c = new SfuClient({
      token,
      onMessage: (m) => { if (m.type === 'participant_joined') c.subscribe(m.participant.identity); },
      onTrack: (identity, stream, track) => { if (track.kind === 'video') { v.srcObject = stream; v.play(); } },
    });
    window.c = c;
    await c.connect();
  }, process.env.INVIGIL_SUB_TOKEN);

  // The watcher sees frames arrive: its video's time advances.
  const flowing = async (what) => {
    const before = await sub.evaluate(() => window.v.currentTime);
    await sub.waitForFunction((t) => {
      const v = window.v;
      const track = v.srcObject && v.srcObject.getVideoTracks()[0];
      return v.videoWidth > 0 && track && track.readyState === 'live' && v.currentTime > t + 1;
    }, before, { timeout: 20000 });
    log('watcher sees live video', what);
  };
  await flowing('after joining');

  await pub.evaluate(() => window.c.restartIce());
  await pub.waitForFunction(() => window.c.state === 'connected' && !window.c.restarting, null, { timeout: 20000 });
  await flowing('after an ICE restart');

  await pub.evaluate(() => window.c.ws.close()); // the socket dies; the session must be resumed
  await pub.waitForFunction(() => window.c.state === 'connected' && window.c.joined.resumed, null, { timeout: 20000 });
  const conn = await pub.evaluate(() => window.c.joined.connection);
  check(conn === 2, 'the resumed session is the same session, connection 2: ' + conn);
  check((await pub.evaluate(() => window.states)).includes('reconnecting'), 'the page was told it was reconnecting');
  await flowing('after a resume');
});
