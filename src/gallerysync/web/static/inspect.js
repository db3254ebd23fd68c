// The storage inspector page (#/inspect): what GET /api/inspect returns (the same report as
// `gallerysync inspect --json`): per storage dir registered / unregistered / missing / broken
// files and duplicates, asset and blob totals, jobs. It walks every storage dir on the server,
// so it is loaded when the page is opened or refreshed, not on every change.

import { get } from "./api.js";
import { formatBytes, formatDate, h } from "./util.js";

const DIR_FIELDS = [
  ["files_on_disk", "Files on disk"],
  ["registered", "Registered"],
  ["unregistered", "Unregistered"],
  ["missing", "Missing"],
  ["errored", "Errors"],
  ["duplicate_groups", "Duplicate groups"],
  ["symlinks_not_followed", "Symlinks not followed"],
];

function pathList(title, paths, total) {
  if (!paths || !paths.length) return null;
  const more = total > paths.length ? ` (first ${paths.length} of ${total})` : "";
  return h(
    "details",
    {},
    h("summary", {}, `${title}${more}`),
    h("ul", { class: "paths" }, paths.map((p) => h("li", {}, typeof p === "string" ? p : `${p.path}: ${p.error}`))),
  );
}

export class InspectorPage {
  constructor(root, { onError }) {
    this.root = root;
    this.report = root.querySelector(".inspect-report");
    this.state = root.querySelector(".inspect-state");
    this.onError = onError;
    this.generation = 0;
    root.querySelector(".inspect-refresh").addEventListener("click", () => this.load());
  }

  clear() {
    this.generation += 1;
    this.report.replaceChildren();
    this.state.textContent = "";
  }

  async load() {
    const generation = ++this.generation;
    this.state.textContent = "Inspecting…";
    this.root.setAttribute("aria-busy", "true");
    try {
      const report = await get("/api/inspect");
      if (generation !== this.generation) return;
      this.render(report);
      this.state.textContent = `As of ${new Date().toLocaleTimeString()}`;
    } catch (err) {
      if (generation !== this.generation) return;
      this.state.textContent = `Could not inspect: ${err.message}`;
      this.onError(err);
    } finally {
      if (generation === this.generation) this.root.setAttribute("aria-busy", "false");
    }
  }

  render(report) {
    const parts = [];
    const assets = report.assets || {};
    parts.push(
      h(
        "section",
        { class: "inspect-totals" },
        h("h3", {}, "Assets"),
        h(
          "dl",
          {},
          Object.entries(assets).flatMap(([status, n]) => [
            h("dt", {}, status),
            h("dd", { "data-field": `assets-${status}` }, String(n)),
          ]),
        ),
      ),
    );
    for (const dir of report.storage_dirs || []) {
      parts.push(
        h(
          "section",
          { class: "storage-dir", "data-source-id": dir.id },
          h("h3", {}, dir.source, " ", h("span", { class: "source-status", "data-status": dir.status }, dir.status)),
          h("p", { class: "storage-root" }, h("code", {}, dir.root)),
          dir.status_detail ? h("p", { class: "source-detail" }, dir.status_detail) : null,
          h(
            "dl",
            {},
            h("dt", {}, "Id file"),
            h(
              "dd",
              { "data-field": "id-file" },
              [dir.id_file?.status, dir.id_file?.alias ? `alias ${dir.id_file.alias}` : "", dir.id_file?.detail || ""]
                .filter(Boolean)
                .join(" · "),
            ),
            h("dt", {}, "Last scan"),
            h("dd", { "data-field": "last-scan" }, formatDate(dir.last_scan_at)),
            DIR_FIELDS.flatMap(([key, label]) => [
              h("dt", {}, label),
              h("dd", { "data-field": key }, dir[key] === null || dir[key] === undefined ? "—" : String(dir[key])),
            ]),
          ),
          pathList("Unregistered files", dir.unregistered_paths, dir.unregistered),
          pathList("Missing files", dir.missing_paths, dir.missing),
          pathList("Errors", dir.errors, dir.errored),
        ),
      );
    }
    if (!(report.storage_dirs || []).length) parts.push(h("p", {}, "No storage dirs."));
    const groups = report.duplicate_groups || [];
    parts.push(
      h(
        "section",
        { class: "inspect-duplicates" },
        h("h3", {}, `Duplicates (${groups.length})`),
        groups.length
          ? h(
              "details",
              {},
              h("summary", {}, "Groups"),
              h(
                "ul",
                { class: "paths" },
                groups.slice(0, 200).map((g) =>
                  h("li", {}, (g.copies || []).map((c) => `${c.source}: ${c.path}`).join("  ·  ")),
                ),
              ),
            )
          : null,
      ),
    );
    // `blobs` and `jobs` are instance-wide: null unless the caller is the admin.
    const blobs = report.blobs;
    if (blobs) {
      parts.push(
        h(
          "section",
          { class: "inspect-blobs" },
          h("h3", {}, "Blob store"),
          h(
            "dl",
            {},
            h("dt", {}, "Blobs"),
            h("dd", { "data-field": "blobs" }, String(blobs.count ?? "—")),
            h("dt", {}, "Bytes"),
            h("dd", {}, formatBytes(blobs.bytes)),
            h("dt", {}, "Orphans"),
            h("dd", { "data-field": "orphans" }, String(blobs.orphans ?? "—")),
          ),
        ),
      );
    }
    const jobs = report.jobs;
    if (jobs) {
      parts.push(
        h(
          "section",
          { class: "inspect-jobs" },
          h("h3", {}, "Jobs"),
          h(
            "dl",
            {},
            ["pending", "running", "failed"].flatMap((k) => [
              h("dt", {}, k),
              h("dd", { "data-field": `jobs-${k}` }, String(jobs[k] ?? "—")),
            ]),
          ),
          pathList(
            "Failed jobs",
            (jobs.failed_jobs || []).map((j) => ({ path: `${j.kind} ${j.id} (${j.attempts} attempts)`, error: j.error })),
            jobs.failed,
          ),
        ),
      );
    }
    parts.push(
      h("details", { class: "inspect-raw" }, h("summary", {}, "Raw report"), h("pre", {}, JSON.stringify(report, null, 2))),
    );
    this.report.replaceChildren(...parts);
  }
}
