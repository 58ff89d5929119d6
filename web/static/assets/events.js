// @ts-check
// Live events from the API's Server-Sent Events endpoints. EventSource
// reconnects by itself and sends Last-Event-ID, so the server replays what
// was missed; when the browser gives up (an HTTP error closes the stream
// for good) we open a new one with ?since= the last sequence number seen.
// Events are handed on in order and at most once.

// The event types come from the server's contract (contract.js is
// generated from Go), so a new type cannot be missed here.
import { EVENT_TYPES } from './contract.js';

// listen opens the stream at url and calls onEvent(ev) for each event
// ({seq, exam_id, type, at, candidate_id, data}). onState('live' |
// 'reconnecting') reports the connection. It returns a function that stops.
/**
 * @param {string} url
 * @param {(ev: any) => void} onEvent
 * @param {(state: string) => void} [onState]
 * @returns {() => void}
 */
export function listen(url, onEvent, onState = () => {}) {
  let lastSeq = 0;
  let source = null;
  let stopped = false;
  let retryTimer = 0;
  let failures = 0;

  const handle = (msg) => {
    let ev;
    try { ev = JSON.parse(msg.data); } catch { return; }
    const seq = Number(ev.seq || msg.lastEventId || 0);
    if (seq && seq <= lastSeq) return; // a replayed event already handled
    if (seq) lastSeq = seq;
    if (!ev.type) ev.type = msg.type;
    try { onEvent(ev); } catch (e) { console.error('event handler', e); }
  };

  const open = () => {
    if (stopped) return;
    const u = new URL(url, location.href);
    if (lastSeq) u.searchParams.set('since', String(lastSeq));
    source = new EventSource(u.pathname + u.search, { withCredentials: true });
    source.onopen = () => { failures = 0; onState('live'); };
    source.onmessage = handle;
    for (const type of EVENT_TYPES) source.addEventListener(type, handle);
    source.onerror = () => {
      onState('reconnecting');
      if (source.readyState === EventSource.CLOSED) {
        source = null;
        failures++;
        retryTimer = setTimeout(open, Math.min(15000, 1000 * 2 ** Math.min(failures, 4)));
      }
    };
  };
  open();
  return () => {
    stopped = true;
    clearTimeout(retryTimer);
    if (source) source.close();
  };
}
