// The storage inspector page (#/inspect): what GET /api/inspect returns (the same report as
// `gallerysync inspect --json`): per storage dir registered / unregistered / missing / broken
// files and duplicates, asset and blob totals, jobs. It walks every storage dir on the server,
// so it is loaded when the page is opened or refreshed, not on every change.

import { get } from "./api.js";
import { formatBytes, formatDate, h, terms } from "./util.js";

const DIR_FIELDS = [
  ["files_on_disk", "Files on disk"],
  ["registered", "Registered"],
  ["unregistered", "Unregistered"],
  ["missing", "Missing"],
  ["errored", "Errors"],
  ["duplicate_groups", "Duplicate groups"],
  ["symlinks_not_followed", "Symlinks not followed"],
];
const JOB_STATES = ["pending", "running", "failed"];

const count = (n) => String(n ?? "—");

function section(attrs, title, ...children) {
  return h("section", attrs, h("h3", {}, title), ...children);
}

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

function storageDir(dir) {
  const idFile = [dir.id_file?.status, dir.id_file?.alias ? `alias ${dir.id_file.alias}` : "", dir.id_file?.detail || ""];
  return section(
    { class: "storage-dir", "data-source-id": dir.id },
    [dir.source, " ", h("span", { class: "source-status", "data-status": dir.status }, dir.status)],
    h("p", { class: "storage-root" }, h("code", {}, dir.root)),
    dir.status_detail ? h("p", { class: "source-detail" }, dir.status_detail) : null,
    h(
      "dl",
      {},
      terms([
        ["Id file", "id-file", idFile.filter(Boolean).join(" · ")],
        ["Last scan", "last-scan", formatDate(dir.last_scan_at)],
        ...DIR_FIELDS.map(([key, label]) => [label, key, count(dir[key])]),
      ]),
    ),
    pathList("Unregistered files", dir.unregistered_paths, dir.unregistered),
    pathList("Missing files", dir.missing_paths, dir.missing),
    pathList("Errors", dir.errors, dir.errored),
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
    const dirs = report.storage_dirs || [];
    const groups = report.duplicate_groups || [];
    // `blobs` and `jobs` are instance-wide: null unless the caller is the admin.
    const { blobs, jobs } = report;
    const parts = [
      section(
        { class: "inspect-totals" },
        "Assets",
        h(
          "dl",
          {},
          terms(Object.entries(report.assets || {}).map(([status, n]) => [status, `assets-${status}`, String(n)])),
        ),
      ),
      ...dirs.map(storageDir),
      dirs.length ? null : h("p", {}, "No storage dirs."),
      section(
        { class: "inspect-duplicates" },
        `Duplicates (${groups.length})`,
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
      blobs &&
        section(
          { class: "inspect-blobs" },
          "Blob store",
          h(
            "dl",
            {},
            terms([
              ["Blobs", "blobs", count(blobs.count)],
              ["Bytes", null, formatBytes(blobs.bytes)],
              ["Orphans", "orphans", count(blobs.orphans)],
            ]),
          ),
        ),
      jobs &&
        section(
          { class: "inspect-jobs" },
          "Jobs",
          h("dl", {}, terms(JOB_STATES.map((k) => [k, `jobs-${k}`, count(jobs[k])]))),
          pathList(
            "Failed jobs",
            (jobs.failed_jobs || []).map((j) => ({ path: `${j.kind} ${j.id} (${j.attempts} attempts)`, error: j.error })),
            jobs.failed,
          ),
        ),
      h("details", { class: "inspect-raw" }, h("summary", {}, "Raw report"), h("pre", {}, JSON.stringify(report, null, 2))),
    ];
    this.report.replaceChildren(...parts.filter(Boolean));
  }
}
