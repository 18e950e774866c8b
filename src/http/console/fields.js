// XEP-0004 forms: one renderer per field type, each returning the field's block and a
// function that reads its value back. Labels, descriptions, required marks and the server's
// complaint about a field are tied to the control for screen readers.

import { el, uid, values } from './dom.js';

function control(field, id, describedBy) {
  const vals = values(field.value);
  const common = { id, name: field.var, 'aria-describedby': describedBy || undefined };
  if (field.required) common['aria-required'] = 'true';
  switch (field.type) {
    case 'boolean': {
      const input = el('input', { ...common, type: 'checkbox', checked: ['1', 'true'].includes(vals[0]) });
      return [input, () => (input.checked ? 'true' : 'false')];
    }
    case 'list-single': {
      const select = el('select', common);
      if (!field.required || vals.length === 0) select.append(el('option', { value: '', text: '(none)' }));
      for (const o of field.options || []) {
        select.append(el('option', { value: o.value, text: o.label || o.value, selected: vals.includes(o.value) }));
      }
      return [select, () => select.value];
    }
    case 'list-multi': {
      const select = el('select', { ...common, multiple: true, size: Math.min(8, Math.max(3, (field.options || []).length)) });
      for (const o of field.options || []) {
        select.append(el('option', { value: o.value, text: o.label || o.value, selected: vals.includes(o.value) }));
      }
      return [select, () => Array.from(select.selectedOptions, (o) => o.value)];
    }
    case 'text-multi':
    case 'jid-multi': {
      const area = el('textarea', { ...common, rows: Math.max(3, vals.length + 1), spellcheck: field.type === 'jid-multi' ? 'false' : undefined });
      area.value = vals.join('\n');
      const lines = () => area.value.split('\n').map((l) => l.replace(/\r$/, ''));
      return [area, () => (field.type === 'jid-multi' ? lines().map((l) => l.trim()).filter((l) => l) : lines().filter((l, i, all) => l || i < all.length - 1))];
    }
    case 'text-private': {
      const input = el('input', { ...common, type: 'password', autocomplete: 'new-password', value: vals[0] || '' });
      return [input, () => input.value];
    }
    case 'jid-single': {
      const input = el('input', { ...common, type: 'text', autocomplete: 'off', spellcheck: 'false', autocapitalize: 'none', value: vals[0] || '' });
      return [input, () => input.value.trim()];
    }
    default: {
      const input = el('input', { ...common, type: 'text', value: vals[0] || '' });
      return [input, () => input.value];
    }
  }
}

/** A field's block: {node, read, complain, focus}. `fixed` and `hidden` fields read as null. */
function renderField(field) {
  if (field.type === 'hidden') {
    return { node: null, read: () => field.value, complain: () => {}, focus: () => {} };
  }
  if (field.type === 'fixed') {
    return { node: el('p', { class: 'fixed', text: values(field.value).join('\n') }), read: () => null, complain: () => {}, focus: () => {} };
  }
  const id = uid('f');
  const hint = { 'text-multi': 'One value per line.', 'jid-multi': 'One JID per line.', 'list-multi': 'Choose one or more.' }[field.type];
  const descText = [field.desc, hint].filter(Boolean).join(' ');
  const descId = `${id}-desc`;
  const errId = `${id}-err`;
  const [input, read] = control(field, id, descText ? `${descId} ${errId}` : errId);
  const label = el('label', { for: id },
    field.label || field.var,
    field.required ? el('span', { class: 'required', 'aria-hidden': 'true', text: ' *' }) : null,
    field.required ? el('span', { class: 'visually-hidden', text: ' (required)' }) : null);
  const desc = descText ? el('p', { class: 'desc', id: descId, text: descText }) : null;
  const error = el('p', { class: 'field-error', id: errId, hidden: true });
  const node = el('div', { class: `field field-${field.type || 'text-single'}` });
  if (field.type === 'boolean') node.append(input, label, desc || '', error);
  else node.append(label, desc || '', input, error);
  return {
    node,
    read,
    complain(text) {
      error.textContent = text;
      error.hidden = false;
      input.setAttribute('aria-invalid', 'true');
    },
    focus: () => input.focus(),
  };
}

const ACTION_LABELS = { prev: 'Back', next: 'Next', complete: 'Complete', execute: 'Run' };
const ACTION_ORDER = ['next', 'complete', 'execute', 'prev'];

/**
 * A command's form: title, instructions, fields, and a button per action the stage allows
 * (`actions`; none given: Run), plus Cancel when `cancellable`. `onAction(action, fields)` is
 * called with the action (undefined for the stage's default, as Enter gives) and the values.
 */
export function renderForm(command, { actions, cancellable, onAction, onCancel }) {
  const blocks = (command.fields || []).map((f) => [f, renderField(f)]);
  const form = el('form', { class: 'command-form', novalidate: true, 'aria-label': command.title || 'Command form' });
  if (command.title) form.append(el('h3', { text: command.title }));
  if (command.instructions) form.append(el('p', { class: 'instructions', text: command.instructions }));
  for (const [, block] of blocks) if (block.node) form.append(block.node);
  const offered = ACTION_ORDER.filter((a) => (actions && actions.length ? actions : ['execute']).includes(a));
  const buttons = el('div', { class: 'actions' });
  for (const a of offered) {
    // Enter submits with the first submit button: the stage's forward action, never Back.
    if (a === 'prev') {
      buttons.append(el('button', { type: 'button', class: 'secondary', text: ACTION_LABELS[a], onclick: () => onAction('prev', undefined) }));
    } else {
      buttons.append(el('button', { type: 'submit', 'data-action': a, class: 'primary', text: ACTION_LABELS[a] }));
    }
  }
  if (cancellable) buttons.append(el('button', { type: 'button', class: 'secondary', text: 'Cancel', onclick: onCancel }));
  form.append(buttons);
  const collect = () => {
    const out = [];
    for (const [f, block] of blocks) {
      if (!f.var || f.type === 'fixed') continue;
      const v = block.read();
      if (v === null || v === undefined) continue;
      if (v === '' && f.type !== 'hidden') continue;
      out.push({ var: f.var, value: v });
    }
    return out;
  };
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const submitter = event.submitter;
    const action = submitter && submitter.dataset ? submitter.dataset.action : undefined;
    // `execute` is the stage's default: sent as no action at all.
    const chosen = action === 'execute' || !action ? undefined : action;
    onAction(chosen, collect());
  });
  return {
    node: form,
    complain(fieldVar, text) {
      const found = blocks.find(([f]) => f.var === fieldVar);
      if (!found || !found[1].node) return false;
      found[1].complain(text);
      found[1].focus();
      return true;
    },
    focusFirst() {
      const first = form.querySelector('input, select, textarea, button');
      if (first) first.focus();
    },
  };
}
