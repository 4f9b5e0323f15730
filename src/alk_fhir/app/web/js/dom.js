// Building DOM nodes from data. Text always goes in as text (never innerHTML): resources come from
// the EHR and must not be able to inject markup into the app.

/** h("p", {class: "x", "aria-live": "polite"}, "text", childNode, [more]) */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") {
      el.addEventListener(key.slice(2).toLowerCase(), value);
    } else if (key === "dataset") {
      Object.assign(el.dataset, value);
    } else {
      el.setAttribute(key, value === true ? "" : String(value));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child === undefined || child === null || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** Replace the content of a container. */
export function show(container, ...children) {
  container.replaceChildren();
  append(container, children);
  return container;
}

export function $(selector, root = document) {
  return root.querySelector(selector);
}
