// imgstat dashboard: logs in with POST /api/auth, lists the environments and containers
// the user may access, and shows each container's image status from the JSON API.
(() => {
  'use strict';

  const TOKEN_KEY = 'imgstat.jwt';
  const USERNAME_KEY = 'imgstat.username';

  // Status requests in flight at once while the page loads, and per environment during a
  // re-check of its rows. Browsers open at most 6 HTTP/1.1 connections to one server.
  const LOAD_CONCURRENCY = 4;
  const RECHECK_CONCURRENCY = 3;

  // Delay that coalesces the summary and row order updates of many status responses.
  const REFRESH_DELAY_MS = 100;

  // A `processing` status is requested again after 1 s, 2 s, 4 s, … up to 30 s apart, at
  // most 12 times. After that, the row suggests a re-check.
  const RETRY_FIRST_MS = 1000;
  const RETRY_MAX_MS = 30000;
  const RETRY_MAX_ATTEMPTS = 12;

  // Order of the summary and of sorting by status: what needs attention first.
  const STATUSES = ['outdated', 'error', 'processing', 'preparing', 'updated', 'skipped'];

  const STATUS_TEXT = {
    outdated: { icon: '\u2191', help: 'The registry has a newer image for this tag.' },
    updated: { icon: '\u2713', help: 'The container runs the image the registry has for its tag.' },
    skipped: {
      icon: '\u2298',
      help: 'Nothing to compare: pinned by digest, never pushed, or no longer on the engine.',
    },
    processing: { icon: '\u27f3', help: 'The server is still checking; the page asks again by itself.' },
    preparing: { icon: '\u2026', help: 'A Swarm service whose tasks are not running yet.' },
    error: {
      icon: '!',
      help: 'The engine or the registry failed. Re-check later; an admin finds the cause in the server log.',
    },
  };

  const MESSAGES = {
    sessionEnded: 'Your session has ended. Log in again to continue.',
    loggedOut: 'You are logged out.',
    unreachable:
      'The imgstat server cannot be reached. Check that it is running and that your network works, then try again.',
    serverFailed: 'The server failed to answer. Try again in a moment.',
    badLogin: 'Wrong username or password.',
    missingLogin: 'Enter your username and password.',
    noAccess: 'You have no access to this environment any more. Reload to update the list.',
    noEnvironment: 'This environment no longer exists. Reload to update the list.',
    engineFailed:
      'The engine of this environment did not answer, so its containers cannot be listed. ' +
      'Try again later, or ask an admin to check the engine.',
  };

  /** A failed API request, by what the user can do about it. */
  class ApiFailure extends Error {
    constructor(kind, httpStatus) {
      super(`${kind} (HTTP ${httpStatus})`);
      this.kind = kind;
      this.httpStatus = httpStatus;
    }
  }

  function failureKind(httpStatus) {
    switch (httpStatus) {
      case 400:
        return 'bad-request';
      case 401:
        return 'unauthenticated';
      case 403:
        return 'forbidden';
      case 404:
        return 'not-found';
      case 502:
        return 'engine';
      default:
        return 'server';
    }
  }

  const initialQuery = new URLSearchParams(window.location.search);
  const state = {
    // Incremented on every load, login and logout, so that responses to requests of an
    // earlier page state are dropped.
    generation: 0,
    environments: [],
    // The status filter and the search text are kept in the address (?status=&search=),
    // so that a reload or a bookmark shows the same rows.
    filter: STATUSES.includes(initialQuery.get('status')) ? initialQuery.get('status') : null,
    search: (initialQuery.get('search') || '').trim(),
    sortKey: 'name',
    ascending: true,
  };

  const collator = new Intl.Collator(undefined, { numeric: true, sensitivity: 'base' });

  const byId = (id) => document.getElementById(id);
  const view = {
    notice: byId('notice'),
    noticeText: byId('notice-text'),
    noticeAction: byId('notice-action'),
    session: byId('session'),
    whoami: byId('whoami'),
    logout: byId('logout'),
    loginView: byId('login-view'),
    loginForm: byId('login-form'),
    username: byId('username'),
    password: byId('password'),
    loginMessage: byId('login-message'),
    loginSubmit: byId('login-submit'),
    dashboardView: byId('dashboard-view'),
    dashboardTitle: byId('dashboard-title'),
    dashboardMessage: byId('dashboard-message'),
    summary: byId('summary'),
    search: byId('search'),
    sort: byId('sort'),
    sortDirection: byId('sort-direction'),
    reload: byId('reload'),
    environments: byId('environments'),
    announcer: byId('announcer'),
  };

  /** Creates an element with attributes and children; strings become text nodes. */
  function el(tag, attributes = {}, ...children) {
    const element = document.createElement(tag);
    for (const [name, value] of Object.entries(attributes)) {
      if (value === false || value === null || value === undefined) continue;
      if (name === 'className') element.className = value;
      else element.setAttribute(name, value === true ? '' : value);
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined) continue;
      element.append(typeof child === 'string' ? document.createTextNode(child) : child);
    }
    return element;
  }

  // ---- API ---------------------------------------------------------------------------

  async function api(path, { method = 'GET', body, anonymous = false } = {}) {
    const headers = { Accept: 'application/json' };
    const token = sessionStorage.getItem(TOKEN_KEY);
    if (token && !anonymous) headers.Authorization = `Bearer ${token}`;
    if (body !== undefined) headers['Content-Type'] = 'application/json';

    let response;
    try {
      response = await fetch(path, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        cache: 'no-store',
        credentials: 'omit',
      });
    } catch (error) {
      throw new ApiFailure('unreachable', 0);
    }
    if (!response.ok) throw new ApiFailure(failureKind(response.status), response.status);
    try {
      return await response.json();
    } catch (error) {
      throw new ApiFailure('server', response.status);
    }
  }

  function statusPath(row, force) {
    const params = new URLSearchParams();
    if (row.node) params.set('nodeName', row.node);
    if (force) params.set('force', 'true');
    const query = params.toString();
    const path =
      `/api/docker/${encodeURIComponent(row.environment.id)}/containers/` +
      `${encodeURIComponent(row.id)}/image_status`;
    return query ? `${path}?${query}` : path;
  }

  /** Returns a function that runs at most `limit` of the tasks given to it at once. */
  function createPool(limit) {
    let active = 0;
    const waiting = [];
    const next = () => {
      if (active >= limit || waiting.length === 0) return;
      active += 1;
      const { task, resolve, reject } = waiting.shift();
      task()
        .then(resolve, reject)
        .finally(() => {
          active -= 1;
          next();
        });
    };
    return (task) =>
      new Promise((resolve, reject) => {
        waiting.push({ task, resolve, reject });
        next();
      });
  }

  /**
   * Status requests of the page load and of `processing` retries, at most LOAD_CONCURRENCY
   * at once. Rows shown on the page go first, so a search or a filter gets its badges
   * before the rows it hides.
   */
  const statusQueue = {
    waiting: new Set(),
    active: 0,

    add(row) {
      this.waiting.add(row);
      this.pump();
    },

    clear() {
      this.waiting.clear();
    },

    pump() {
      while (this.active < LOAD_CONCURRENCY && this.waiting.size > 0) {
        let next = null;
        for (const row of this.waiting) {
          if (!row.body.hidden) {
            next = row;
            break;
          }
          next = next || row;
        }
        this.waiting.delete(next);
        this.active += 1;
        loadStatus(next, { force: false, generation: state.generation }).finally(() => {
          this.active -= 1;
          this.pump();
        });
      }
    },
  };

  // ---- Notices and views ---------------------------------------------------------------

  function showNotice(text, action) {
    view.noticeText.textContent = text;
    view.noticeAction.hidden = !action;
    view.noticeAction.onclick = action || null;
    view.notice.hidden = false;
  }

  function hideNotice() {
    view.notice.hidden = true;
    view.noticeText.textContent = '';
  }

  function announce(text) {
    view.announcer.textContent = text;
  }

  function stopEverything() {
    state.generation += 1;
    for (const environment of state.environments) {
      for (const row of environment.rows) clearTimeout(row.retryTimer);
    }
    state.environments = [];
    statusQueue.clear();
  }

  function showLogin(message) {
    stopEverything();
    sessionStorage.removeItem(TOKEN_KEY);
    sessionStorage.removeItem(USERNAME_KEY);
    view.environments.replaceChildren();
    view.dashboardView.hidden = true;
    view.session.hidden = true;
    view.loginView.hidden = false;
    view.loginMessage.textContent = message || '';
    view.loginSubmit.disabled = false;
    view.password.value = '';
    view.username.focus();
  }

  /** Handles a 401 on any request: the token expired or the user was removed. */
  function endSession() {
    hideNotice();
    showLogin(MESSAGES.sessionEnded);
  }

  function showUnreachable() {
    showNotice(MESSAGES.unreachable, () => {
      hideNotice();
      loadDashboard();
    });
  }

  // ---- Login -----------------------------------------------------------------------------

  async function logIn(event) {
    event.preventDefault();
    const username = view.username.value.trim();
    const password = view.password.value;
    if (!username || !password) {
      view.loginMessage.textContent = MESSAGES.missingLogin;
      return;
    }

    view.loginSubmit.disabled = true;
    view.loginMessage.textContent = 'Logging in\u2026';
    try {
      const answer = await api('/api/auth', {
        method: 'POST',
        body: { Username: username, Password: password },
        anonymous: true,
      });
      sessionStorage.setItem(TOKEN_KEY, answer.jwt);
      sessionStorage.setItem(USERNAME_KEY, username);
      view.password.value = '';
      view.loginMessage.textContent = '';
      hideNotice();
      const loading = loadDashboard();
      view.dashboardTitle.focus();
      await loading;
    } catch (failure) {
      const kind = failure instanceof ApiFailure ? failure.kind : 'server';
      if (kind === 'unauthenticated') {
        view.password.value = '';
        view.password.focus();
      }
      view.loginMessage.textContent =
        kind === 'unauthenticated'
          ? MESSAGES.badLogin
          : kind === 'unreachable'
            ? MESSAGES.unreachable
            : kind === 'bad-request'
              ? MESSAGES.missingLogin
              : MESSAGES.serverFailed;
    } finally {
      view.loginSubmit.disabled = false;
    }
  }

  function logOut() {
    hideNotice();
    showLogin(MESSAGES.loggedOut);
  }

  // ---- Loading ---------------------------------------------------------------------------

  async function loadDashboard() {
    stopEverything();
    const generation = state.generation;
    view.loginView.hidden = true;
    view.dashboardView.hidden = false;
    view.session.hidden = false;
    view.whoami.textContent = `Logged in as ${sessionStorage.getItem(USERNAME_KEY) || 'unknown user'}`;
    view.environments.replaceChildren();
    view.dashboardMessage.textContent = 'Loading environments\u2026';
    renderSummary();

    let environments;
    try {
      environments = await api('/api/endpoints');
    } catch (failure) {
      if (generation !== state.generation) return;
      view.dashboardMessage.textContent = '';
      if (failure.kind === 'unauthenticated') endSession();
      else if (failure.kind === 'unreachable') showUnreachable();
      else showNotice(MESSAGES.serverFailed, () => loadDashboard());
      return;
    }
    if (generation !== state.generation) return;

    view.dashboardMessage.textContent =
      environments.length === 0
        ? 'No environment is shared with you yet. Ask an admin to grant you access.'
        : '';
    state.environments = environments.map((environment) => createEnvironment(environment));
    view.environments.replaceChildren(...state.environments.map((environment) => environment.section));
    await Promise.all(state.environments.map((environment) => loadContainers(environment, generation)));
  }

  function createEnvironment(data) {
    const environment = { id: data.Id, name: data.Name, rows: [], loaded: false, recheckRunning: false };
    const titleId = `environment-${data.Id}-title`;

    environment.count = el('span', { className: 'environment-count' });
    environment.recheckAll = el(
      'button',
      { type: 'button', className: 'recheck-all', disabled: true },
      'Re-check all',
    );
    environment.recheckAll.addEventListener('click', () => recheckEnvironment(environment));
    environment.message = el('p', { className: 'environment-message', role: 'status' });
    environment.retry = el('button', { type: 'button', className: 'environment-retry', hidden: true }, 'Try again');
    environment.retry.addEventListener('click', () => loadContainers(environment, state.generation));
    environment.table = createTable(data.Name);
    environment.table.hidden = true;

    environment.section = el(
      'section',
      {
        className: 'environment',
        'data-environment-id': String(data.Id),
        'data-environment-name': data.Name,
        'aria-labelledby': titleId,
      },
      el(
        'div',
        { className: 'environment-header' },
        el('h2', { id: titleId }, data.Name),
        environment.count,
        environment.recheckAll,
      ),
      el('div', { className: 'environment-status' }, environment.message, environment.retry),
      environment.table,
    );
    return environment;
  }

  function createTable(name) {
    const header = (label, key) => {
      if (!key) return el('th', { scope: 'col' }, label);
      const button = el('button', { type: 'button', className: 'sort-button', 'data-sort': key }, label);
      button.addEventListener('click', () => {
        if (state.sortKey === key) state.ascending = !state.ascending;
        else {
          state.sortKey = key;
          state.ascending = true;
        }
        renderAll();
      });
      return el('th', { scope: 'col', 'data-sort-key': key }, button);
    };
    return el(
      'table',
      { className: 'containers' },
      el('caption', { className: 'visually-hidden' }, `Containers of ${name}`),
      el(
        'thead',
        {},
        el(
          'tr',
          {},
          header('Name', 'name'),
          header('Image', 'image'),
          header('State'),
          header('Status', 'status'),
          el('th', { scope: 'col' }, el('span', { className: 'visually-hidden' }, 'Actions')),
        ),
      ),
    );
  }

  async function loadContainers(environment, generation) {
    environment.message.textContent = 'Loading containers\u2026';
    environment.retry.hidden = true;
    let containers;
    try {
      containers = await api(`/api/docker/${encodeURIComponent(environment.id)}/containers`);
    } catch (failure) {
      if (generation !== state.generation) return;
      showEnvironmentFailure(environment, failure);
      return;
    }
    if (generation !== state.generation) return;

    for (const row of environment.rows) {
      clearTimeout(row.retryTimer);
      statusQueue.waiting.delete(row);
    }
    for (const body of environment.table.querySelectorAll('tbody')) body.remove();
    environment.rows = containers.map((container) => createRow(environment, container));
    environment.loaded = true;
    environment.table.append(...environment.rows.map((row) => row.body));
    environment.table.hidden = environment.rows.length === 0;
    environment.recheckAll.disabled = environment.rows.length === 0;
    environment.message.textContent = environment.rows.length === 0 ? 'This environment has no containers.' : '';
    renderAll();

    for (const row of environment.rows) statusQueue.add(row);
  }

  function showEnvironmentFailure(environment, failure) {
    switch (failure.kind) {
      case 'unauthenticated':
        endSession();
        return;
      case 'unreachable':
        environment.message.textContent = 'Not loaded: the server cannot be reached.';
        showUnreachable();
        break;
      case 'forbidden':
        environment.message.textContent = MESSAGES.noAccess;
        break;
      case 'not-found':
        environment.message.textContent = MESSAGES.noEnvironment;
        break;
      case 'engine':
        environment.message.textContent = MESSAGES.engineFailed;
        break;
      default:
        environment.message.textContent = MESSAGES.serverFailed;
    }
    environment.retry.hidden = false;
  }

  // ---- Rows ----------------------------------------------------------------------------

  let rowCounter = 0;

  function createRow(environment, container) {
    rowCounter += 1;
    const detailId = `detail-${rowCounter}`;
    const row = {
      environment,
      id: container.Id,
      name: container.Name || container.Id.slice(0, 12),
      image: container.Image,
      state: container.State,
      node: container.Node,
      status: null,
      failure: null,
      busy: false,
      attempts: 0,
      retryTimer: null,
      sequence: 0,
      forcedSequence: 0,
    };

    row.statusCell = el('td', { className: 'status-cell', 'data-label': 'Status' });
    row.detailToggle = el(
      'button',
      { type: 'button', className: 'details-toggle', 'aria-expanded': 'false', 'aria-controls': detailId },
      'Details',
    );
    row.detailToggle.setAttribute('aria-label', `Details of ${row.name}`);
    row.recheck = el('button', { type: 'button', className: 'recheck', 'aria-label': `Re-check ${row.name}` });
    row.detailList = el('dl', { className: 'detail-list' });
    row.detailRow = el(
      'tr',
      { className: 'detail-row', id: detailId, hidden: true },
      el('td', { colspan: '5' }, row.detailList),
    );

    row.detailToggle.addEventListener('click', () => {
      const expanded = row.detailRow.hidden;
      row.detailRow.hidden = !expanded;
      row.detailToggle.setAttribute('aria-expanded', String(expanded));
    });
    row.recheck.addEventListener('click', () => recheckRow(row));

    row.body = el(
      'tbody',
      { className: 'container', 'data-container-id': row.id, 'data-container-name': row.name },
      el(
        'tr',
        { className: 'main-row' },
        el('td', { className: 'name-cell', 'data-label': 'Name' }, row.name),
        el('td', { className: 'image-cell', 'data-label': 'Image' }, el('code', {}, row.image)),
        el('td', { className: 'state-cell', 'data-label': 'State' }, row.state || 'unknown'),
        row.statusCell,
        el('td', { className: 'actions-cell' }, row.detailToggle, row.recheck),
      ),
      row.detailRow,
    );
    renderRow(row);
    return row;
  }

  /**
   * Requests a row's status and shows it. A forced request drops the responses of requests
   * that started before it, so a cached status cannot replace a fresh one.
   */
  async function loadStatus(row, { force, generation }) {
    if (generation !== state.generation) return;
    row.sequence += 1;
    const sequence = row.sequence;
    if (force) {
      clearTimeout(row.retryTimer);
      statusQueue.waiting.delete(row);
      row.forcedSequence = sequence;
      row.busy = true;
      renderRow(row);
    }

    let answer = null;
    let failure = null;
    try {
      answer = await api(statusPath(row, force));
    } catch (error) {
      failure = error;
    }
    if (generation !== state.generation) return;
    if (sequence < row.forcedSequence) return;

    row.busy = false;
    if (failure) {
      showRowFailure(row, failure);
    } else {
      row.status = answer;
      row.failure = null;
      if (answer.Status === 'processing') scheduleRetry(row);
      else row.attempts = 0;
    }
    renderRow(row);
    scheduleRefresh();
  }

  function scheduleRetry(row) {
    row.attempts += 1;
    if (row.attempts > RETRY_MAX_ATTEMPTS) return;
    const delay = Math.min(RETRY_FIRST_MS * 2 ** (row.attempts - 1), RETRY_MAX_MS);
    row.retryTimer = setTimeout(() => statusQueue.add(row), delay);
  }

  function showRowFailure(row, failure) {
    switch (failure.kind) {
      case 'unauthenticated':
        endSession();
        return;
      case 'unreachable':
        row.failure = 'Not loaded: the server cannot be reached.';
        showUnreachable();
        return;
      case 'forbidden':
        row.failure = 'No access.';
        row.environment.message.textContent = MESSAGES.noAccess;
        return;
      case 'not-found':
        row.failure = 'Environment gone.';
        row.environment.message.textContent = MESSAGES.noEnvironment;
        return;
      default:
        row.failure = 'Not loaded: the server failed. Re-check in a moment.';
    }
  }

  async function recheckRow(row) {
    if (row.busy) return;
    const generation = state.generation;
    await loadStatus(row, { force: true, generation });
    if (generation === state.generation && row.status && !row.failure) {
      announce(`Re-checked ${row.name}: ${row.status.Status}`);
    }
  }

  async function recheckEnvironment(environment) {
    const rows = environment.rows.filter((row) => !row.body.hidden);
    if (environment.recheckRunning || rows.length === 0) return;
    const generation = state.generation;
    const pool = createPool(RECHECK_CONCURRENCY);
    let done = 0;

    environment.recheckRunning = true;
    environment.recheckAll.disabled = true;
    environment.recheckAll.setAttribute('aria-busy', 'true');
    const progress = () => {
      environment.recheckAll.replaceChildren(
        el('span', { className: 'spinner', 'aria-hidden': 'true' }),
        ` Re-checking ${done} of ${rows.length}\u2026`,
      );
    };
    progress();

    await Promise.all(
      rows.map((row) =>
        pool(async () => {
          if (!row.busy) await loadStatus(row, { force: true, generation });
          done += 1;
          if (generation === state.generation) progress();
        }),
      ),
    );
    if (generation !== state.generation) return;

    environment.recheckRunning = false;
    environment.recheckAll.removeAttribute('aria-busy');
    renderAll();
    announce(`Re-checked ${rows.length} containers of ${environment.name}`);
  }

  // ---- Rendering -------------------------------------------------------------------------

  function badge(status) {
    const text = STATUS_TEXT[status] || { icon: '?', help: '' };
    return el(
      'span',
      { className: `badge badge-${status}`, 'data-status': status },
      el('span', { className: 'badge-icon', 'aria-hidden': 'true' }, text.icon),
      el('span', { className: 'badge-label' }, status),
    );
  }

  function formatTime(iso) {
    const time = new Date(iso);
    return Number.isNaN(time.getTime()) ? iso : time.toLocaleString();
  }

  function renderRow(row) {
    const answer = row.status;
    let content;
    if (row.failure) {
      content = el('span', { className: 'row-failure' }, el('span', { 'aria-hidden': 'true' }, '\u26a0 '), row.failure);
    } else if (!answer) {
      content = el(
        'span',
        { className: 'badge badge-loading', 'data-status': 'loading' },
        el('span', { className: 'spinner', 'aria-hidden': 'true' }),
        el('span', { className: 'badge-label' }, 'loading'),
      );
    } else {
      content = badge(answer.Status);
      const lines = [STATUS_TEXT[answer.Status] ? STATUS_TEXT[answer.Status].help : ''];
      if (answer.Reference) lines.push(`Checked ${answer.Reference}`);
      if (answer.CheckedAt) lines.push(`at ${formatTime(answer.CheckedAt)}`);
      content.title = lines.filter(Boolean).join('\n');
      if (answer.Status === 'processing' && row.attempts > RETRY_MAX_ATTEMPTS) {
        content = el('span', {}, content, el('span', { className: 'hint' }, ' still running: press Re-check'));
      }
    }
    row.statusCell.replaceChildren(content);

    row.recheck.disabled = row.busy;
    row.body.setAttribute('aria-busy', String(row.busy));
    row.recheck.replaceChildren(
      ...(row.busy
        ? [el('span', { className: 'spinner', 'aria-hidden': 'true' }), ' Re-checking\u2026']
        : ['Re-check']),
    );

    renderDetail(row);
    row.body.hidden = !rowVisible(row);
  }

  function renderDetail(row) {
    const answer = row.status || {};
    const entries = [];
    const add = (term, ...values) => {
      entries.push(el('dt', {}, term), ...values.map((value) => el('dd', {}, value)));
    };
    if (answer.Message) add('Message', answer.Message);
    if (answer.Reference) add('Reference checked', el('code', {}, answer.Reference));
    if (answer.CheckedAt) add('Checked at', formatTime(answer.CheckedAt));
    if (answer.LocalDigests) add('Local digests', ...answer.LocalDigests.map((digest) => el('code', {}, digest)));
    if (answer.RemoteDigest) add('Remote digest', el('code', {}, answer.RemoteDigest));
    add('Container ID', el('code', {}, row.id));
    if (row.node) add('Node', row.node);
    row.detailList.replaceChildren(...entries);
  }

  function statusOf(row) {
    return row.status && !row.failure ? row.status.Status : null;
  }

  function matchesSearch(row) {
    if (!state.search) return true;
    const needle = state.search.toLowerCase();
    return row.name.toLowerCase().includes(needle) || row.image.toLowerCase().includes(needle);
  }

  function rowVisible(row) {
    return matchesSearch(row) && (state.filter === null || statusOf(row) === state.filter);
  }

  function compareRows(a, b) {
    const byName = collator.compare(a.name, b.name) || collator.compare(a.id, b.id);
    let order;
    if (state.sortKey === 'image') order = collator.compare(a.image, b.image) || byName;
    else if (state.sortKey === 'status') {
      const rank = (row) => {
        const index = STATUSES.indexOf(statusOf(row));
        return index === -1 ? STATUSES.length : index;
      };
      order = rank(a) - rank(b) || byName;
    } else order = byName;
    return state.ascending ? order : -order;
  }

  /** Puts the rows of an environment in sort order, keeping the focused control focused. */
  function orderRows(environment) {
    const sorted = environment.rows.slice().sort(compareRows);
    const current = Array.from(environment.table.tBodies);
    if (sorted.every((row, index) => current[index] === row.body)) return;
    const focused = document.activeElement;
    environment.table.append(...sorted.map((row) => row.body));
    if (focused && focused !== document.activeElement && document.contains(focused)) {
      focused.focus({ preventScroll: true });
    }
  }

  let summaryChips = [];

  /** Creates the filter buttons once, so that keyboard focus stays on them as counts change. */
  function createSummary() {
    const chip = (status) => {
      const count = el('span', { className: 'chip-count' }, '0');
      const button = el(
        'button',
        {
          type: 'button',
          className: `summary-chip chip-${status || 'all'}`,
          'aria-pressed': 'false',
          'data-filter': status || 'all',
        },
        status ? el('span', { className: 'badge-icon', 'aria-hidden': 'true' }, STATUS_TEXT[status].icon) : null,
        el('span', { className: 'chip-label' }, status || 'all'),
        count,
      );
      button.addEventListener('click', () => {
        state.filter = state.filter === status ? null : status;
        saveViewInAddress();
        renderAll();
        statusQueue.pump();
      });
      return { status, button, count };
    };
    summaryChips = [chip(null), ...STATUSES.map(chip)];
    view.summary.replaceChildren(...summaryChips.map((entry) => entry.button));
  }

  /** Updates the count per status of the rows that match the search, and the pressed filter. */
  function renderSummary() {
    const counts = new Map(STATUSES.map((status) => [status, 0]));
    let total = 0;
    for (const environment of state.environments) {
      for (const row of environment.rows) {
        if (!matchesSearch(row)) continue;
        total += 1;
        const status = statusOf(row);
        if (counts.has(status)) counts.set(status, counts.get(status) + 1);
      }
    }
    for (const { status, button, count } of summaryChips) {
      count.textContent = String(status === null ? total : counts.get(status));
      button.setAttribute('aria-pressed', String(state.filter === status));
    }
  }

  function renderSortControls() {
    view.sort.value = state.sortKey;
    view.sortDirection.replaceChildren(state.ascending ? '\u2191 Ascending' : '\u2193 Descending');
    view.sortDirection.setAttribute('aria-label', `Sort order: ${state.ascending ? 'ascending' : 'descending'}`);
    for (const header of view.environments.querySelectorAll('th[data-sort-key]')) {
      const active = header.dataset.sortKey === state.sortKey;
      if (active) header.setAttribute('aria-sort', state.ascending ? 'ascending' : 'descending');
      else header.removeAttribute('aria-sort');
    }
  }

  /** Applies the search, filter and sort to every row, and updates counts and labels. */
  function renderAll() {
    renderSortControls();
    renderSummary();
    for (const environment of state.environments) {
      let visible = 0;
      for (const row of environment.rows) {
        row.body.hidden = !rowVisible(row);
        if (!row.body.hidden) visible += 1;
      }
      orderRows(environment);

      const total = environment.rows.length;
      if (!environment.loaded) environment.count.textContent = '';
      else if (visible === total) environment.count.textContent = `${total} container${total === 1 ? '' : 's'}`;
      else environment.count.textContent = `${visible} of ${total} shown`;
      if (!environment.recheckRunning) {
        environment.recheckAll.disabled = visible === 0;
        environment.recheckAll.replaceChildren(visible === total ? 'Re-check all' : `Re-check ${visible} shown`);
      }
    }
  }

  let refreshTimer = null;

  /** Runs renderAll once for all the status responses that arrive within REFRESH_DELAY_MS. */
  function scheduleRefresh() {
    if (refreshTimer !== null) return;
    refreshTimer = setTimeout(() => {
      refreshTimer = null;
      renderAll();
    }, REFRESH_DELAY_MS);
  }

  /** Keeps the search text and the status filter in the address, without a new history entry. */
  function saveViewInAddress() {
    const query = new URLSearchParams(window.location.search);
    if (state.search) query.set('search', state.search);
    else query.delete('search');
    if (state.filter) query.set('status', state.filter);
    else query.delete('status');
    const search = query.toString();
    window.history.replaceState(null, '', search ? `?${search}` : window.location.pathname);
  }

  // ---- Start -----------------------------------------------------------------------------

  createSummary();
  view.search.value = state.search;
  view.loginForm.addEventListener('submit', logIn);
  view.logout.addEventListener('click', logOut);
  view.reload.addEventListener('click', () => {
    hideNotice();
    loadDashboard();
  });
  view.search.addEventListener('input', () => {
    state.search = view.search.value.trim();
    saveViewInAddress();
    renderAll();
    statusQueue.pump();
  });
  view.sort.addEventListener('change', () => {
    state.sortKey = view.sort.value;
    renderAll();
  });
  view.sortDirection.addEventListener('click', () => {
    state.ascending = !state.ascending;
    renderAll();
  });

  if (sessionStorage.getItem(TOKEN_KEY)) loadDashboard();
  else showLogin('');
})();
