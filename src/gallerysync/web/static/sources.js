// The sources page (#/sources): each source with its state, last sync, counts, a progress bar
// while a sync runs, and "Sync now" buttons (POST /api/sources/{id}/sync {"mode"}).
//
// It follows the change feed: `source` entries update a card's state, `sync_run` entries its
// last run and progress. While a run is running or a requested sync has not shown up yet, it
// also re-reads GET /api/sources once a second (a server whose feed has no `sync_run`
// entries still shows progress that way).

import { get, post } from "./api.js";
import { formatDate, formatDuration, h, terms } from "./util.js";

const POLL_MS = 1000;
const EXPECT_RUN_MS = 60000;
const COUNT_ORDER = ["added", "updated", "moved", "missing", "unchanged", "errors", "deferred"];

export class SourcesPage {
  constructor(root, { onChanged, onError }) {
    this.root = root;
    this.list = root.querySelector(".sources-list");
    this.onChanged = onChanged;
    this.onError = onError;
    this.sources = new Map(); // id → source JSON (GET /api/sources shape)
    this.cards = new Map(); // id → card element
    this.progress = new Map(); // source id → {done, total} from sync_run entries
    this.expect = new Map(); // source id → {previous run id, until}
    this.visible = false;
    this.loaded = false;
    this.timer = null;
  }

  clear() {
    this.sources.clear();
    this.cards.clear();
    this.progress.clear();
    this.expect.clear();
    this.loaded = false;
    this.list.replaceChildren();
    clearTimeout(this.timer);
    this.timer = null;
  }

  async refresh() {
    const { sources } = await get("/api/sources");
    const seen = new Set();
    for (const source of sources) {
      seen.add(source.id);
      this.sources.set(source.id, source);
    }
    for (const id of [...this.sources.keys()]) if (!seen.has(id)) this.sources.delete(id);
    this.loaded = true;
    for (const [id, wait] of this.expect) {
      const run = this.sources.get(id)?.last_run;
      if (Date.now() > wait.until || (run && run.id !== wait.previous)) this.expect.delete(id);
    }
    this.changed();
  }

  /** The list of sources changed: tell the app (the source filter), redraw. */
  changed() {
    this.onChanged([...this.sources.values()]);
    this.render();
  }

  show() {
    this.visible = true;
    this.render();
    this.refresh()
      .catch((err) => this.onError(err))
      .finally(() => this.schedulePoll());
  }

  hide() {
    this.visible = false;
    clearTimeout(this.timer);
    this.timer = null;
  }

  needsPolling() {
    if (this.expect.size) return true;
    for (const source of this.sources.values()) {
      if (source.last_run && source.last_run.status === "running") return true;
    }
    return false;
  }

  schedulePoll() {
    if (!this.visible || this.timer || !this.needsPolling()) return;
    this.timer = setTimeout(async () => {
      try {
        await this.refresh();
      } catch {
        // offline for a moment: the Live indicator says so; try again next round
      } finally {
        this.timer = null;
        this.schedulePoll();
      }
    }, POLL_MS);
  }

  /** A change-feed entry of type "source". */
  applySource(entry) {
    if (entry.op === "delete" || !entry.data) {
      this.sources.delete(entry.id);
    } else {
      const known = this.sources.get(entry.id);
      if (!known) {
        this.refresh().catch(() => {}); // a new source: fetch its full description
        return;
      }
      this.sources.set(entry.id, { ...known, ...entry.data });
    }
    this.changed();
  }

  /** A change-feed entry of type "sync_run". */
  applyRun(entry) {
    const run = entry.data;
    if (!run) return;
    const source = this.sources.get(run.source_id);
    if (!source) return;
    const last = source.last_run;
    if (!last || last.id === run.id || run.started_at >= last.started_at) {
      source.last_run = { ...(last && last.id === run.id ? last : {}), ...run };
    }
    if (run.status === "running" && run.progress) this.progress.set(run.source_id, run.progress);
    else if (run.status !== "running") this.progress.delete(run.source_id);
    const wait = this.expect.get(run.source_id);
    if (wait && run.id !== wait.previous) this.expect.delete(run.source_id);
    this.render();
    this.schedulePoll();
  }

  async sync(id, mode) {
    const source = this.sources.get(id);
    this.expect.set(id, { previous: source?.last_run?.id ?? null, until: Date.now() + EXPECT_RUN_MS });
    const error = this.cards.get(id)?.querySelector(".source-error");
    if (error) error.textContent = "";
    this.render();
    try {
      await post(`/api/sources/${encodeURIComponent(id)}/sync`, { mode });
    } catch (err) {
      this.expect.delete(id);
      if (error) error.textContent = `Could not start: ${err.message}`;
      this.render();
      return;
    }
    this.schedulePoll();
  }

  render() {
    if (!this.visible) return;
    const empty = this.root.querySelector(".sources-empty");
    empty.hidden = !this.loaded || this.sources.size > 0;
    for (const [id, card] of this.cards) {
      if (!this.sources.has(id)) {
        card.remove();
        this.cards.delete(id);
      }
    }
    for (const source of this.sources.values()) {
      let card = this.cards.get(source.id);
      if (!card) {
        card = this.createCard(source.id);
        this.cards.set(source.id, card);
        this.list.append(card);
      }
      this.updateCard(card, source);
    }
  }

  createCard(id) {
    const button = (mode, label) =>
      h("button", { type: "button", "data-sync": mode, onclick: () => this.sync(id, mode) }, label);
    return h(
      "article",
      { class: "source", "data-source-id": id },
      h("header", {}, h("h3", { class: "source-name" }), h("span", { class: "source-status" })),
      h(
        "dl",
        {},
        terms([
          ["Kind", "kind"],
          ["Location", "root"],
          ["Last scan", "last-scan"],
          ["Last sync", "last-run", h("span", { class: "last-run" })],
          ["Counts", "counts"],
        ]),
      ),
      h("progress", { class: "sync-progress", hidden: true }),
      h("p", { class: "source-detail" }),
      h("p", { class: "source-error", role: "alert" }),
      h("div", { class: "source-actions" }, button("smart", "Sync now"), button("full", "Full sync")),
    );
  }

  updateCard(card, source) {
    const run = source.last_run || null;
    const running = (run && run.status === "running") || this.expect.has(source.id);
    card.dataset.status = source.status;
    card.dataset.syncing = String(Boolean(running));
    card.querySelector(".source-name").textContent = source.name;
    const status = card.querySelector(".source-status");
    status.textContent = source.status;
    status.dataset.status = source.status;
    card.querySelector('[data-field="kind"]').textContent = source.kind;
    card.querySelector('[data-field="root"]').textContent = source.root || "—";
    card.querySelector('[data-field="last-scan"]').textContent = formatDate(source.last_scan_at);
    const detail = card.querySelector(".source-detail");
    detail.textContent = source.status_detail || "";
    detail.hidden = !source.status_detail;

    const lastRun = card.querySelector(".last-run");
    if (run) {
      lastRun.dataset.runId = run.id;
      lastRun.dataset.runStatus = run.status;
      const took = run.finished_at ? ` in ${formatDuration(run.finished_at - run.started_at)}` : "";
      lastRun.textContent = `${run.mode} · ${run.status} · ${formatDate(run.started_at)}${took}`;
      if (run.error) lastRun.title = run.error;
    } else {
      delete lastRun.dataset.runId;
      delete lastRun.dataset.runStatus;
      lastRun.textContent = "never";
    }
    const counts = (run && run.counts) || {};
    const parts = COUNT_ORDER.filter((k) => typeof counts[k] === "number").map(
      (k) => `${counts[k]} ${k}`,
    );
    card.querySelector('[data-field="counts"]').textContent = parts.length ? parts.join(", ") : "—";

    const bar = card.querySelector(".sync-progress");
    bar.hidden = !running;
    const progress = this.progress.get(source.id) || (run && run.progress) || null;
    if (running && progress && progress.total) {
      bar.max = progress.total;
      bar.value = progress.done;
      bar.title = `${progress.done} of ${progress.total}`;
    } else {
      bar.removeAttribute("value"); // indeterminate
      bar.title = running ? "syncing…" : "";
    }
    for (const b of card.querySelectorAll("button[data-sync]")) b.disabled = Boolean(running);
  }
}
