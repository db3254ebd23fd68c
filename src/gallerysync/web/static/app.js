// The gallery's entry point: sign-in, hash routes (#/ gallery, #/sources, #/inspect), and the
// since-token handshake that ties the data to the change feed (docs/web.md).

import { ApiError, del, get, post, query, setUnauthorizedHandler } from "./api.js";
import { ChangeFeed } from "./feed.js";
import { DEFAULT_PAGE_SIZE, Gallery, MAX_PAGE_SIZE } from "./gallery.js";
import { InspectorPage } from "./inspect.js";
import { Lightbox } from "./lightbox.js";
import { SourcesPage } from "./sources.js";
import { backoff, debounce, delay } from "./util.js";

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const pageSize = Math.min(
  MAX_PAGE_SIZE,
  Math.max(1, Number.parseInt(params.get("limit") || "", 10) || DEFAULT_PAGE_SIZE),
);

let running = false; // signed in (or auth is off) and started
let session = null; // GET /api/me: {user, auth}
let syncGeneration = 0;
let galleryScroll = 0;
const sourceNames = new Map();

// --- the Live indicator -------------------------------------------------------------------

const live = $("live");
const LIVE_TITLES = {
  connecting: "connecting to the change feed",
  live: "live: changes appear as they happen",
  offline: "offline: reconnecting",
};

function setLive(state, detail = "") {
  if (live.dataset.state !== state) live.dataset.state = state;
  live.querySelector(".live-label").textContent = state;
  live.title = detail ? `${LIVE_TITLES[state]} (${detail})` : LIVE_TITLES[state];
}

// --- errors -------------------------------------------------------------------------------

const errorBanner = $("app-error");
let errorTimer = null;

function showError(err) {
  if (err instanceof ApiError && (err.status === 401 || err.status === 0)) return; // sign-in / Live
  if (err && err.name === "AbortError") return;
  errorBanner.textContent = err instanceof Error ? err.message : String(err);
  errorBanner.hidden = false;
  clearTimeout(errorTimer);
  errorTimer = setTimeout(() => {
    errorBanner.hidden = true;
  }, 8000);
}

// --- the pages ----------------------------------------------------------------------------

const gallery = new Gallery({
  grid: $("grid"),
  sentinel: $("sentinel"),
  statusLine: $("gallery-status"),
  pageSize,
  onOpen: (id) => lightbox.open(id),
  onError: showError,
});

const lightbox = new Lightbox($("lightbox"), gallery, {
  sourceName: (id) => sourceNames.get(id) || id,
  onError: showError,
});

const filters = $("filters");

function fillSourceFilter(list) {
  sourceNames.clear();
  for (const source of list) sourceNames.set(source.id, source.name);
  const select = filters.elements.source;
  const current = select.value;
  const options = [new Option("All sources", "")];
  for (const source of list) options.push(new Option(source.name, source.id));
  select.replaceChildren(...options);
  select.value = list.some((s) => s.id === current) ? current : "";
  if (current && select.value !== current) applyFilters(); // the chosen source is gone
}

const ENTITY_GROUPS = [
  ["collection", "Collections"],
  ["person", "People"],
  ["studio", "Studios"],
  ["tag", "Tags"],
  ["group", "Groups"],
];

/** The label filter: the caller's tags, people, studios, collections and groups, by kind. */
async function fillEntityFilter() {
  const select = filters.elements.entity;
  const listed = [];
  let after = null;
  do {
    const page = await get(`/api/entities${query({ limit: 5000, after })}`);
    listed.push(...page.entities);
    after = page.next;
  } while (after);
  const current = select.value;
  const options = [new Option("Any tag, person, studio, collection", "")];
  for (const [kind, title] of ENTITY_GROUPS) {
    const mine = listed.filter((e) => e.kind === kind);
    if (!mine.length) continue;
    const group = document.createElement("optgroup");
    group.label = title;
    for (const e of mine) {
      group.append(new Option(`${e.name} (${e.asset_count})`, `${kind}:${e.id}`));
    }
    options.push(group);
  }
  select.replaceChildren(...options);
  const still = listed.some((e) => `${e.kind}:${e.id}` === current);
  select.value = still ? current : "";
  if (current && !still) applyFilters(); // the chosen label is gone
}
const refreshEntities = debounce(() => fillEntityFilter().catch(showError), 500);

const sources = new SourcesPage($("view-sources"), {
  onChanged: fillSourceFilter,
  onError: showError,
});
const inspector = new InspectorPage($("view-inspect"), { onError: showError });

function applyFilters() {
  if (!running) return;
  lightbox.close();
  gallery
    .setFilter({
      source: filters.elements.source.value,
      status: filters.elements.status.value,
      q: filters.elements.q.value.trim(),
      entity: filters.elements.entity.value,
    })
    .catch(showError);
}

filters.addEventListener("change", (event) => {
  if (event.target.name !== "q") applyFilters();
});
filters.elements.q.addEventListener("input", debounce(applyFilters, 250));
filters.addEventListener("submit", (event) => {
  event.preventDefault();
  applyFilters();
});

// --- the change feed ----------------------------------------------------------------------

const feed = new ChangeFeed({
  onEntry(entry) {
    if (entry.type === "asset") gallery.applyEntry(entry);
    else if (entry.type === "source") sources.applySource(entry);
    else if (entry.type === "sync_run") sources.applyRun(entry);
    else if (entry.type === "entity") refreshEntities();
    else if (entry.type === "user" && entry.data && session?.user?.id === entry.id) {
      $("user").querySelector(".user-name").textContent = entry.data.name;
    }
  },
  onReset: () => resync(),
  onState(state, detail) {
    const was = live.dataset.state;
    setLive(state, detail);
    if (state === "live") gallery.continueIfNeeded(); // a page that failed while offline
    if (state === "live" && was !== "live") gallery.retryBrokenImages();
  },
});

const askHead = () => get("/api/changes?since=now&limit=1");

/**
 * (Re)load the data and subscribe: first a token for "now", then the first page, then the
 * stream from that token. Whatever commits between the token and the page arrives again on
 * the stream and is applied harmlessly (entries carry state; versions decide). Used at start,
 * after sign-in and after `event: reset`. `early`: the token's request, already sent (boot).
 */
async function resync(early = null) {
  const generation = ++syncGeneration;
  feed.close();
  setLive("connecting", "loading");
  for (let attempt = 0; running && generation === syncGeneration; attempt += 1) {
    try {
      const asked = early || askHead();
      early = null; // a retry asks again
      const head = await asked;
      if (generation !== syncGeneration) return;
      await Promise.all([gallery.reload({ keep: true }), sources.refresh(), fillEntityFilter()]);
      if (generation !== syncGeneration || !running) return;
      feed.open(head.next);
      return;
    } catch (err) {
      if ((err instanceof ApiError && err.status === 401) || generation !== syncGeneration) return;
      setLive("offline", err.message);
      if (!(err instanceof ApiError && err.status === 0)) showError(err);
      await delay(backoff(attempt));
    }
  }
}

// --- routes -------------------------------------------------------------------------------

const VIEWS = { gallery: $("view-gallery"), sources: $("view-sources"), inspect: $("view-inspect") };

function currentView() {
  const path = location.hash.replace(/^#/, "");
  if (path.startsWith("/sources")) return "sources";
  if (path.startsWith("/inspect")) return "inspect";
  return "gallery";
}

function route() {
  if (!running) return;
  const view = currentView();
  const was = document.body.dataset.view;
  if (was === "gallery" && view !== "gallery") galleryScroll = window.scrollY;
  for (const [name, el] of Object.entries(VIEWS)) el.hidden = name !== view;
  for (const link of document.querySelectorAll(".nav a")) {
    if (link.dataset.view === view) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  document.body.dataset.view = view;
  if (view === "sources") sources.show();
  else sources.hide();
  if (view === "inspect") inspector.load();
  if (view !== "gallery") lightbox.close();
  else if (was && was !== "gallery") {
    window.scrollTo(0, galleryScroll);
    gallery.continueIfNeeded();
  }
}

window.addEventListener("hashchange", route);

// --- signing in ---------------------------------------------------------------------------

/** GET /api/me → {user, auth}; null when a sign-in is needed. A 404 (no auth on this server
 *  yet) means the local owner. */
async function whoAmI() {
  try {
    return await get("/api/me", { authRedirect: false });
  } catch (err) {
    if (err instanceof ApiError && err.status === 404) return { user: null, auth: "off" };
    if (err instanceof ApiError && err.status === 401) return null;
    throw err;
  }
}

function start(me, head = null) {
  session = me;
  running = true;
  document.body.classList.remove("booting");
  $("signin").hidden = true;
  const user = $("user");
  user.hidden = me.auth !== "on";
  user.querySelector(".user-name").textContent = me.user?.name || "";
  route();
  resync(head);
}

function stop() {
  running = false;
  syncGeneration += 1;
  feed.close();
  lightbox.close();
  gallery.clear();
  sources.hide();
  sources.clear();
  inspector.clear();
  filters.reset();
  fillSourceFilter([]);
  filters.elements.entity.replaceChildren(new Option("Any tag, person, studio, collection", ""));
  for (const el of Object.values(VIEWS)) el.hidden = true;
  delete document.body.dataset.view;
  $("user").hidden = true;
  session = null;
}

function showSignIn(notice = "") {
  if (running) stop();
  document.body.classList.remove("booting");
  setLive("offline", "signed out");
  const form = $("signin-form");
  const noticeEl = form.querySelector(".signin-notice");
  noticeEl.textContent = notice;
  noticeEl.hidden = !notice;
  $("signin").hidden = false;
  form.elements.token.focus();
}

setUnauthorizedHandler(() => {
  if (running) showSignIn("Your session has ended: sign in again.");
});

$("signin-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = event.currentTarget;
  const error = $("signin-error");
  const button = form.querySelector("button[type=submit]");
  error.hidden = true;
  button.disabled = true;
  try {
    await post("/api/session", { token: form.elements.token.value.trim() }, { authRedirect: false });
    const me = await whoAmI();
    if (!me) throw new ApiError(401, "unauthorized", "Signed in, but the session was not kept (are cookies blocked?)");
    form.elements.token.value = "";
    start(me);
  } catch (err) {
    error.textContent =
      err instanceof ApiError && err.status === 401
        ? `That token was not accepted: ${err.message}`
        : `Could not sign in: ${err.message}`;
    error.hidden = false;
  } finally {
    button.disabled = false;
  }
});

$("sign-out").addEventListener("click", async () => {
  try {
    await del("/api/session", { authRedirect: false });
  } catch (err) {
    if (!(err instanceof ApiError && err.status === 401)) {
      showError(err);
      return;
    }
  }
  showSignIn("Signed out.");
});

async function boot() {
  for (let attempt = 0; ; attempt += 1) {
    // The token does not depend on who signs in: ask for it alongside /api/me, not after it.
    const head = askHead();
    head.catch(() => {}); // awaited by resync, or dropped (sign-in form, retry)
    try {
      const me = await whoAmI();
      if (me) start(me, head);
      else showSignIn();
      return;
    } catch (err) {
      setLive("offline", err.message);
      await delay(backoff(attempt));
    }
  }
}

boot();
