// The phone simulator: text the engine as any number and watch what it answers.
//
// POST /simulator/send {"from", "text"} enters a text as a provider's webhook would; the
// thread is polled every second from GET /simulator/thread?phone=. Runs under script-src
// 'self' with no inline code; every text reaches the page through textContent, in a
// bidi-isolated bubble, so markup and RTL overrides show as the text they are.
'use strict';

(() => {
  const $ = (id) => document.getElementById(id);
  const els = {
    from: $('from'), thread: $('phone-thread'), composer: $('composer'), text: $('text'),
    send: $('send'), status: $('sim-status'), title: $('phone-title'),
  };

  const POLL_MS = 1000;
  const timeFormat = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit' });

  const state = {
    phone: '',
    rendered: [], // one key per message on the page
    gates: [], // per message on the page: {bubble, meta, signature}
    load: 0,
    timer: null,
  };

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function when(value) {
    const ms = typeof value === 'number' ? value : Date.parse(value);
    return Number.isFinite(ms) ? timeFormat.format(new Date(ms)) : '';
  }

  function sayError(text) {
    els.status.textContent = text || '';
  }

  async function call(method, path, body) {
    const init = { method, credentials: 'same-origin', headers: { Accept: 'application/json' } };
    if (body !== undefined) {
      init.headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    try {
      const response = await fetch(path, init);
      let data = null;
      try {
        data = await response.json();
      } catch {
        data = null;
      }
      return { status: response.status, ok: response.ok, data };
    } catch {
      return { status: 0, ok: false, data: { error: 'the server cannot be reached' } };
    }
  }

  function errorText(result) {
    if (result.status === 404) return 'The simulator is off: set [server] simulator = true.';
    return (result.data && result.data.error) || `the request failed (HTTP ${result.status})`;
  }

  /** The gate decision of an outbound text, whether given as {"decision"} or a plain word. */
  function gateOf(message) {
    const gate = message.gate;
    if (!gate) return { decision: null };
    if (typeof gate === 'string') return { decision: gate };
    return gate;
  }

  function keyOf(message) {
    const text = message.text || '';
    return `${message.direction}|${message.at}|${text.length}|${text.slice(0, 40)}`;
  }

  /** The bubble's look and the line under it, from the message's gate decision. */
  function describe(message) {
    if (message.direction !== 'out') return { look: '', line: when(message.at), signature: 'in' };
    const gate = gateOf(message);
    if (gate.decision === 'blocked') {
      return { look: 'refused', line: `not sent: ${gate.reason || 'refused by the compliance gate'}`, signature: `b|${gate.reason}` };
    }
    if (gate.decision === 'deferred') {
      return { look: 'held', line: `held until ${gate.until ? when(gate.until) || gate.until : 'later'}${gate.reason ? ` (${gate.reason})` : ''}`, signature: `d|${gate.until}|${gate.reason}` };
    }
    return { look: '', line: when(message.at), signature: `s|${gate.decision}` };
  }

  function applyLook(entry, message) {
    const look = describe(message);
    if (entry.signature === look.signature) return;
    entry.signature = look.signature;
    entry.bubble.className = `bubble ${message.direction === 'in' ? 'in' : 'out'}${look.look ? ` ${look.look}` : ''}`;
    entry.meta.className = `meta${look.look ? ` ${look.look}` : ''}`;
    entry.meta.textContent = look.line;
  }

  function render(messages) {
    const list = els.thread;
    const atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 40;
    const shown = state.rendered.length;
    // Only the new messages are added when the page still shows the start of the thread.
    const stillPrefix = shown <= messages.length
      && (shown === 0 || keyOf(messages[shown - 1]) === state.rendered[shown - 1]);
    if (!stillPrefix) {
      list.replaceChildren();
      state.rendered = [];
      state.gates = [];
    }
    if (!messages.length) {
      if (!list.firstChild) list.append(el('li', 'empty', 'No texts yet. Say hello, or text a keyword like BILLING.'));
      return;
    }
    const empty = list.querySelector('.empty');
    if (empty) empty.remove();

    const fresh = state.rendered.length === 0;
    const fragment = document.createDocumentFragment();
    for (let i = state.rendered.length; i < messages.length; i += 1) {
      const message = messages[i];
      const direction = message.direction === 'in' ? 'in' : 'out';
      const li = el('li', `msg ${direction}`);
      const bubble = el('div', `bubble ${direction}`, message.text || '');
      bubble.dir = 'auto';
      const meta = el('div', 'meta');
      li.append(bubble, meta);
      fragment.append(li);
      state.rendered.push(keyOf(message));
      state.gates.push({ bubble, meta, signature: null });
    }
    list.append(fragment);
    // A held text may go later: its line changes in place.
    messages.forEach((message, i) => applyLook(state.gates[i], message));
    if (fresh || atBottom) list.scrollTop = list.scrollHeight;
  }

  async function poll() {
    clearTimeout(state.timer);
    const phone = state.phone;
    if (phone && !document.hidden) {
      const load = ++state.load;
      const result = await call('GET', `/simulator/thread?phone=${encodeURIComponent(phone)}`);
      if (load === state.load && phone === state.phone) {
        if (result.ok) {
          sayError('');
          render((result.data && result.data.messages) || []);
        } else {
          sayError(errorText(result));
        }
      }
    }
    state.timer = setTimeout(poll, POLL_MS);
  }

  function setPhone() {
    const phone = els.from.value.trim();
    if (phone === state.phone) return;
    state.phone = phone;
    state.rendered = [];
    state.gates = [];
    els.thread.replaceChildren();
    els.title.textContent = phone ? `Messages · ${phone}` : 'Messages';
    poll();
  }

  async function send(event) {
    event.preventDefault();
    const text = els.text.value;
    const from = els.from.value.trim();
    if (!text.trim() || !from) return;
    setPhone();
    els.send.disabled = true;
    const result = await call('POST', '/simulator/send', { from, text });
    els.send.disabled = false;
    if (!result.ok) {
      sayError(errorText(result));
      return;
    }
    sayError('');
    els.text.value = '';
    els.text.focus();
    poll();
  }

  let fromTimer = null;
  els.from.addEventListener('input', () => {
    clearTimeout(fromTimer);
    fromTimer = setTimeout(setPhone, 300);
  });
  els.from.addEventListener('change', setPhone);
  els.composer.addEventListener('submit', send);
  els.text.addEventListener('keydown', (event) => {
    // Enter sends, Shift+Enter is a new line, as in a messaging app.
    if (event.key === 'Enter' && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      els.composer.requestSubmit();
    }
  });
  document.addEventListener('visibilitychange', () => { if (!document.hidden) poll(); });

  const fromQuery = new URLSearchParams(location.search).get('from');
  if (fromQuery) els.from.value = fromQuery;
  setPhone();
})();
