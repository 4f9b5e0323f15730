// Accessibility repairs to what the form renderer writes, without changing its code (axe-core finds
// these in LHC-Forms 40.1.3; the browser test runs axe on every view):
// - the "+ add" buttons of repeating items name a missing element in aria-controls
//   ("add-button-<id>"; aria-valid-attr-value, critical): the reference is removed;
// - the same buttons (and some inputs) name missing elements in aria-describedby: those ids are
//   removed (the ones that exist stay);
// - the answer-list inputs are ARIA 1.2 comboboxes without aria-controls (aria-required-attr,
//   critical when the list is open): they get the id of the list the autocompleter shows;
// - the date picker's day cells carry aria-selected on a plain <div> (aria-allowed-attr, critical):
//   the attribute is removed there (the selected day is also marked visually and in the input);
// - the answer list and the date picker's overlay are appended to <body>, outside every landmark:
//   they are moved into <main> (their positioning does not depend on their parent), and so is the
//   answer list's own screen-reader log ("reader_log2", …).
const LIST_ID = "lhc-tools-searchResults";

function repair(root) {
  const scope = root.nodeType === Node.ELEMENT_NODE ? root : document.body;
  for (const el of [scope, ...scope.querySelectorAll("[aria-controls]")]) {
    if (!el.getAttribute?.("aria-controls") || el.getAttribute("role") === "tab") continue;
    const ids = el.getAttribute("aria-controls").split(/\s+/).filter(Boolean);
    const present = ids.filter((id) => document.getElementById(id));
    if (present.length === ids.length) continue;
    if (el.getAttribute("role") === "combobox" && document.getElementById(LIST_ID)) continue;
    if (present.length) el.setAttribute("aria-controls", present.join(" "));
    else el.removeAttribute("aria-controls");
  }
  for (const el of [scope, ...scope.querySelectorAll("[aria-describedby]")]) {
    const value = el.getAttribute?.("aria-describedby");
    if (!value) continue;
    const ids = value.split(/\s+/).filter(Boolean);
    const present = ids.filter((id) => document.getElementById(id));
    if (present.length === ids.length) continue;
    if (present.length) el.setAttribute("aria-describedby", present.join(" "));
    else el.removeAttribute("aria-describedby");
  }
  for (const el of scope.querySelectorAll(".ant-picker-cell-inner[aria-selected]")) el.removeAttribute("aria-selected");
  const list = document.getElementById(LIST_ID);
  if (list) {
    for (const input of [scope, ...scope.querySelectorAll("input[role=combobox]")]) {
      if (input.matches?.("input[role=combobox]") && input.getAttribute("aria-controls") !== LIST_ID) {
        input.setAttribute("aria-controls", LIST_ID);
      }
    }
  }
  const main = document.getElementById("main");
  if (main) {
    const strays = [list, ...document.querySelectorAll("body > .cdk-overlay-container, body > [id^='reader_log']")];
    for (const el of strays) {
      if (el && el.parentElement === document.body) main.append(el);
    }
  }
}

let observer = null;

/** Start repairing (once); the first pass covers what is already on the page. */
export function startRendererRepairs() {
  if (observer) return;
  let queued = false;
  observer = new MutationObserver((records) => {
    if (queued) return;
    if (!records.some((r) => r.addedNodes.length || r.type === "attributes")) return;
    queued = true;
    queueMicrotask(() => {
      queued = false;
      repair(document.body);
    });
  });
  observer.observe(document.body, { subtree: true, childList: true, attributes: true,
    attributeFilter: ["aria-controls", "aria-describedby", "role", "aria-selected"] });
  repair(document.body);
}
