// Whether a Streamlit page has run every rerun it asked for: added to a browser context before any page
// script (Playwright's add_init_script), read through window.__settled().
//
// No text on the page tells a run apart from none (the status widget says "Running..." only in an icon's
// label, and only half a second in), and the app's own run state (`data-test-script-state`) passes through
// "notRunning" between a run and the one it hands over to (st.rerun, a page switch, a rerun asked during a
// run). So this reads the messages themselves, as protobuf:
// - the page asks for a run in a BackMsg whose first byte is 0x5A (its field 11, rerun_script);
// - the server says a run began in a ForwardMsg holding field 4 (new_session), and that it ended in one
//   holding field 6 (script_finished), whose status 2 (FINISHED_EARLY_FOR_RERUN) says another run follows.
(() => {
  const RERUN_SCRIPT = 0x5a, NEW_SESSION = 4, SCRIPT_FINISHED = 6, FOR_RERUN = 2;
  // `begun`: a run has begun since the page loaded (every page's first is asked for as it connects, and
  // a page just loaded or reloaded, its websocket not yet open, has asked for nothing yet).
  const watch = {begun: false, asked: false, askedAt: 0, served: false, running: false, following: false, changedAt: 0};

  // The message's first field among `wanted`, as [field, value] (a varint's value, or null), or null.
  function first(bytes, wanted) {
    let i = 0;
    const varint = () => {
      let value = 0, scale = 1, byte;
      do { byte = bytes[i++]; value += (byte & 0x7f) * scale; scale *= 128; } while (byte & 0x80 && i < bytes.length);
      return value;
    };
    while (i < bytes.length) {
      const key = varint(), field = Math.floor(key / 8), type = key & 7;
      let value = null;
      if (type === 0) value = varint();
      else if (type === 2) { const length = varint(); i += length; }    // not `i += varint()`: that adds to the old i
      else if (type === 1) i += 8;
      else if (type === 5) i += 4;
      else return null;
      if (wanted.includes(field)) return [field, value];
    }
    return null;
  }

  function heard(data) {
    if (!(data instanceof ArrayBuffer)) return;
    const found = first(new Uint8Array(data), [NEW_SESSION, SCRIPT_FINISHED]);
    if (!found) return;
    watch.changedAt = performance.now();
    if (found[0] === NEW_SESSION) {
      Object.assign(watch, {begun: true, running: true, following: false, served: watch.asked});
    } else {
      const more = found[1] === FOR_RERUN;
      Object.assign(watch, {running: false, following: more});
      if (!more && watch.served) watch.asked = watch.served = false;
    }
  }

  const Native = window.WebSocket;
  window.WebSocket = class extends Native {
    constructor(...args) {
      super(...args);
      this.addEventListener('message', event => heard(event.data));
    }
    send(data) {
      const bytes = data instanceof ArrayBuffer ? new Uint8Array(data)
        : ArrayBuffer.isView(data) ? new Uint8Array(data.buffer, data.byteOffset, data.byteLength) : null;
      if (bytes && bytes.length && bytes[0] === RERUN_SCRIPT) Object.assign(watch, {asked: true, askedAt: performance.now()});
      return super.send(data);
    }
  };

  // Settled: the page's first run has begun; the app shows no run; no run asked for is still to come (one
  // asked `limit` ms ago and never begun, the server dropped: a fragment's timer that fired as the fragment
  // went); none is going or handed over to; and the server has been quiet for `quiet` ms (a run handed
  // over to begins within it).
  window.__settled = ({limit = 10000, quiet = 100} = {}) => {
    const now = performance.now();
    const app = document.querySelector('[data-testid=stApp]');
    const waiting = watch.asked && now - watch.askedAt < limit;
    const busy = watch.running || (watch.following && now - watch.changedAt < limit);
    return watch.begun && app?.dataset.testScriptState === 'notRunning' && !waiting && !busy
      && now - watch.changedAt > quiet;
  };
})();
