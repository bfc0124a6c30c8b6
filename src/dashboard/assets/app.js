// Entry point: hash router, the token prompt and the live stream shared by the pages.
// Routes: #/ fleet overview, #/cp/{id} charge point detail, #/fleet[/{group}] fleet energy,
// #/alerts, #/thresholds[/{id}].
// A page module exports mount(view, ctx) -> {ready, unmount, onEvent, resync, filter}.

import { onUnauthorized, setToken, token } from "./api.js";
import { h, replace } from "./dom.js";
import { LiveStream } from "./live.js";
import * as overview from "./pages/overview.js";
import * as detail from "./pages/detail.js";
import * as fleet from "./pages/fleet.js";
import * as alerts from "./pages/alerts.js";
import * as thresholds from "./pages/thresholds.js";

const view = document.getElementById("view");
const auth = document.getElementById("auth");
const liveBadge = document.querySelector("[data-live-state]");

const routes = [
  { pattern: /^#?\/?$/, page: overview, nav: "overview" },
  { pattern: /^#\/cp\/([^/]+)\/?$/, page: detail, nav: "overview" },
  { pattern: /^#\/fleet(?:\/([^/]+))?\/?$/, page: fleet, nav: "fleet" },
  { pattern: /^#\/alerts\/?$/, page: alerts, nav: "alerts" },
  { pattern: /^#\/thresholds(?:\/([^/]+))?\/?$/, page: thresholds, nav: "thresholds" },
];

let current = null;
let renders = 0;

function decode(segment) {
  try {
    return segment === undefined ? undefined : decodeURIComponent(segment);
  } catch (_) {
    return segment;
  }
}

const live = new LiveStream({
  onEvent: (name, data) => {
    if (current && current.onEvent) current.onEvent(name, data);
  },
  onState: (state) => {
    liveBadge.dataset.liveState = state;
    liveBadge.textContent = state;
  },
  // Events may have been missed while the stream was down (or before it first opened):
  // the page re-reads its state from the API.
  onOpen: () => {
    if (current && current.resync) current.resync();
  },
  onUnauthorized: () => showTokenForm(),
});

/** Shows the token prompt (once); a token that was refused is reported as such. */
function showTokenForm() {
  if (document.getElementById("token-form")) return;
  const refused = token() !== null;
  const input = h("input", {
    name: "token",
    type: "password",
    autocomplete: "off",
    required: true,
    minlength: 1,
    "aria-label": "Admin token",
  });
  const form = h(
    "form",
    { id: "token-form", class: "card" },
    h("h2", {}, "Admin token"),
    h(
      "p",
      { class: refused ? "error" : "muted" },
      refused
        ? "The token was refused. Enter a valid admin token."
        : "This server needs an admin token (a value of [admin] tokens in config.toml, or the one it logged at start).",
    ),
    h("label", {}, input),
    h("button", { type: "submit", class: "primary" }, "Use token"),
    h("p", { class: "muted" }, "It is kept in this tab's session storage and sent as an Authorization header only."),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const value = input.value.trim();
    if (!value) return;
    setToken(value);
    auth.replaceChildren();
    render();
    live.restart();
  });
  auth.replaceChildren(form);
  input.focus();
}

onUnauthorized(showTokenForm);

function notFound() {
  const el = h(
    "section",
    {},
    h("h1", {}, "Page not found"),
    h("p", {}, h("a", { href: "#/" }, "Back to the fleet")),
  );
  replace(view, el);
  return { ready: Promise.resolve(), filter: null };
}

/** Mounts the page of the current hash. */
async function render() {
  const number = ++renders;
  if (current && current.unmount) current.unmount();
  current = null;
  view.replaceChildren();
  const hash = location.hash || "#/";
  const route = routes.find((r) => r.pattern.test(hash));
  for (const link of document.querySelectorAll("[data-nav]")) {
    if (route && link.dataset.nav === route.nav) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  let page;
  if (route) {
    const match = hash.match(route.pattern);
    page = route.page.mount(view, { params: match.slice(1).map(decode) });
  } else {
    page = notFound();
  }
  current = page;
  live.setFilter(page.filter || null);
  try {
    await page.ready;
  } catch (_) {
    // The page shows its own error; data-ready only says the route was rendered.
  }
  if (number === renders) document.body.dataset.ready = "1";
}

window.addEventListener("hashchange", () => {
  render();
});
render();
