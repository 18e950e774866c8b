// Building the page: elements and text nodes only. Nothing here parses markup, so whatever
// the server or a user wrote is shown as text (and the CSP's Trusted Types make any slip
// elsewhere throw instead of rendering).

const PROPERTIES = new Set(['value', 'checked', 'selected', 'multiple', 'required', 'disabled', 'hidden', 'type']);

/** An element: `props` are attributes (`text` its text, `on…` listeners), then children. */
export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === 'text') node.textContent = String(value);
    else if (key === 'class') node.className = value;
    else if (key.startsWith('on')) node.addEventListener(key.slice(2), value);
    else if (PROPERTIES.has(key)) node[key] = value;
    else node.setAttribute(key, value === true ? '' : String(value));
  }
  append(node, children);
  return node;
}

/** Appends children: nodes as they are, strings as text. */
export function append(node, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    node.append(typeof child === 'string' ? document.createTextNode(child) : child);
  }
  return node;
}

/** Replaces a node's children. */
export function replace(node, ...children) {
  node.replaceChildren();
  return append(node, children);
}

let ids = 0;
/** A fresh id for `for`/`aria-describedby` pairs. */
export function uid(prefix) {
  ids += 1;
  return `${prefix}-${ids}`;
}

/** A field's values as a list, whatever the JSON carried (string, list or nothing). */
export function values(value) {
  if (value === undefined || value === null) return [];
  return Array.isArray(value) ? value.map(String) : [String(value)];
}
