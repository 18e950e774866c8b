// The console: one state object, one view per screen (sign-in, commands, command), each
// built from scratch into <main>. Every request goes through api.js.

import * as api from './api.js';
import { el, replace } from './dom.js';
import { renderForm } from './fields.js';
import { renderNote, renderResult } from './results.js';

const state = {
  jid: '',          // the JID whose commands are listed
  commands: [],     // its list
  filter: '',
  open: null,       // the command on screen: {node, name, sessionid}
};

const main = document.getElementById('main');
const who = document.getElementById('who');

/** A message region: errors are alerts, the rest polite status. */
function message(text, kind = 'error') {
  return el('p', { class: `message message-${kind}`, role: kind === 'error' ? 'alert' : 'status', text });
}

/** The words for a refused request, from its condition and the gateway's text. */
function explain(answer) {
  const e = answer.error || {};
  if (answer.status === 401) return `Sign-in refused: the account and password, the token or the API key is wrong. (${e.text || 'unauthorized'})`;
  if (answer.status === 429) return `Too many failed sign-ins or requests: try again in ${answer.retryAfter || 'a few'} seconds.`;
  if (answer.status === 403 && e.condition === 'forbidden') return `Refused: ${e.text || 'forbidden'}`;
  return `${e.text || 'The request failed'} (${answer.status ? `HTTP ${answer.status}, ` : ''}${e.condition || 'error'})`;
}

function show(...children) {
  replace(main, ...children);
  const heading = main.querySelector('h1, h2');
  if (heading) {
    heading.setAttribute('tabindex', '-1');
    heading.focus();
  }
}

function header() {
  if (!api.signedIn()) {
    replace(who);
    return;
  }
  replace(who,
    el('span', { class: 'account', text: api.account() ? `Signed in as ${api.account()}` : 'Signed in with a token' }),
    el('button', { type: 'button', class: 'secondary', text: 'Sign out', onclick: () => signOut() }));
}

function leaveCommand() {
  const open = state.open;
  state.open = null;
  if (open && open.sessionid) api.cancel(state.jid, open.sessionid);
}

function signOut(why) {
  leaveCommand();
  api.forget();
  state.jid = '';
  state.commands = [];
  state.filter = '';
  signInView(why);
}

// ---- sign-in ----

function signInView(note) {
  header();
  const withToken = el('input', { type: 'radio', name: 'how', id: 'how-token', value: 'token' });
  const withPassword = el('input', { type: 'radio', name: 'how', id: 'how-password', value: 'password', checked: true });
  const account = el('input', { id: 'account', name: 'account', type: 'text', autocomplete: 'username', spellcheck: 'false', autocapitalize: 'none', required: true });
  const password = el('input', { id: 'password', name: 'password', type: 'password', autocomplete: 'current-password', required: true });
  const token = el('input', { id: 'token', name: 'token', type: 'password', autocomplete: 'off', required: true });
  const apiKey = el('input', { id: 'api-key', name: 'api-key', type: 'password', autocomplete: 'off', 'aria-describedby': 'api-key-desc' });
  const passwordPart = el('div', { class: 'part' },
    el('div', { class: 'field' }, el('label', { for: 'account', text: 'Account' }), account),
    el('div', { class: 'field' }, el('label', { for: 'password', text: 'Password' }), password));
  const tokenPart = el('div', { class: 'part', hidden: true },
    el('div', { class: 'field' }, el('label', { for: 'token', text: 'Token' }), token));
  const status = el('div', { class: 'status-area' }, note ? message(note, note.startsWith('Signed out') ? 'info' : 'error') : null);
  const toggle = () => {
    passwordPart.hidden = withToken.checked;
    tokenPart.hidden = !withToken.checked;
  };
  withToken.addEventListener('change', toggle);
  withPassword.addEventListener('change', toggle);
  const form = el('form', { class: 'sign-in', novalidate: true, 'aria-labelledby': 'sign-in-title' },
    el('fieldset', {},
      el('legend', { text: 'Sign in with' }),
      el('div', { class: 'choice' }, withPassword, el('label', { for: 'how-password', text: 'Account and password' })),
      el('div', { class: 'choice' }, withToken, el('label', { for: 'how-token', text: 'A token' }))),
    passwordPart,
    tokenPart,
    el('div', { class: 'field' }, el('label', { for: 'api-key', text: 'API key (optional)' }), apiKey,
      el('p', { class: 'desc', id: 'api-key-desc', text: 'Only when the gateway requires one (--require-api-key).' })),
    el('div', { class: 'actions' }, el('button', { type: 'submit', class: 'primary', text: 'Sign in' })),
    status);
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const useToken = withToken.checked;
    const missing = useToken ? (!token.value && token) : (!account.value.trim() && account) || (!password.value && password);
    if (missing) {
      replace(status, message(`Fill in ${missing === token ? 'the token' : missing === account ? 'the account' : 'the password'}.`));
      missing.focus();
      return;
    }
    const name = account.value.trim();
    api.signIn({ account: name, password: password.value, token: token.value, apiKey: apiKey.value });
    password.value = '';
    token.value = '';
    apiKey.value = '';
    if (useToken) {
      state.jid = '';
      commandsView();
      return;
    }
    const domain = name.includes('@') ? name.split('@').pop().split('/')[0] : name;
    state.jid = `sess-man@${domain}`;
    replace(status, message('Signing in…', 'info'));
    const answer = await api.list(state.jid);
    if (!answer.ok) {
      const words = explain(answer);
      api.forget();
      signInView(words);
      return;
    }
    state.commands = answer.items;
    commandsView();
  });
  show(el('h1', { id: 'sign-in-title', text: 'Sign in' }), form);
}

// ---- commands ----

function domainOf(account) {
  return account && account.includes('@') ? account.split('@').pop().split('/')[0] : '';
}

function commandsView(note) {
  header();
  const jid = el('input', { id: 'jid', name: 'jid', type: 'text', list: 'jid-choices', autocomplete: 'off', spellcheck: 'false', autocapitalize: 'none', value: state.jid, required: true, 'aria-describedby': 'jid-desc' });
  const domain = domainOf(api.account());
  const choices = el('datalist', { id: 'jid-choices' }, domain ? [el('option', { value: `sess-man@${domain}` }), el('option', { value: domain })] : null);
  const status = el('div', { class: 'status-area' }, note ? message(note) : null);
  const listArea = el('div', { class: 'command-list' });
  const search = el('input', { id: 'search', type: 'search', autocomplete: 'off', value: state.filter, 'aria-controls': 'commands' });
  const fill = () => {
    const words = state.filter.toLowerCase();
    const shown = state.commands.filter((c) => !words || `${c.name || ''} ${c.node}`.toLowerCase().includes(words));
    const list = el('ul', { id: 'commands', class: 'commands', 'aria-label': 'Commands' },
      shown.map((c) => el('li', {},
        el('button', { type: 'button', class: 'command', onclick: () => open(c), 'aria-describedby': undefined },
          el('span', { class: 'command-name', text: c.name || c.node }),
          el('span', { class: 'command-node', text: c.node })))));
    replace(listArea,
      el('p', { class: 'count', role: 'status', text: state.commands.length ? `${shown.length} of ${state.commands.length} commands` : state.jid ? `${state.jid} offers no commands to this account.` : '' }),
      shown.length ? list : null);
  };
  search.addEventListener('input', () => {
    state.filter = search.value;
    fill();
  });
  const form = el('form', { class: 'jid-form', novalidate: true, 'aria-label': 'Choose a JID' },
    el('div', { class: 'field' },
      el('label', { for: 'jid', text: 'JID' }), jid, choices,
      el('p', { class: 'desc', id: 'jid-desc', text: 'The server or service whose commands to list, e.g. sess-man@your.domain or your.domain.' })),
    el('div', { class: 'actions' }, el('button', { type: 'submit', class: 'primary', text: 'List commands' })));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const target = jid.value.trim();
    if (!target) {
      replace(status, message('Type a JID.'));
      jid.focus();
      return;
    }
    replace(status, message('Listing…', 'info'));
    const answer = await api.list(target);
    if (!answer.ok) {
      if (answer.status === 401) {
        signOut(explain(answer));
        return;
      }
      replace(status, message(explain(answer)));
      return;
    }
    state.jid = target;
    state.commands = answer.items;
    replace(status);
    fill();
    search.focus();
  });
  const node = el('input', { id: 'node', name: 'node', type: 'text', autocomplete: 'off', spellcheck: 'false', autocapitalize: 'none', 'aria-describedby': 'node-desc' });
  const byNode = el('form', { class: 'node-form', novalidate: true, 'aria-label': 'Open a command by its node' },
    el('div', { class: 'field' },
      el('label', { for: 'node', text: 'Command node' }), node,
      el('p', { class: 'desc', id: 'node-desc', text: 'A command the list does not show, by its node.' })),
    el('div', { class: 'actions' }, el('button', { type: 'submit', class: 'secondary', text: 'Open node' })));
  byNode.addEventListener('submit', (event) => {
    event.preventDefault();
    const target = jid.value.trim() || state.jid;
    if (!target || !node.value.trim()) {
      replace(status, message(target ? 'Type a command node.' : 'Type a JID.'));
      (target ? node : jid).focus();
      return;
    }
    state.jid = target;
    open({ node: node.value.trim() });
  });
  fill();
  show(el('h1', { text: 'Commands' }), form, status,
    el('div', { class: 'field search' }, el('label', { for: 'search', text: 'Search commands' }), search),
    listArea,
    el('details', { class: 'more' }, el('summary', { text: 'A command that is not listed' }), byNode));
  if (!state.jid) jid.focus();
}

// ---- one command ----

async function open(c) {
  leaveCommand();
  state.open = { node: c.node, name: c.name || c.node, sessionid: null };
  const area = el('div', { class: 'command-area' }, message('Opening…', 'info'));
  commandFrame(area);
  const answer = await api.start(state.jid, c.node);
  stage(area, answer);
}

function commandFrame(area) {
  header();
  const back = el('button', { type: 'button', class: 'secondary', text: 'Back to the commands', onclick: () => { leaveCommand(); commandsView(); } });
  show(el('nav', { class: 'crumbs', 'aria-label': 'Command' }, back),
    el('h1', { text: state.open.name }),
    el('p', { class: 'command-node', text: `${state.open.node} at ${state.jid}` }),
    area);
}

/** Shows what an answer holds: the next stage's form, a result, or the refusal. */
function stage(area, answer, form) {
  const open = state.open;
  if (!open) return;
  if (!answer.ok) {
    if (answer.status === 401) {
      signOut(explain(answer));
      return;
    }
    // A field the server or the gateway found wrong: the session stays open, the form too.
    if (form && answer.error && answer.error.field && form.complain(answer.error.field, answer.error.text || 'wrong value')) {
      return;
    }
    open.sessionid = null;
    const note = answer.status === 422 && answer.error ? renderNote({ type: 'error', value: answer.error.text }) : message(explain(answer));
    replace(area, note, again());
    return;
  }
  const command = answer.command;
  if (command.status === 'executing') {
    open.sessionid = command.sessionid || null;
    const rendered = renderForm(command, {
      actions: command.sessionid ? command.actions : ['execute'],
      cancellable: Boolean(command.sessionid),
      onAction: async (action, fields) => {
        setBusy(area, true);
        const next = open.sessionid
          ? await api.step(state.jid, open.sessionid, action, action === 'prev' ? undefined : fields)
          : await api.run(state.jid, open.node, fields);
        setBusy(area, false);
        if (state.open !== open) return;
        stage(area, next, rendered);
      },
      onCancel: async () => {
        const id = open.sessionid;
        open.sessionid = null;
        if (id) await api.cancel(state.jid, id);
        if (state.open !== open) return;
        replace(area, message('The command was canceled.', 'info'), again());
      },
    });
    replace(area, command.note ? renderNote(command.note) : null, rendered.node);
    rendered.focusFirst();
    return;
  }
  open.sessionid = null;
  replace(area, renderResult(command), again());
}

function again() {
  const c = state.open;
  return el('div', { class: 'actions' },
    el('button', { type: 'button', class: 'primary', text: 'Run again', onclick: () => open(c) }),
    el('button', { type: 'button', class: 'secondary', text: 'Back to the commands', onclick: () => { leaveCommand(); commandsView(); } }));
}

function setBusy(area, busy) {
  area.setAttribute('aria-busy', busy ? 'true' : 'false');
  for (const b of area.querySelectorAll('button')) b.disabled = busy;
}

// ---- start ----

api.onForget((why) => {
  if (why === 'idle') {
    leaveCommand();
    state.jid = '';
    state.commands = [];
    queueMicrotask(() => signInView('Signed out after 15 minutes without use: sign in again.'));
  }
});
for (const kind of ['keydown', 'pointerdown']) document.addEventListener(kind, () => api.touch(), { passive: true });
window.addEventListener('pagehide', () => leaveCommand());
signInView();
