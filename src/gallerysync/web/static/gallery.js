// The grid: keyset pages from GET /api/assets (newest first: created_at desc, id desc) and
// in-place updates from the change feed.
//
// Rules that keep it honest (docs/web.md explains them):
// - `known` holds the freshest state seen per asset id, from pages and from the feed; a state
//   with a lower `version` never replaces a higher one, so applying an entry twice, or a page
//   read before a change that the feed already delivered, is harmless. A delete is version ∞.
// - `tiles` maps id → the tile shown; `order` holds the shown tiles' sort keys. A change
//   inserts one node with insertBefore at its sort position, updates one node, or removes one
//   node. The grid is never rebuilt because of a change.
// - `boundary` is the key of the last asset of the last page loaded. While more pages remain,
//   an asset that sorts after it is not inserted: it arrives with the next page (the cursor is
//   that same key), so no tile is ever shown twice.
// - While a page request is in flight, feed entries update `known` at once but their
//   placement waits until the page is merged (the page may have been read before them).

import { get, query } from "./api.js";
import { basename, h } from "./util.js";

export const DEFAULT_PAGE_SIZE = 120;
export const MAX_PAGE_SIZE = 500;
const LOAD_AHEAD_PX = 800;
const RETRY_MS = 5000;

export function keyOf(asset) {
  return { created_at: asset.created_at, id: asset.id };
}

/** < 0 when `a` comes before `b` in the grid (newer). */
export function compareKeys(a, b) {
  if (a.created_at !== b.created_at) return b.created_at - a.created_at;
  if (a.id === b.id) return 0;
  return a.id < b.id ? 1 : -1;
}

export function effectiveStatus(asset) {
  return asset.trashed ? "trashed" : asset.status;
}

/** The server's filter (GET /api/assets) as a predicate, for entries from the feed. */
export function matchesFilter(asset, filter) {
  if (!asset) return false;
  const status = effectiveStatus(asset);
  if (filter.status === "trashed") {
    if (status !== "trashed") return false;
  } else {
    if (status === "trashed") return false;
    if (filter.status && status !== filter.status) return false;
  }
  const origins = asset.origins || [];
  if (filter.source && !origins.some((o) => o.source_id === filter.source)) return false;
  if (filter.entity) {
    // "kind:id"; own and inherited links both count, as on the server
    const id = filter.entity.slice(filter.entity.indexOf(":") + 1);
    if (!(asset.labels || []).some((label) => label.id === id)) return false;
  }
  if (filter.q) {
    const q = filter.q.toLowerCase();
    const inFormat = (asset.format || "").toLowerCase().includes(q);
    if (!inFormat && !origins.some((o) => o.path.toLowerCase().includes(q))) return false;
  }
  return true;
}

/**
 * The summary's thumbnail URL; while the job has not made it yet, the same URL (the server
 * makes it on the first request). Null for a missing asset that never had one: its bytes are
 * not here to make one from, and asking would only send the server looking for them.
 */
export function thumbnailUrl(asset) {
  if (asset.thumbnail) return asset.thumbnail;
  if (asset.status === "missing") return null;
  return `/api/assets/${encodeURIComponent(asset.id)}/thumbnail`;
}

export function displayName(asset) {
  const origin = (asset.origins || []).find((o) => o.status === "present") || asset.origins?.[0];
  return origin ? basename(origin.path) : asset.id;
}

/** setAttribute, skipped when the value is already there (a write wakes observers anyway). */
function setIfChanged(el, name, value) {
  if (el.getAttribute(name) !== value) el.setAttribute(name, value);
}

export class Gallery {
  constructor({ grid, sentinel, statusLine, pageSize, onOpen, onError }) {
    this.grid = grid;
    this.sentinel = sentinel;
    this.statusLine = statusLine;
    this.pageSize = pageSize;
    this.onError = onError;
    this.filter = { source: "", status: "", q: "", entity: "" };
    this.listeners = new Set();
    this.reset();

    this.observer = new IntersectionObserver(
      (entries) => {
        if (entries.some((e) => e.isIntersecting)) this.loadMore();
      },
      { rootMargin: `0px 0px ${LOAD_AHEAD_PX}px 0px` },
    );
    this.observer.observe(sentinel);

    const openFrom = (event) => {
      const tile = event.target.closest("[data-asset-id]");
      if (tile && this.grid.contains(tile)) onOpen(tile.dataset.assetId);
    };
    grid.addEventListener("click", openFrom);
    grid.addEventListener("keydown", (event) => {
      if (event.key === "Enter" || event.key === " ") {
        event.preventDefault();
        openFrom(event);
      }
    });
  }

  reset() {
    this.known = new Map(); // id → {version, data | null}
    this.tiles = new Map(); // id → {node, img, key, data}
    this.order = []; // keys of the shown tiles, in grid order
    this.cursor = null;
    this.boundary = null;
    this.exhausted = false;
    this.loading = null; // the page request in flight
    this.pending = new Set(); // ids whose placement waits for that request
    this.generation = (this.generation || 0) + 1;
    this.started = false;
    clearTimeout(this.retryTimer);
  }

  /** Forget everything (sign-out: the next user must not see these tiles, nor their filter). */
  clear() {
    this.reset();
    this.filter = { source: "", status: "", q: "", entity: "" };
    this.grid.replaceChildren();
    this.updateStatus();
  }

  /** Called with an asset id whenever its tile or its known state changes. */
  subscribe(listener) {
    this.listeners.add(listener);
  }

  notify(id) {
    for (const listener of this.listeners) listener(id);
  }

  dataOf(id) {
    const known = this.known.get(id);
    return known ? known.data : undefined;
  }

  matches(asset) {
    return matchesFilter(asset, this.filter);
  }

  setFilter(filter) {
    this.filter = { ...this.filter, ...filter };
    return this.reload();
  }

  pageQuery(limit, cursor) {
    const { source, status, q, entity } = this.filter;
    const byEntity = {};
    if (entity) {
      const split = entity.indexOf(":"); // "person:<id>" → ?person=<id>
      byEntity[entity.slice(0, split)] = entity.slice(split + 1);
    }
    return `/api/assets${query({ limit, cursor, source, status, q, ...byEntity })}`;
  }

  /**
   * Load the first page(s) again. With `keep`, as many as are shown now (after a reset of the
   * feed: the user keeps their place); nodes of assets still shown are reused, not rebuilt.
   */
  async reload({ keep = false } = {}) {
    const generation = ++this.generation;
    this.started = true;
    const want = keep ? Math.max(this.tiles.size, this.pageSize) : this.pageSize;
    const run = (async () => {
      const items = [];
      let cursor = null;
      do {
        const limit = Math.min(MAX_PAGE_SIZE, Math.max(this.pageSize, want - items.length));
        const page = await get(this.pageQuery(limit, cursor));
        if (generation !== this.generation) return false;
        items.push(...page.assets);
        cursor = page.next;
      } while (cursor && items.length < want);
      this.reconcile(items, cursor);
      return true;
    })();
    this.loading = run;
    let failed = true;
    try {
      const done = await run;
      failed = false;
      return done;
    } finally {
      this.settle(run, failed);
    }
  }

  /** The next page, when the sentinel comes near the viewport (or the lightbox asks). */
  loadMore() {
    if (!this.started || this.exhausted || !this.cursor) return Promise.resolve(false);
    if (this.loading) return this.loading;
    const generation = this.generation;
    const run = (async () => {
      const page = await get(this.pageQuery(this.pageSize, this.cursor));
      if (generation !== this.generation) return false;
      this.appendPage(page);
      return true;
    })();
    this.loading = run;
    run.then(
      () => this.settle(run, false),
      (err) => {
        this.onError(err);
        this.settle(run, true);
      },
    );
    return run;
  }

  settle(run, failed) {
    if (this.loading !== run) return;
    this.loading = null;
    for (const id of this.pending) this.place(id);
    this.pending.clear();
    this.updateStatus();
    clearTimeout(this.retryTimer);
    // After a failure (offline) try again later, not in a tight loop; the feed's return to
    // `live` also calls continueIfNeeded.
    if (failed) this.retryTimer = setTimeout(() => this.continueIfNeeded(), RETRY_MS);
    else this.continueIfNeeded();
  }

  /** Load on while the sentinel is still within reach (a tall window, a short page). */
  continueIfNeeded() {
    if (!this.started || this.loading || this.exhausted || !this.cursor) return;
    if (this.grid.offsetParent === null) return; // the gallery is not on screen
    const top = this.sentinel.getBoundingClientRect().top;
    if (top < window.innerHeight + LOAD_AHEAD_PX) this.loadMore();
  }

  /** Load again the thumbnails that failed (after the connection comes back). */
  retryBrokenImages() {
    for (const img of this.grid.querySelectorAll(".tile.broken img[src]")) {
      img.src = img.getAttribute("src");
    }
  }

  /** The freshest state for this page item (a newer one from the feed wins). */
  remember(item) {
    const known = this.known.get(item.id);
    if (known && known.version > item.version) return known.data;
    this.known.set(item.id, { version: item.version, data: item });
    return item;
  }

  /** Show exactly `items` (server order), reusing the nodes of tiles already shown. */
  reconcile(items, cursor) {
    const wanted = [];
    const seen = new Set();
    for (const item of items) {
      if (seen.has(item.id)) continue;
      seen.add(item.id);
      const data = this.remember(item);
      if (data && (data === item || this.matches(data))) wanted.push(data);
    }
    this.cursor = cursor;
    this.exhausted = !cursor;
    this.boundary = items.length ? keyOf(items[items.length - 1]) : null;
    const keepIds = new Set(wanted.map((d) => d.id));
    for (const [id, tile] of this.tiles) {
      if (!keepIds.has(id)) {
        tile.node.remove();
        this.tiles.delete(id);
        this.notify(id);
      }
    }
    const order = [];
    let ref = this.grid.firstElementChild;
    for (const data of wanted) {
      let tile = this.tiles.get(data.id);
      if (tile) this.updateAndNotify(tile, data);
      else {
        tile = this.createTile(data);
        this.tiles.set(data.id, tile);
      }
      if (tile.node === ref) ref = ref.nextElementSibling;
      else this.grid.insertBefore(tile.node, ref);
      order.push(tile.key);
    }
    this.order = order;
  }

  appendPage(page) {
    for (const item of page.assets) {
      const data = this.remember(item);
      if (!data) continue;
      const tile = this.tiles.get(data.id);
      if (tile) this.updateAndNotify(tile, data);
      else if (data === item || this.matches(data)) this.insertTile(data);
    }
    this.cursor = page.next;
    this.exhausted = !page.next;
    if (page.assets.length) this.boundary = keyOf(page.assets[page.assets.length - 1]);
  }

  /** A change-feed entry of type "asset". */
  applyEntry(entry) {
    const data = entry.op === "delete" ? null : entry.data;
    const version = data ? data.version : Infinity;
    const known = this.known.get(entry.id);
    if (known && known.version > version) return; // older than what we show
    this.known.set(entry.id, { version, data });
    if (!this.started || this.loading) {
      this.pending.add(entry.id);
      this.notify(entry.id);
      return;
    }
    this.place(entry.id);
    this.updateStatus();
  }

  inRange(key) {
    if (this.exhausted) return true;
    return this.boundary !== null && compareKeys(key, this.boundary) <= 0;
  }

  /** Show, update or remove one tile so that it agrees with `known`. */
  place(id) {
    const data = this.dataOf(id) || null;
    const tile = this.tiles.get(id);
    const show = data !== null && this.matches(data) && (tile || this.inRange(keyOf(data)));
    if (show && tile) this.updateTile(tile, data);
    else if (show) this.insertTile(data);
    else if (tile) this.removeTile(id);
    this.notify(id);
  }

  indexOfKey(key) {
    let lo = 0;
    let hi = this.order.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (compareKeys(this.order[mid], key) < 0) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** Position of a shown asset in the grid, or -1. */
  indexOf(id) {
    const tile = this.tiles.get(id);
    if (!tile) return -1;
    const i = this.indexOfKey(tile.key);
    return this.order[i] && this.order[i].id === id ? i : -1;
  }

  insertTile(data) {
    const tile = this.createTile(data);
    const i = this.indexOfKey(tile.key);
    const after = this.order[i];
    this.grid.insertBefore(tile.node, after ? this.tiles.get(after.id).node : null);
    this.order.splice(i, 0, tile.key);
    this.tiles.set(data.id, tile);
  }

  removeTile(id) {
    const i = this.indexOf(id);
    if (i >= 0) this.order.splice(i, 1);
    this.tiles.get(id).node.remove();
    this.tiles.delete(id);
  }

  createTile(data) {
    const img = h("img", {
      alt: "",
      loading: "lazy",
      decoding: "async",
      draggable: "false",
      width: data.width || 256,
      height: data.height || 256,
    });
    const label = h("span", { class: "tile-label" });
    const badge = h("span", { class: "tile-badge" });
    const node = h(
      "div",
      { class: "tile", role: "listitem", tabindex: "0", "data-asset-id": data.id },
      img,
      label,
      badge,
    );
    img.addEventListener("load", () => {
      node.classList.add("loaded");
      node.classList.remove("broken");
    });
    img.addEventListener("error", () => {
      node.classList.add("broken");
      node.classList.remove("loaded");
    });
    const tile = { node, img, label, badge, key: keyOf(data), data: null };
    this.updateTile(tile, data);
    return tile;
  }

  updateAndNotify(tile, data) {
    if (this.updateTile(tile, data)) this.notify(data.id);
  }

  /**
   * Bring one tile up to `data`; touches only what changed (no reload of its image). False
   * when it already showed this version. It does not notify: `place` does once per entry.
   */
  updateTile(tile, data) {
    const previous = tile.data;
    if (previous && previous.version === data.version) return false;
    tile.data = data;
    const { node, img } = tile;
    const status = effectiveStatus(data);
    node.dataset.version = String(data.version);
    node.dataset.status = status;
    node.classList.toggle("missing", data.status === "missing");
    node.classList.toggle("trashed", Boolean(data.trashed));
    const name = displayName(data);
    node.title = `${name} — ${data.format || "?"}, ${status}`;
    node.setAttribute("aria-label", `${name} (${status})`);
    tile.label.textContent = `${data.format || "?"} · ${name}`;
    tile.badge.textContent = status === "present" ? "" : status;
    const src = thumbnailUrl(data);
    if (src === null) {
      img.removeAttribute("src");
      node.classList.add("broken");
      node.classList.remove("loaded");
    } else if (img.getAttribute("src") !== src) img.src = src;
    else if (node.classList.contains("broken") && data.thumbnail && !previous?.thumbnail) {
      img.src = src; // the thumbnail exists now: try again
    }
    return true;
  }

  updateStatus() {
    const shown = this.tiles.size; // runs after every feed entry: touch only what changed
    setIfChanged(this.grid, "data-complete", String(this.exhausted));
    setIfChanged(this.grid, "aria-busy", String(Boolean(this.loading)));
    let text;
    if (!this.started) text = "";
    else if (shown === 0 && this.loading) text = "Loading…";
    else if (shown === 0) {
      const filtered =
        this.filter.source || this.filter.status || this.filter.q || this.filter.entity;
      text = filtered ? "No assets match these filters." : "No assets yet: add a source.";
    } else text = `${shown} shown${this.exhausted ? "" : " · more below"}`;
    if (this.statusLine.textContent !== text) this.statusLine.textContent = text;
  }
}
