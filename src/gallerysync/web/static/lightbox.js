// The lightbox: one asset large, with its metadata. ←/→ step through the grid's order (loading
// the next page at the end), Esc closes. It follows the feed: when its asset changes, the
// metadata is redrawn; when the asset is deleted, it says so and ←/→ still work.

import { ApiError, del, get, post } from "./api.js";
import { displayName, effectiveStatus, thumbnailUrl } from "./gallery.js";
import { formatBytes, formatDate, h } from "./util.js";

// Formats every browser shows natively; others (HEIC, TIFF, RAW …) show their thumbnail.
const BROWSER_TYPES = new Set([
  "image/jpeg",
  "image/png",
  "image/gif",
  "image/webp",
  "image/avif",
  "image/bmp",
]);

export class Lightbox {
  constructor(root, gallery, { sourceName, onError }) {
    this.root = root;
    this.gallery = gallery;
    this.sourceName = sourceName;
    this.onError = onError;
    this.id = null;
    this.index = -1;
    this.returnFocus = null;
    this.image = root.querySelector(".lb-image");
    this.placeholder = root.querySelector(".lb-placeholder");
    this.title = root.querySelector(".lb-title");
    this.meta = root.querySelector(".lb-meta");
    this.note = root.querySelector(".lb-note");
    this.original = root.querySelector(".lb-original");
    this.trash = root.querySelector(".lb-trash");
    root.querySelector(".lb-close").addEventListener("click", () => this.close());
    root.querySelector(".lb-prev").addEventListener("click", () => this.step(-1));
    root.querySelector(".lb-next").addEventListener("click", () => this.step(1));
    root.addEventListener("click", (event) => {
      if (event.target === root || event.target.classList.contains("lb-stage")) this.close();
    });
    this.trash.addEventListener("click", () => this.toggleTrash());
    this.image.addEventListener("error", () => this.showPlaceholder(true));
    this.image.addEventListener("load", () => this.showPlaceholder(false));
    document.addEventListener("keydown", (event) => this.onKey(event));
    gallery.subscribe((id) => {
      if (id === this.id) this.render();
    });
  }

  get isOpen() {
    return !this.root.hidden;
  }

  open(id) {
    if (!this.isOpen) this.returnFocus = document.activeElement;
    this.id = id;
    this.index = this.gallery.indexOf(id);
    this.root.dataset.assetId = id;
    this.root.hidden = false;
    document.body.classList.add("lightbox-open");
    this.render(true);
    this.root.querySelector(".lb-close").focus({ preventScroll: true });
    // The grid may hold a summary from a while ago: ask for the current state.
    get(`/api/assets/${encodeURIComponent(id)}`)
      .then((data) => this.gallery.applyEntry({ type: "asset", id, op: "upsert", data }))
      .catch((err) => {
        if (err instanceof ApiError && err.status === 404) {
          this.gallery.applyEntry({ type: "asset", id, op: "delete", data: null });
        }
      });
  }

  close() {
    if (!this.isOpen) return;
    this.root.hidden = true;
    this.id = null;
    delete this.root.dataset.assetId;
    document.body.classList.remove("lightbox-open");
    this.image.removeAttribute("src");
    if (this.returnFocus && document.contains(this.returnFocus)) {
      this.returnFocus.focus({ preventScroll: true });
    }
  }

  onKey(event) {
    if (!this.isOpen || event.defaultPrevented) return;
    if (event.key === "Escape") this.close();
    else if (event.key === "ArrowRight") this.step(1);
    else if (event.key === "ArrowLeft") this.step(-1);
    else return;
    event.preventDefault();
  }

  async step(delta) {
    const order = this.gallery.order;
    let i = this.gallery.indexOf(this.id);
    if (i >= 0) this.index = i;
    else i = delta > 0 ? this.index - 1 : this.index; // our asset left the grid: its neighbours moved up
    const target = i + delta;
    if (target < 0) return;
    if (target >= order.length) {
      const from = this.id;
      if (await this.gallery.loadMore().catch(() => false)) {
        if (this.id === from && this.gallery.order.length > target) {
          this.open(this.gallery.order[target].id);
        }
      }
      return;
    }
    this.open(order[target].id);
  }

  showPlaceholder(on) {
    this.placeholder.hidden = !on;
    this.image.classList.toggle("failed", on);
  }

  render(newAsset = false) {
    if (!this.id) return;
    const data = this.gallery.dataOf(this.id);
    const id = this.id;
    this.meta.replaceChildren();
    if (data === null) {
      this.title.textContent = "Deleted";
      this.note.textContent = "This asset is no longer in the catalog.";
      this.note.hidden = false;
      this.root.dataset.status = "deleted";
      this.trash.hidden = true;
      this.original.hidden = true;
      return;
    }
    if (data === undefined) return;
    const status = effectiveStatus(data);
    this.root.dataset.status = status;
    this.title.textContent = displayName(data);
    const missing = data.status === "missing";
    this.note.hidden = !missing && !data.trashed;
    this.note.textContent = missing
      ? "The bytes of this asset are not here (missing): no place known to the catalog has them."
      : data.trashed
        ? "In the trash."
        : "";
    const original = data.original || `/api/assets/${encodeURIComponent(id)}/original`;
    if (newAsset) {
      this.showPlaceholder(false);
      const thumb = thumbnailUrl(data);
      if (thumb) this.image.src = thumb;
      else {
        this.image.removeAttribute("src");
        this.showPlaceholder(true);
      }
      this.image.alt = displayName(data);
      if (!missing && BROWSER_TYPES.has(data.mime)) {
        const full = new Image();
        full.decoding = "async";
        full.onload = () => {
          if (this.id === id) this.image.src = full.src;
        };
        full.src = original;
      }
    }
    this.original.hidden = missing;
    this.original.href = original;
    this.trash.hidden = false;
    this.trash.textContent = data.trashed ? "Restore" : "Move to trash";
    const rows = [
      ["Status", status],
      ["Format", [data.format || "unknown", data.mime ? ` (${data.mime})` : ""].join("")],
      ["Size", data.size === null || data.size === undefined ? "—" : `${formatBytes(data.size)} (${data.size} bytes)`],
      ["Dimensions", data.width && data.height ? `${data.width} × ${data.height}` : "—"],
      ["Added", formatDate(data.created_at)],
      ["Updated", formatDate(data.updated_at)],
      [
        "Places",
        (data.origins || []).length
          ? h(
              "ul",
              { class: "lb-origins" },
              data.origins.map((o) =>
                h(
                  "li",
                  { "data-origin-status": o.status },
                  h("span", { class: "origin-source" }, this.sourceName(o.source_id)),
                  " ",
                  h("span", { class: "origin-path" }, o.path),
                  o.status === "present" ? "" : h("span", { class: "origin-status" }, ` (${o.status})`),
                ),
              ),
            )
          : "none",
      ],
      ["Hash", h("code", {}, data.hash || "—")],
      ["Id", h("code", {}, data.id)],
      ["Version", String(data.version)],
    ];
    for (const [label, value] of rows) {
      this.meta.append(h("dt", {}, label), h("dd", { "data-field": label.toLowerCase() }, value));
    }
  }

  async toggleTrash() {
    const data = this.gallery.dataOf(this.id);
    if (!data) return;
    const id = this.id;
    try {
      const updated = data.trashed
        ? await post(`/api/assets/${encodeURIComponent(id)}/restore`)
        : await del(`/api/assets/${encodeURIComponent(id)}`);
      this.gallery.applyEntry({ type: "asset", id, op: "upsert", data: updated });
    } catch (err) {
      this.onError(err);
    }
  }
}
