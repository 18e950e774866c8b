// A command's result: its notes (info, warn and error styled apart), its result form (one
// entry per field, several values as a list), its <reported> table, or, when there is
// nothing, a sentence that says so.

import { el, values } from './dom.js';

const NOTE_NAMES = { info: 'Note', warn: 'Warning', error: 'Error' };

/** A note block: {type, value}. Errors are announced at once; others politely. */
export function renderNote(note) {
  const type = ['info', 'warn', 'error'].includes(note.type) ? note.type : 'info';
  return el('div', { class: `note note-${type}`, role: type === 'error' ? 'alert' : 'status' },
    el('strong', { text: `${NOTE_NAMES[type]}: ` }),
    el('span', { class: 'note-text', text: note.value || '' }));
}

function valueNode(vals) {
  if (vals.length === 0) return el('span', { class: 'empty', text: '(none)' });
  if (vals.length === 1) return el('span', { class: 'value', text: vals[0] });
  return el('ul', { class: 'values' }, vals.map((v) => el('li', { text: v })));
}

function renderTable(reported) {
  const columns = reported.columns || [];
  const table = el('table', { class: 'reported' });
  table.append(el('caption', { text: `${(reported.items || []).length} items` }));
  table.append(el('thead', {}, el('tr', {}, columns.map((c) => el('th', { scope: 'col', text: c.label || c.var })))));
  const body = el('tbody');
  for (const row of reported.items || []) {
    const cells = new Map(row.map((cell) => [cell.var, values(cell.value)]));
    body.append(el('tr', {}, columns.map((c) => el('td', {}, valueNode(cells.get(c.var) || [])))));
  }
  table.append(body);
  return el('div', { class: 'table-scroll', tabindex: '0', role: 'region', 'aria-label': 'Results table' }, table);
}

/** Whether a result has anything to show besides hidden fields. */
function shown(command) {
  return (command.fields || []).filter((f) => f.type !== 'hidden');
}

/** The result of a completed (or canceled) command. */
export function renderResult(command) {
  const out = el('section', { class: 'result', 'aria-label': 'Result' });
  if (command.title) out.append(el('h3', { text: command.title }));
  if (command.instructions) out.append(el('p', { class: 'instructions', text: command.instructions }));
  if (command.note) out.append(renderNote(command.note));
  const fields = shown(command);
  if (fields.length) {
    const list = el('dl', { class: 'result-fields' });
    for (const f of fields) {
      if (f.type === 'fixed') {
        list.append(el('dt', { class: 'fixed', text: values(f.value).join('\n') }), el('dd'));
        continue;
      }
      list.append(el('dt', { text: f.label || f.var }), el('dd', {}, valueNode(values(f.value))));
    }
    out.append(list);
  }
  const reported = command.reported;
  if (reported && ((reported.columns || []).length || (reported.items || []).length)) out.append(renderTable(reported));
  if (!command.note && !fields.length && !(reported && (reported.items || []).length)) {
    out.append(el('p', { class: 'empty-result', text: command.status === 'canceled' ? 'The command was canceled.' : 'The command completed with nothing to show.' }));
  }
  return out;
}
