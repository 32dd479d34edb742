// The agent inbox: plain JavaScript, no build step, no framework.
//
// It runs under a strict Content-Security-Policy (script-src 'self', style-src 'self',
// connect-src 'self'), so: no inline handlers, no style attributes, no eval. Everything a
// customer or an agent typed reaches the page through textContent (the `el` helper below) and
// never through innerHTML, and sits in a bidi-isolated element (dir="auto"), so markup, RTL
// overrides and walls of emoji show as the text they are.
//
// Data: the agent API in docs/agent-api.md, authenticated by the session cookie the sign-in
// sets (fetch with credentials: 'same-origin'). Live updates: the SSE stream
// /v1/agent/events; each event refreshes the queue counts and the list (debounced), and the
// open thread when the event is about it. A thread is built once when opened; later loads
// append only the entries that are new (see renderTranscript), so a long thread never costs
// a full rebuild per event.
'use strict';

(() => {
  // ---------------------------------------------------------------------------------------
  // Small helpers
  // ---------------------------------------------------------------------------------------

  const $ = (id) => document.getElementById(id);

  /** An element with a class and text; the only way data reaches the page. */
  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  /** An element holding text someone typed: isolated from the text around it. */
  function userText(tag, className, text) {
    const node = el(tag, className, text);
    node.dir = 'auto';
    return node;
  }

  function debounce(fn, ms) {
    let timer = null;
    const run = (...args) => {
      clearTimeout(timer);
      timer = setTimeout(() => fn(...args), ms);
    };
    run.cancel = () => clearTimeout(timer);
    return run;
  }

  const timeFormat = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit' });
  const dateTimeFormat = new Intl.DateTimeFormat(undefined, {
    month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit',
  });

  /** Milliseconds since the epoch of an RFC 3339 string, or null. */
  /** The engine's clock minus the browser's, from each answer's x-smsflow-now header: waits
   * and deadlines count on the engine's time (a test or a skewed laptop clock changes nothing). */
  let serverOffset = 0;
  function serverNow() {
    return Date.now() + serverOffset;
  }

  function parseTime(value) {
    if (value === undefined || value === null || value === '') return null;
    const ms = typeof value === 'number' ? value : Date.parse(value);
    return Number.isFinite(ms) ? ms : null;
  }

  /** A time as a person reads it: the clock today, the date and clock otherwise. */
  let todayStart = 0;
  let todayEnd = 0;
  function whenText(ms) {
    if (ms === null || ms === undefined) return '';
    const now = serverNow();
    if (now >= todayEnd) {
      const midnight = new Date(now);
      midnight.setHours(0, 0, 0, 0);
      todayStart = midnight.getTime();
      midnight.setDate(midnight.getDate() + 1);
      todayEnd = midnight.getTime();
    }
    return (ms >= todayStart && ms < todayEnd ? timeFormat : dateTimeFormat).format(ms);
  }

  function whenIso(value) {
    const ms = parseTime(value);
    return ms === null ? String(value ?? '') : whenText(ms);
  }

  /** How long ago: "under a minute", "4 min", "2 h 5 min", "3 d 1 h". */
  function ago(ms) {
    const seconds = Math.max(0, (serverNow() - ms) / 1000);
    if (seconds < 60) return 'under a minute';
    const minutes = Math.floor(seconds / 60);
    if (minutes < 60) return `${minutes} min`;
    const hours = Math.floor(minutes / 60);
    if (hours < 24) return `${hours} h ${minutes % 60} min`;
    const days = Math.floor(hours / 24);
    return `${days} d ${hours % 24} h`;
  }

  /** A span that says "<prefix><how long ago>" and keeps itself current (see tickTimes). */
  function sinceSpan(className, prefix, iso) {
    const ms = parseTime(iso);
    const span = el('span', className);
    if (ms === null) return span;
    span.dataset.since = String(ms);
    span.dataset.prefix = prefix;
    span.textContent = prefix + ago(ms);
    span.title = new Date(ms).toLocaleString();
    return span;
  }

  function tickTimes() {
    for (const span of document.querySelectorAll('[data-since]')) {
      span.textContent = span.dataset.prefix + ago(Number(span.dataset.since));
    }
  }

  function isTypingTarget(target) {
    return Boolean(target && target.closest && target.closest('input, textarea, select, [contenteditable]'));
  }

  function store(key, value) {
    try {
      if (value === undefined) return window.localStorage.getItem(key);
      window.localStorage.setItem(key, value);
    } catch {
      // Storage can be off (private windows, policies): the setting just is not remembered.
    }
    return null;
  }

  // ---------------------------------------------------------------------------------------
  // Elements and state
  // ---------------------------------------------------------------------------------------

  const els = {
    signin: $('signin'), signinForm: $('signin-form'), secret: $('secret'),
    signinButton: $('signin-button'), signinError: $('signin-error'),
    app: $('app'), meName: $('me-name'), meRole: $('me-role'), presence: $('presence'),
    sound: $('sound'), notify: $('notify'), signout: $('signout'), connection: $('connection'),
    status: $('status'),
    queues: $('queues'), stateFilter: $('state-filter'), mineFilter: $('mine-filter'),
    lateFilter: $('late-filter'), conversations: $('conversations'),
    conversationsEmpty: $('conversations-empty'), more: $('more'),
    threadEmpty: $('thread-empty'), thread: $('thread'), back: $('back'),
    threadContact: $('thread-contact'), threadState: $('thread-state'), threadLate: $('thread-late'),
    threadQueue: $('thread-queue'), threadAssignee: $('thread-assignee'), threadSince: $('thread-since'),
    threadReason: $('thread-reason'), threadContext: $('thread-context'), threadSla: $('thread-sla'),
    claim: $('claim'), resolve: $('resolve'), release: $('release'), releaseStep: $('release-step'),
    snooze: $('snooze'), snoozeUntil: $('snooze-until'), assignGroup: $('assign-group'),
    assign: $('assign'), assignAgent: $('assign-agent'),
    collision: $('collision'), transcript: $('transcript'),
    composer: $('composer'), canned: $('canned'), reply: $('reply'), noteMode: $('note-mode'),
    segments: $('segments'), send: $('send'),
  };

  const PAGE = 50;
  const SOUND_KEY = 'smsflow.inbox.sound';

  const state = {
    me: null,
    queues: [],
    queueFilter: '', // '' is every queue
    conversations: [],
    next: null,
    open: null, // the open thread's contact
    thread: null, // its last answer
    version: null, // the thread's version the agent has seen, sent with a reply
    confirmNext: false, // the last reply was refused as "changed": the next one confirms
    rendered: [], // keys of the transcript items on the page, in order
    gates: new Map(), // message id -> its gate element
    canned: [],
    cannedMatches: [],
    cannedActive: 0,
    drafts: new Map(), // contact -> unsent text
    events: null, // the EventSource
    eventsLive: false,
    timers: [],
  };

  // ---------------------------------------------------------------------------------------
  // The API
  // ---------------------------------------------------------------------------------------

  /** One call; answers {status, ok, data}. A 401 on a signed-in page shows the sign-in. */
  async function api(method, path, body) {
    const init = { method, credentials: 'same-origin', headers: { Accept: 'application/json' } };
    if (body !== undefined) {
      init.headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(path, init);
    } catch {
      return { status: 0, ok: false, data: { error: 'the server cannot be reached' } };
    }
    const stamped = Date.parse(response.headers.get('x-smsflow-now') || '');
    if (Number.isFinite(stamped)) serverOffset = stamped - Date.now();
    let data = null;
    const type = response.headers.get('content-type') || '';
    if (response.status !== 204) {
      try {
        data = type.includes('json') ? await response.json() : { error: (await response.text()).trim() };
      } catch {
        data = null;
      }
    }
    if (response.status === 401 && path !== '/v1/agent/session' && state.me) {
      showSignin('Your session has ended: sign in again.');
    }
    return { status: response.status, ok: response.ok, data };
  }

  /** The message of a failed call: the API's {"error"}, with the holder of a 409. */
  function errorText(result) {
    const data = result.data || {};
    let message = data.error || (result.status ? `the request failed (HTTP ${result.status})` : 'the request failed');
    if (data.holder && !message.includes(data.holder)) message += ` (held by ${data.holder})`;
    for (const key of ['missing', 'fields']) {
      if (Array.isArray(data[key]) && data[key].length && !data[key].every((f) => message.includes(f))) {
        message += ` (missing: ${data[key].join(', ')})`;
      }
    }
    return message;
  }

  const conversationPath = (contact) => `/v1/agent/conversations/${encodeURIComponent(contact)}`;

  // ---------------------------------------------------------------------------------------
  // Status line
  // ---------------------------------------------------------------------------------------

  let statusTimer = null;
  /** Writes to #status; kind is info, warn or error. Info fades after a while. */
  function say(text, kind = 'info') {
    els.status.textContent = text;
    els.status.className = `status ${kind}`;
    clearTimeout(statusTimer);
    statusTimer = setTimeout(() => { els.status.textContent = ''; }, kind === 'info' ? 8000 : 30000);
  }

  // ---------------------------------------------------------------------------------------
  // Sign-in and the session
  // ---------------------------------------------------------------------------------------

  function showSignin(message) {
    stopSession();
    els.app.hidden = true;
    els.signin.hidden = false;
    els.signinError.textContent = message || '';
    els.secret.focus();
  }

  async function signin(event) {
    event.preventDefault();
    const secret = els.secret.value;
    if (!secret) return;
    els.signinButton.disabled = true;
    els.signinError.textContent = '';
    const result = await api('POST', '/v1/agent/session', { secret });
    els.signinButton.disabled = false;
    if (!result.ok) {
      els.signinError.textContent = result.status === 401
        ? 'That secret was not accepted.'
        : errorText(result);
      els.secret.select();
      return;
    }
    els.secret.value = '';
    startSession((result.data && result.data.agent) || result.data);
  }

  async function signout() {
    await api('DELETE', '/v1/agent/session');
    showSignin('Signed out.');
  }

  function startSession(me) {
    state.me = me;
    els.signin.hidden = true;
    els.app.hidden = false;
    applyMe(me);
    loadCanned();
    refreshAll();
    connectEvents();
    state.timers.push(setInterval(tickTimes, 30000));
    state.timers.push(setInterval(() => { if (viewers.size) showViewers(); }, 5000));
    // Without the live stream, fall back to a slow poll.
    state.timers.push(setInterval(() => { if (!state.eventsLive) refreshAll(); }, 30000));
    const fromHash = contactFromHash();
    if (fromHash) openThread(fromHash);
  }

  function stopSession() {
    state.me = null;
    if (state.events) state.events.close();
    state.events = null;
    state.eventsLive = false;
    for (const timer of state.timers) clearInterval(timer);
    state.timers = [];
    closeThread({ keepHash: true }); // a sign-in reopens the thread the address names
    state.conversations = [];
    state.queues = [];
    state.drafts.clear();
    els.conversations.replaceChildren();
    els.queues.replaceChildren();
  }

  function applyMe(me) {
    state.me = me;
    els.meName.textContent = me.name || '';
    els.meRole.hidden = me.role !== 'supervisor';
    els.assignGroup.hidden = me.role !== 'supervisor';
    if (me.presence) els.presence.value = me.presence;
  }

  async function setPresence() {
    const wanted = els.presence.value;
    const result = await api('POST', '/v1/agent/presence', { presence: wanted });
    if (!result.ok) {
      say(errorText(result), 'error');
      if (state.me) els.presence.value = state.me.presence;
      return;
    }
    applyMe(result.data && result.data.name ? result.data : { ...state.me, presence: wanted });
    say(`You are ${els.presence.value}.`);
  }

  // ---------------------------------------------------------------------------------------
  // Sound and notifications for new handoffs
  // ---------------------------------------------------------------------------------------

  let audio = null;
  /** Browsers let a page make sound only after a gesture: the first click makes the context. */
  function unlockAudio() {
    if (!els.sound.checked) return;
    try {
      audio = audio || new AudioContext();
      if (audio.state === 'suspended') audio.resume();
    } catch {
      // No WebAudio.
    }
  }

  function beep() {
    try {
      audio = audio || new AudioContext();
      if (audio.state === 'suspended') audio.resume();
      const now = audio.currentTime;
      const tone = audio.createOscillator();
      const gain = audio.createGain();
      tone.type = 'sine';
      tone.frequency.setValueAtTime(880, now);
      tone.frequency.setValueAtTime(1175, now + 0.09);
      gain.gain.setValueAtTime(0.0001, now);
      gain.gain.exponentialRampToValueAtTime(0.2, now + 0.01);
      gain.gain.exponentialRampToValueAtTime(0.0001, now + 0.22);
      tone.connect(gain).connect(audio.destination);
      tone.start(now);
      tone.stop(now + 0.25);
    } catch {
      // No audio device or no WebAudio: stay silent.
    }
  }

  function updateNotifyButton() {
    if (!('Notification' in window)) {
      els.notify.hidden = true;
      return;
    }
    els.notify.hidden = false;
    const permission = Notification.permission;
    els.notify.textContent = permission === 'granted' ? 'notifications on'
      : permission === 'denied' ? 'notifications blocked' : 'notifications';
    els.notify.disabled = permission !== 'default';
  }

  async function askNotifications() {
    try {
      await Notification.requestPermission();
    } catch {
      // Old browsers take a callback instead; the button just stays as it was.
    }
    updateNotifyButton();
  }

  function inMyQueues(queue) {
    if (!state.me) return false;
    if (state.me.role === 'supervisor' || !queue) return true;
    return (state.me.queues || []).includes(queue);
  }

  function alertHandoff(event) {
    if (els.sound.checked) beep();
    if (!('Notification' in window) || Notification.permission !== 'granted') return;
    try {
      // A notification shows plain text: no markup is interpreted there.
      const notice = new Notification(`New conversation${event.queue ? ` in ${event.queue}` : ''}`, {
        body: [event.contact, event.reason].filter(Boolean).join(': '),
        tag: `smsflow-${event.contact || ''}`,
      });
      notice.onclick = () => {
        window.focus();
        if (event.contact) openThread(event.contact);
        notice.close();
      };
    } catch {
      // Some browsers (Android) only show notifications from a service worker.
    }
  }

  // ---------------------------------------------------------------------------------------
  // Queues
  // ---------------------------------------------------------------------------------------

  async function loadQueues() {
    const result = await api('GET', '/v1/agent/queues');
    if (!result.ok) {
      if (result.status !== 401) say(errorText(result), 'error');
      return;
    }
    state.queues = (result.data && result.data.queues) || [];
    renderQueues();
  }

  function renderQueues() {
    const fragment = document.createDocumentFragment();
    const total = { waiting: 0, assigned: 0 };
    for (const queue of state.queues) {
      total.waiting += queue.waiting || 0;
      total.assigned += queue.assigned || 0;
    }
    fragment.append(queueItem('', 'All queues', total));
    for (const queue of state.queues) fragment.append(queueItem(queue.name, queue.name, queue));
    els.queues.replaceChildren(fragment);
  }

  function queueItem(value, label, queue) {
    const li = el('li', value === state.queueFilter ? 'queue selected' : 'queue');
    li.dataset.queue = value;
    li.tabIndex = 0;
    const name = el('span', 'queue-title');
    name.append(userText('span', 'queue-name', label));
    if (queue.late) name.append(el('span', 'badge late-count', `${queue.late} late`));
    li.append(name);
    const counts = el('span', 'queue-counts', `${queue.waiting || 0} waiting · ${queue.assigned || 0} assigned`);
    if (queue.snoozed) counts.textContent += ` · ${queue.snoozed} snoozed`;
    li.append(counts);
    if (queue.oldest_waiting_since) {
      li.append(sinceSpan('queue-oldest', 'waiting ', queue.oldest_waiting_since));
    }
    if (queue.assignment) li.title = `assignment: ${queue.assignment}`;
    return li;
  }

  function chooseQueue(event) {
    const li = event.target.closest('li[data-queue]');
    if (!li) return;
    state.queueFilter = li.dataset.queue;
    renderQueues();
    loadConversations();
  }

  // ---------------------------------------------------------------------------------------
  // The conversation list
  // ---------------------------------------------------------------------------------------

  let listLoad = 0;
  async function loadConversations({ append = false } = {}) {
    const params = new URLSearchParams();
    if (state.queueFilter) params.set('queue', state.queueFilter);
    if (els.stateFilter.value !== 'open') params.set('state', els.stateFilter.value);
    if (els.mineFilter.checked) params.set('assignee', 'me');
    if (els.lateFilter.checked) params.set('late', 'true');
    if (append && state.next) {
      params.set('cursor', state.next);
      params.set('limit', String(PAGE));
    } else {
      // A refresh keeps as many rows as "load more" had shown.
      params.set('limit', String(Math.max(PAGE, Math.min(state.conversations.length, 200))));
    }
    const load = ++listLoad;
    const result = await api('GET', `/v1/agent/conversations?${params}`);
    if (load !== listLoad) return; // a newer load superseded this one
    if (!result.ok) {
      if (result.status !== 401) say(errorText(result), 'error');
      return;
    }
    const page = (result.data && result.data.conversations) || [];
    state.conversations = append ? state.conversations.concat(page) : page;
    state.next = (result.data && result.data.next) || null;
    renderConversations();
  }

  function renderConversations() {
    const fragment = document.createDocumentFragment();
    for (const summary of state.conversations) fragment.append(conversationItem(summary));
    els.conversations.replaceChildren(fragment);
    els.conversationsEmpty.hidden = state.conversations.length > 0;
    els.more.hidden = !state.next;
  }

  function conversationItem(summary) {
    const li = el('li', 'conversation');
    if (summary.contact === state.open) li.classList.add('selected');
    if (summary.late) li.classList.add('is-late');
    li.dataset.contact = summary.contact;
    li.tabIndex = -1;

    li.append(userText('span', 'conv-contact', summary.contact));
    const badges = el('span', 'conv-badges');
    if (summary.late) badges.append(el('span', 'badge late', 'late'));
    badges.append(el('span', `badge state state-${summary.state}`, summary.state));
    li.append(badges);

    li.append(userText('div', 'conv-reason', summary.reason || ''));
    if (summary.last_inbound && summary.last_inbound.text) {
      li.append(userText('div', 'conv-last', summary.last_inbound.text));
    }

    const meta = el('div', 'conv-meta');
    meta.append(el('span', 'conv-assignee', summary.assignee ? `@${summary.assignee}` : 'unassigned'));
    if (summary.state === 'snoozed' && summary.snoozed_until) {
      meta.append(document.createTextNode(' · '), el('span', '', `snoozed until ${whenIso(summary.snoozed_until)}`));
    } else if (summary.state === 'waiting' && summary.waiting_since) {
      meta.append(document.createTextNode(' · '), sinceSpan('conv-waiting', 'waiting ', summary.waiting_since));
    }
    if (summary.queue && !state.queueFilter) meta.append(document.createTextNode(' · '), userText('span', '', summary.queue));
    li.append(meta);
    return li;
  }

  function markSelected() {
    for (const li of els.conversations.querySelectorAll('li.conversation')) {
      li.classList.toggle('selected', li.dataset.contact === state.open);
    }
  }

  function chooseConversation(event) {
    const li = event.target.closest('li.conversation');
    if (li) openThread(li.dataset.contact);
  }

  /** j/k: the next or previous conversation of the list, opened. */
  function moveInList(step) {
    const contacts = state.conversations.map((summary) => summary.contact);
    if (!contacts.length) return;
    const at = contacts.indexOf(state.open);
    const next = at === -1 ? (step > 0 ? 0 : contacts.length - 1)
      : Math.min(contacts.length - 1, Math.max(0, at + step));
    if (contacts[next] === state.open) return;
    openThread(contacts[next]);
    const li = els.conversations.children[next];
    if (li) li.scrollIntoView({ block: 'nearest' });
  }

  const refreshAll = () => { loadQueues(); loadConversations(); };
  const scheduleRefresh = debounce(refreshAll, 200);

  // ---------------------------------------------------------------------------------------
  // The thread
  // ---------------------------------------------------------------------------------------

  function contactFromHash() {
    if (location.hash.length < 2) return null;
    try {
      return decodeURIComponent(location.hash.slice(1));
    } catch {
      return null;
    }
  }

  function openThread(contact) {
    if (!contact) return;
    if (contact !== state.open) {
      if (state.open) state.drafts.set(state.open, els.reply.value);
      // What the status line said was about the conversation left behind.
      els.status.textContent = '';
      state.open = contact;
      state.thread = null;
      state.version = null;
      state.confirmNext = false;
      state.rendered = [];
      state.gates.clear();
      els.transcript.replaceChildren();
      viewers.clear();
      showViewers();
      els.threadContact.textContent = contact;
      els.threadState.textContent = '';
      els.threadAssignee.textContent = '';
      els.threadReason.textContent = '';
      els.threadContext.replaceChildren();
      els.reply.value = state.drafts.get(contact) || '';
      closeCanned();
      updateSegments();
      history.replaceState(null, '', `#${encodeURIComponent(contact)}`);
    }
    els.threadEmpty.hidden = true;
    els.thread.hidden = false;
    els.app.classList.add('show-thread');
    markSelected();
    loadThread({ takeVersion: true });
    postViewing(false);
    restartHeartbeat();
  }

  function closeThread({ keepHash = false } = {}) {
    if (state.open) state.drafts.set(state.open, els.reply.value);
    state.open = null;
    state.thread = null;
    state.rendered = [];
    state.gates.clear();
    stopHeartbeat();
    els.transcript.replaceChildren();
    els.thread.hidden = true;
    els.threadEmpty.hidden = false;
    els.app.classList.remove('show-thread');
    if (location.hash && !keepHash) history.replaceState(null, '', location.pathname + location.search);
    markSelected();
  }

  let threadLoad = 0;
  /**
   * Loads the open thread and renders what changed. `takeVersion`: the agent has now seen the
   * thread as loaded, so a reply is checked against this version. A reload caused by an event
   * while the agent is writing keeps the older version: the server then answers "changed"
   * and the agent confirms having read the new texts.
   */
  async function loadThread({ takeVersion = false } = {}) {
    const contact = state.open;
    if (!contact) return;
    const load = ++threadLoad;
    const result = await api('GET', conversationPath(contact));
    if (load !== threadLoad || contact !== state.open) return;
    if (!result.ok) {
      if (result.status !== 401) say(errorText(result), 'error');
      return;
    }
    const thread = result.data;
    state.thread = thread;
    if (takeVersion || state.version === null || !els.reply.value.trim()) state.version = thread.version ?? null;
    renderHeader(thread);
    renderViewers(thread.viewers || []);
    renderTranscript(thread);
  }
  const scheduleThreadReload = debounce(() => loadThread(), 200);

  function renderHeader(thread) {
    els.threadContact.textContent = thread.contact || state.open;
    els.threadState.textContent = thread.state || '';
    els.threadState.className = `badge state state-${thread.state}`;
    els.threadLate.hidden = !thread.late;
    els.threadQueue.textContent = thread.queue || '—';
    els.threadAssignee.textContent = thread.assignee || 'unassigned';

    els.threadSince.replaceChildren();
    if (thread.state === 'snoozed' && thread.snoozed_until) {
      els.threadSince.textContent = `snoozed until ${whenIso(thread.snoozed_until)}`;
    } else if (thread.state === 'waiting' && thread.waiting_since) {
      els.threadSince.append(sinceSpan('', 'waiting ', thread.waiting_since));
    } else if (thread.handed_off_at) {
      els.threadSince.textContent = `handed off ${whenIso(thread.handed_off_at)}`;
    }

    els.threadReason.textContent = thread.reason || '';
    renderContext(thread.context || {});
    renderSla(thread.sla);

    const mine = state.me && thread.assignee === state.me.name;
    els.claim.disabled = thread.state === 'assigned' && mine;
    els.resolve.disabled = thread.state === 'resolved';
  }

  /** Why and where the bot stopped: flow, step, campaign, intent, and every field. */
  function renderContext(context) {
    const fragment = document.createDocumentFragment();
    const row = (label, value) => {
      if (value === undefined || value === null || value === '') return;
      fragment.append(el('dt', '', label));
      fragment.append(userText('dd', '', typeof value === 'object' ? JSON.stringify(value) : value));
    };
    row('flow', context.flow);
    row('step', context.step);
    row('campaign', context.campaign);
    if (context.intent) {
      const confidence = typeof context.confidence === 'number' ? ` (${Math.round(context.confidence * 100)}%)` : '';
      row('intent', `${context.intent}${confidence}`);
    }
    const fields = context.fields || {};
    for (const name of Object.keys(fields).sort()) row(name, fields[name]);
    els.threadContext.replaceChildren(fragment);
  }

  function renderSla(sla) {
    els.threadSla.replaceChildren();
    if (!sla) return;
    const breached = new Set(sla.breached || []);
    const parts = [
      ['first_response', 'first response due', sla.first_response_due],
      ['next_response', 'next response due', sla.next_response_due],
      ['resolution', 'resolution due', sla.resolution_due],
    ];
    let first = true;
    for (const [key, label, due] of parts) {
      if (!due && !breached.has(key)) continue;
      if (!first) els.threadSla.append(document.createTextNode(' · '));
      first = false;
      const text = breached.has(key) ? `${label.replace(' due', '')} late${due ? ` (due ${whenIso(due)})` : ''}` : `${label} ${whenIso(due)}`;
      els.threadSla.append(el('span', breached.has(key) ? 'breached' : '', text));
    }
  }

  // Other agents on the open thread: agent -> {typing, seen (ms)}. Filled from the thread's
  // `viewers` and kept current by `viewing` events; like the server, forgets an agent not
  // heard from for 15 s.
  const VIEWER_MS = 15000;
  const viewers = new Map();

  /** The thread's `viewers` list replaces what the page knew. */
  function renderViewers(list) {
    viewers.clear();
    const now = Date.now();
    for (const viewer of list) {
      if (viewer && viewer.agent) viewers.set(viewer.agent, { typing: Boolean(viewer.typing), seen: now });
    }
    showViewers();
  }

  /** "ana is viewing" / "ana is typing…", other agents only. */
  function showViewers() {
    const now = Date.now();
    const lines = [];
    for (const [agent, viewer] of viewers) {
      if (now - viewer.seen >= VIEWER_MS) viewers.delete(agent);
      else if (!state.me || agent !== state.me.name) lines.push(`${agent} is ${viewer.typing ? 'typing…' : 'viewing'}`);
    }
    els.collision.textContent = lines.join(', ');
    els.collision.hidden = lines.length === 0;
  }

  /**
   * When a note or an action happened, to sort it among the transcript's milliseconds. An
   * RFC 3339 time in whole seconds stands for somewhere in that second: it sorts at the
   * second's end, after the texts of that second it most likely followed.
   */
  function sortTime(record) {
    if (typeof record.at_ms === 'number') return record.at_ms;
    const ms = parseTime(record.at);
    if (ms === null) return 0;
    return /T\d\d:\d\d:\d\d(Z|[+-])/i.test(String(record.at)) ? ms + 999 : ms;
  }

  /** The transcript, notes and history in one list by time (a stable sort keeps ties in order). */
  function threadItems(thread) {
    const items = [];
    for (const entry of thread.transcript || []) {
      items.push({ key: `t${entry.seq}`, at: entry.at_ms ?? 0, kind: 'entry', data: entry });
    }
    (thread.notes || []).forEach((note, index) => {
      items.push({ key: `n${index}`, at: sortTime(note), kind: 'note', data: note });
    });
    (thread.history || []).forEach((action, index) => {
      items.push({ key: `h${index}`, at: sortTime(action), kind: 'history', data: action });
    });
    items.sort((a, b) => a.at - b.at);
    return items;
  }

  function renderTranscript(thread) {
    const items = threadItems(thread);
    const messages = new Map();
    for (const message of thread.messages || []) messages.set(message.id, message);

    const list = els.transcript;
    const fresh = state.rendered.length === 0;
    const atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 48;

    // What is on the page is still the start of the thread when it has no more items and its
    // last item is where it was (keys are unique and items sorted, so this is enough): then
    // only the new items are added. Anything else (a note that sorts earlier) rebuilds.
    const shown = state.rendered.length;
    const stillPrefix = shown <= items.length
      && (shown === 0 || items[shown - 1].key === state.rendered[shown - 1]);
    let from = shown;
    if (!stillPrefix) {
      list.replaceChildren();
      state.gates.clear();
      state.rendered = [];
      from = 0;
    }
    if (from < items.length) {
      const fragment = document.createDocumentFragment();
      for (let i = from; i < items.length; i += 1) {
        fragment.append(renderItem(items[i], messages));
        state.rendered.push(items[i].key);
      }
      list.append(fragment);
    }
    // Delivery reports and deferred texts change the gate line of texts already shown.
    for (const message of thread.messages || []) {
      const gate = state.gates.get(message.id);
      if (gate) updateGate(gate, message);
    }
    if (fresh || atBottom || !stillPrefix) list.scrollTop = list.scrollHeight;
  }

  function renderItem(item, messages) {
    if (item.kind === 'note') {
      const li = el('li', 'entry note');
      const card = el('div', 'note-card');
      const by = el('div', 'note-by', `private note by ${item.data.agent || 'someone'} · ${whenIso(item.data.at)}`);
      card.append(by, userText('div', 'note-text', item.data.text || ''));
      li.append(card);
      return li;
    }
    if (item.kind === 'history') {
      const action = item.data;
      // An action without an agent is the desk's own ("late: first_response target missed").
      const text = action.agent ? `${action.agent} ${action.action || ''}` : String(action.action || '');
      return systemLine('history', text.trim(), parseTime(action.at));
    }
    const entry = item.data;
    switch (entry.type) {
      case 'inbound': {
        const li = el('li', 'entry inbound');
        li.append(userText('div', 'bubble', entry.text || ''));
        const meta = el('div', 'entry-meta');
        meta.append(el('span', 'time', whenText(entry.at_ms)));
        li.append(meta);
        return li;
      }
      case 'outbound':
        return outboundItem(entry, messages.get(entry.message_id));
      case 'handoff':
        return systemLine('handoff', `handed to ${entry.queue || 'people'}${entry.reason ? `: ${entry.reason}` : ''}`, entry.at_ms);
      case 'started':
        return systemLine('started', `flow ${entry.flow || ''} started${entry.trigger ? ` (${entry.trigger})` : ''}`, entry.at_ms);
      case 'step':
        return systemLine('step', `step ${entry.step || ''}`, entry.at_ms);
      case 'classified': {
        const confidence = typeof entry.confidence === 'number' ? ` (${Math.round(entry.confidence * 100)}%)` : '';
        return systemLine('classified', `classified as ${entry.intent || '?'}${confidence}`, entry.at_ms);
      }
      case 'variant':
        return systemLine('variant', `split ${entry.step || ''}: variant ${entry.variant || ''}`, entry.at_ms);
      case 'timed_out':
        return systemLine('timed-out', `no reply in time at ${entry.step || ''}`, entry.at_ms);
      case 'error':
        return systemLine('error', `step ${entry.step || ''} failed: ${entry.message || ''}`, entry.at_ms);
      case 'ended':
        return systemLine('ended', `conversation ended${entry.outcome ? `: ${entry.outcome}` : ''}`, entry.at_ms);
      default: {
        // An entry type this page does not know yet: its name and simple fields, as text.
        const details = Object.entries(entry)
          .filter(([key, value]) => !['seq', 'at_ms', 'type'].includes(key) && value !== null && typeof value !== 'object')
          .map(([key, value]) => `${key}: ${value}`)
          .join(', ');
        return systemLine('other', `${entry.type || 'event'}${details ? ` (${details})` : ''}`, entry.at_ms);
      }
    }
  }

  function systemLine(kind, text, atMs) {
    const li = el('li', `entry system ${kind}`);
    const line = userText('span', 'line', text);
    if (atMs) line.title = new Date(atMs).toLocaleString();
    li.append(line);
    return li;
  }

  function outboundItem(entry, message) {
    const step = entry.step || '';
    const agent = step.startsWith('agent:') ? step.slice('agent:'.length) : null;
    const li = el('li', agent ? 'entry outbound by-agent' : 'entry outbound');
    if (entry.message_id) li.dataset.messageId = entry.message_id;
    li.append(userText('div', 'bubble', entry.text ?? (message && message.body) ?? ''));
    const meta = el('div', 'entry-meta');
    meta.append(userText('span', 'who', agent || (step ? `bot · ${step}` : 'bot')));
    meta.append(el('span', 'time', whenText(entry.at_ms)));
    const gate = el('span', 'gate');
    meta.append(gate);
    li.append(meta);
    if (entry.message_id) state.gates.set(entry.message_id, gate);
    if (message) updateGate(gate, message);
    return li;
  }

  /** What the gate and the provider did with a text: "✓ sent", "✓✓ delivered", "blocked: …". */
  function gateInfo(message) {
    const gate = message.gate || null;
    const decision = gate && gate.decision;
    const status = typeof message.status === 'string' ? message.status : message.status && message.status.state;
    const statusReason = message.status && typeof message.status === 'object' ? message.status.reason : null;
    const delivery = typeof message.delivery === 'string' ? message.delivery
      : message.delivery && (message.delivery.state || message.delivery.status);
    if (decision === 'blocked') return { kind: 'blocked', text: `blocked: ${gate.reason || 'by the compliance gate'}` };
    if (status === 'blocked') return { kind: 'blocked', text: `blocked: ${statusReason || 'by the compliance gate'}` };
    if (delivery === 'read') return { kind: 'sent', text: '✓✓ read' };
    if (delivery === 'delivered') return { kind: 'sent', text: '✓✓ delivered' };
    if (delivery === 'undelivered') return { kind: 'failed', text: '✗ not delivered' };
    if (delivery === 'failed' || status === 'failed') return { kind: 'failed', text: `✗ failed${statusReason ? `: ${statusReason}` : ''}` };
    if (decision === 'deferred') {
      return { kind: 'deferred', text: `deferred until ${gate.until ? whenIso(gate.until) : 'later'}${gate.reason ? ` (${gate.reason})` : ''}` };
    }
    if (decision === 'sent' || status === 'sent' || delivery === 'sent') return { kind: 'sent', text: '✓ sent' };
    if (status === 'queued' || status === 'sending' || delivery === 'queued' || delivery === 'sending') {
      return { kind: 'pending', text: 'sending…' };
    }
    return { kind: '', text: status || '' };
  }

  function updateGate(span, message) {
    const info = gateInfo(message);
    const signature = `${info.kind}|${info.text}`;
    if (span.dataset.signature === signature) return;
    span.dataset.signature = signature;
    span.className = `gate ${info.kind}`;
    span.textContent = info.text;
    const entry = span.closest('.entry');
    if (entry) {
      entry.classList.toggle('gate-blocked', info.kind === 'blocked');
      entry.classList.toggle('gate-deferred', info.kind === 'deferred');
    }
    if (message.gate && message.gate.at) span.title = `gate decided ${new Date(parseTime(message.gate.at) ?? 0).toLocaleString()}`;
  }

  /** A case action's answer (a Summary): the header at once, the rest reloaded. */
  function applySummary(summary) {
    if (!summary || !state.thread || summary.contact !== state.open) return;
    Object.assign(state.thread, summary);
    renderHeader(state.thread);
  }

  async function act(action, body, done) {
    const contact = state.open;
    if (!contact) return;
    const result = await api('POST', `${conversationPath(contact)}/${action}`, body);
    if (!result.ok) {
      if (result.status !== 401) say(errorText(result), 'error');
      return;
    }
    applySummary(result.data);
    say(done);
    loadThread();
    scheduleRefresh();
  }

  const claim = () => act('claim', undefined, 'Claimed: the conversation is yours.');
  const resolve = () => act('resolve', undefined, 'Resolved.');
  function release() {
    const step = els.releaseStep.value.trim();
    act('release', step ? { step } : {}, step ? `Released to the bot at step ${step}.` : 'Released to the bot.');
    els.releaseStep.value = '';
  }
  function snooze() {
    const until = els.snoozeUntil.value.trim() || '2h';
    act('snooze', { until }, `Snoozed (${until}).`);
  }
  function assign() {
    const agent = els.assignAgent.value.trim();
    if (!agent) {
      say('Name the agent to assign it to.', 'warn');
      els.assignAgent.focus();
      return;
    }
    act('assign', { agent }, `Assigned to ${agent}.`);
    els.assignAgent.value = '';
  }

  // ---------------------------------------------------------------------------------------
  // Collision: tell the server this agent is here, and whether typing
  // ---------------------------------------------------------------------------------------

  let lastTypingPost = 0;
  let lastInputAt = 0;
  let heartbeat = null;
  const stopTyping = debounce(() => postViewing(false), 4000);

  async function postViewing(typing) {
    const contact = state.open;
    if (!contact || !state.me) return;
    if (!typing) lastTypingPost = 0; // the next keystroke says "typing" at once
    const result = await api('POST', `${conversationPath(contact)}/viewing`, { typing });
    if (contact !== state.open) return;
    if (result.ok && result.data && Array.isArray(result.data.viewers)) renderViewers(result.data.viewers);
  }

  function noteTyping() {
    const now = Date.now();
    lastInputAt = now;
    if (now - lastTypingPost >= 3000) {
      lastTypingPost = now;
      postViewing(true);
    }
    stopTyping();
  }

  function restartHeartbeat() {
    stopHeartbeat();
    heartbeat = setInterval(() => postViewing(Date.now() - lastInputAt < 3000), 10000);
  }

  function stopHeartbeat() {
    clearInterval(heartbeat);
    heartbeat = null;
    stopTyping.cancel();
  }

  // ---------------------------------------------------------------------------------------
  // Composer: canned replies, segment count, send, notes
  // ---------------------------------------------------------------------------------------

  async function loadCanned() {
    const result = await api('GET', '/v1/agent/canned');
    if (result.ok) state.canned = (result.data && result.data.canned) || [];
  }

  /** "/" at the start of the box: the canned replies whose shortcode fits what follows. */
  function updateCanned() {
    const match = !els.noteMode.checked && /^\/(\S*)$/.exec(els.reply.value);
    if (!match || !state.canned.length) {
      closeCanned();
      return;
    }
    const query = match[1].toLowerCase();
    const starts = [];
    const contains = [];
    for (const canned of state.canned) {
      const code = String(canned.shortcode).toLowerCase();
      if (code.startsWith(query)) starts.push(canned);
      else if (code.includes(query) || String(canned.text || '').toLowerCase().includes(query)) contains.push(canned);
    }
    state.cannedMatches = starts.concat(contains).slice(0, 30);
    state.cannedActive = 0;
    if (!state.cannedMatches.length) {
      closeCanned();
      return;
    }
    renderCanned();
    els.canned.hidden = false;
  }

  function renderCanned() {
    const fragment = document.createDocumentFragment();
    state.cannedMatches.forEach((canned, index) => {
      const li = el('li', index === state.cannedActive ? 'active' : '');
      li.dataset.shortcode = canned.shortcode;
      li.setAttribute('role', 'option');
      li.setAttribute('aria-selected', index === state.cannedActive ? 'true' : 'false');
      li.append(userText('span', 'canned-code', `/${canned.shortcode}`));
      if (canned.fields && canned.fields.length) li.append(el('span', 'canned-fields', `needs ${canned.fields.join(', ')}`));
      li.append(userText('span', 'canned-text', canned.text || ''));
      fragment.append(li);
    });
    els.canned.replaceChildren(fragment);
    const active = els.canned.children[state.cannedActive];
    if (active) active.scrollIntoView({ block: 'nearest' });
  }

  function closeCanned() {
    els.canned.hidden = true;
    state.cannedMatches = [];
  }

  async function chooseCanned(shortcode) {
    const contact = state.open;
    closeCanned();
    if (!contact || !shortcode) return;
    const result = await api('GET', `${conversationPath(contact)}/canned/${encodeURIComponent(shortcode)}`);
    if (contact !== state.open) return;
    if (!result.ok) {
      if (result.status !== 401) say(errorText(result), 'error');
      els.reply.focus();
      return;
    }
    els.reply.value = (result.data && result.data.text) || '';
    state.drafts.set(contact, els.reply.value);
    els.reply.focus();
    els.reply.setSelectionRange(els.reply.value.length, els.reply.value.length);
    scheduleSegments();
  }

  let segmentsLoad = 0;
  async function updateSegments() {
    const text = els.reply.value;
    const load = ++segmentsLoad;
    if (!text || els.noteMode.checked) {
      els.segments.textContent = els.noteMode.checked ? 'private: never sent' : '';
      return;
    }
    const result = await api('POST', '/v1/agent/segments', { text });
    if (load !== segmentsLoad) return; // typed on since
    if (!result.ok || !result.data) {
      els.segments.textContent = '';
      return;
    }
    const { encoding, segments, characters } = result.data;
    els.segments.textContent = `${encoding} · ${segments} segment${segments === 1 ? '' : 's'} · ${characters} chars`;
  }
  const scheduleSegments = debounce(updateSegments, 150);

  function gateSummary(gate) {
    if (!gate) return { text: 'Queued.', kind: 'info' };
    if (gate.decision === 'blocked') return { text: `blocked: ${gate.reason || 'by the compliance gate'}`, kind: 'error' };
    if (gate.decision === 'deferred') {
      return { text: `deferred until ${gate.until ? whenIso(gate.until) : 'later'}${gate.reason ? ` (${gate.reason})` : ''}`, kind: 'warn' };
    }
    return { text: 'sent', kind: 'info' };
  }

  let sending = false;
  async function send() {
    const contact = state.open;
    if (sending || !contact) return;
    const text = els.reply.value;
    if (!text.trim()) {
      say(els.noteMode.checked ? 'Write the note first.' : 'Write a reply first.', 'warn');
      els.reply.focus();
      return;
    }
    closeCanned();
    sending = true;
    els.send.disabled = true;
    try {
      if (els.noteMode.checked) {
        const result = await api('POST', `${conversationPath(contact)}/note`, { text });
        if (!result.ok) {
          if (result.status !== 401) say(errorText(result), 'error');
          return;
        }
        clearComposer(contact);
        say('Note added (private, never sent).');
        loadThread();
        return;
      }
      const body = { text };
      if (state.version !== null) body.version = state.version;
      if (state.confirmNext) body.confirm = true;
      const result = await api('POST', `${conversationPath(contact)}/reply`, body);
      if (result.status === 409 && result.data && result.data.changed) {
        state.confirmNext = true;
        say('the thread changed: review and send again to confirm', 'warn');
        await loadThread({ takeVersion: true });
        return;
      }
      if (!result.ok) {
        if (result.status !== 401) say(errorText(result), 'error');
        return;
      }
      state.confirmNext = false;
      clearComposer(contact);
      const summary = gateSummary(result.data && result.data.gate);
      say(summary.text, summary.kind);
      if (result.data) applySummary(result.data.conversation);
      postViewing(false);
      await loadThread({ takeVersion: true });
      scheduleRefresh();
    } finally {
      sending = false;
      els.send.disabled = false;
    }
  }

  function clearComposer(contact) {
    els.reply.value = '';
    state.drafts.delete(contact);
    updateSegments();
  }

  function toggleNoteMode() {
    const note = els.noteMode.checked;
    els.composer.classList.toggle('note-mode', note);
    els.send.textContent = note ? 'Add note' : 'Send';
    els.reply.placeholder = note
      ? 'A private note for the team: never sent to the contact'
      : 'Reply to the contact… (/ for canned replies)';
    closeCanned();
    updateSegments();
    els.reply.focus();
  }

  function replyInput() {
    if (state.open) state.drafts.set(state.open, els.reply.value);
    updateCanned();
    scheduleSegments();
    noteTyping();
  }

  function replyKeydown(event) {
    if (!els.canned.hidden && state.cannedMatches.length) {
      const count = state.cannedMatches.length;
      if (event.key === 'ArrowDown' || event.key === 'ArrowUp') {
        event.preventDefault();
        state.cannedActive = (state.cannedActive + (event.key === 'ArrowDown' ? 1 : count - 1)) % count;
        renderCanned();
        return;
      }
      if ((event.key === 'Enter' && !event.ctrlKey && !event.metaKey && !event.shiftKey) || event.key === 'Tab') {
        event.preventDefault();
        chooseCanned(state.cannedMatches[state.cannedActive].shortcode);
        return;
      }
      if (event.key === 'Escape') {
        event.preventDefault();
        event.stopPropagation();
        closeCanned();
        return;
      }
    }
    if (event.key === 'Enter' && (event.ctrlKey || event.metaKey)) {
      event.preventDefault();
      send();
    }
  }

  // ---------------------------------------------------------------------------------------
  // Live events
  // ---------------------------------------------------------------------------------------

  function connectEvents() {
    if (!('EventSource' in window) || state.events) return;
    const source = new EventSource('/v1/agent/events');
    state.events = source;
    let failed = false;
    source.onopen = () => {
      state.eventsLive = true;
      els.connection.className = 'connection live';
      els.connection.title = 'live updates on';
      // Events may have been missed while the stream was down.
      if (failed) {
        refreshAll();
        if (state.open) loadThread();
      }
      failed = false;
    };
    source.onerror = () => {
      failed = true;
      state.eventsLive = false;
      els.connection.className = 'connection down';
      els.connection.title = 'live updates reconnecting';
      if (source.readyState === EventSource.CLOSED) {
        // The server refused the stream (a 401 or an error): the browser will not retry by
        // itself. Check the session (a 401 shows the sign-in) and try again later.
        state.events = null;
        setTimeout(async () => {
          if (!state.me || state.events) return;
          const me = await api('GET', '/v1/agent/me');
          if (me.ok && state.me) connectEvents();
        }, 5000);
      }
    };
    for (const type of ['handoff', 'message', 'case']) {
      source.addEventListener(type, (event) => onEvent(type, parseEvent(event)));
    }
    source.addEventListener('viewing', (event) => {
      const data = parseEvent(event);
      if (!data.contact || data.contact !== state.open || !data.agent || (state.me && data.agent === state.me.name)) return;
      if (typeof data.typing === 'boolean') {
        viewers.set(data.agent, { typing: data.typing, seen: Date.now() });
        showViewers();
      } else {
        scheduleThreadReload(); // a server that does not say: the thread's viewers do
      }
    });
    // A stream that fell behind is told to reload: everything may have changed.
    source.addEventListener('reload', () => {
      refreshAll();
      if (state.open) scheduleThreadReload();
    });
  }

  function parseEvent(event) {
    try {
      return JSON.parse(event.data) || {};
    } catch {
      return {};
    }
  }

  function onEvent(type, data) {
    scheduleRefresh();
    if (data.contact && data.contact === state.open) scheduleThreadReload();
    if (type === 'handoff' && inMyQueues(data.queue)) alertHandoff(data);
  }

  // ---------------------------------------------------------------------------------------
  // Keyboard
  // ---------------------------------------------------------------------------------------

  function globalKeydown(event) {
    if (!state.me || event.defaultPrevented) return;
    if (isTypingTarget(event.target)) {
      // Escape leaves the box; every other key belongs to what is being typed.
      if (event.key === 'Escape' && event.target !== els.secret) event.target.blur();
      return;
    }
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    switch (event.key) {
      case 'j':
        event.preventDefault();
        moveInList(1);
        break;
      case 'k':
        event.preventDefault();
        moveInList(-1);
        break;
      case 'r':
        if (state.open) {
          event.preventDefault();
          els.reply.focus();
        }
        break;
      case 'e':
        if (state.open && !els.resolve.disabled) {
          event.preventDefault();
          resolve();
        }
        break;
      case 'Escape':
        if (state.open && els.app.classList.contains('show-thread') && window.matchMedia('(max-width: 760px)').matches) {
          closeThread();
        }
        break;
      default:
        break;
    }
  }

  // ---------------------------------------------------------------------------------------
  // Wiring
  // ---------------------------------------------------------------------------------------

  function wire() {
    els.signinForm.addEventListener('submit', signin);
    els.signout.addEventListener('click', signout);
    els.presence.addEventListener('change', setPresence);
    els.sound.checked = store(SOUND_KEY) === '1';
    els.sound.addEventListener('change', () => {
      store(SOUND_KEY, els.sound.checked ? '1' : '0');
      // Browsers let a page make sound only after a gesture: this click is one, so the
      // audio context made now can play later beeps by itself.
      if (els.sound.checked) beep();
    });
    els.notify.addEventListener('click', askNotifications);
    updateNotifyButton();

    els.queues.addEventListener('click', chooseQueue);
    els.queues.addEventListener('keydown', (event) => { if (event.key === 'Enter') chooseQueue(event); });
    els.stateFilter.addEventListener('change', () => loadConversations());
    els.mineFilter.addEventListener('change', () => loadConversations());
    els.lateFilter.addEventListener('change', () => loadConversations());
    els.conversations.addEventListener('click', chooseConversation);
    els.more.addEventListener('click', () => loadConversations({ append: true }));

    els.back.addEventListener('click', () => closeThread());
    els.claim.addEventListener('click', claim);
    els.resolve.addEventListener('click', resolve);
    els.release.addEventListener('click', release);
    els.snooze.addEventListener('click', snooze);
    els.assign.addEventListener('click', assign);
    const enterClicks = (input, action) => input.addEventListener('keydown', (event) => {
      if (event.key === 'Enter') {
        event.preventDefault();
        action();
      }
    });
    enterClicks(els.releaseStep, release);
    enterClicks(els.snoozeUntil, snooze);
    enterClicks(els.assignAgent, assign);

    els.reply.addEventListener('input', replyInput);
    els.reply.addEventListener('keydown', replyKeydown);
    els.reply.addEventListener('blur', () => setTimeout(closeCanned, 150));
    // mousedown would take the focus from the box before the click chooses.
    els.canned.addEventListener('mousedown', (event) => event.preventDefault());
    els.canned.addEventListener('click', (event) => {
      const li = event.target.closest('li[data-shortcode]');
      if (li) chooseCanned(li.dataset.shortcode);
    });
    els.noteMode.addEventListener('change', toggleNoteMode);
    els.send.addEventListener('click', send);

    document.addEventListener('keydown', globalKeydown);
    document.addEventListener('pointerdown', unlockAudio, { once: true });
  }

  async function boot() {
    wire();
    const result = await api('GET', '/v1/agent/me');
    if (result.ok && result.data) {
      startSession(result.data);
    } else if (result.status === 401) {
      showSignin();
    } else {
      showSignin(errorText(result));
    }
  }

  boot();
})();
