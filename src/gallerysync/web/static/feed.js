// The change feed as seen by the page: one EventSource on /api/changes/stream.
//
// The caller opens it with a token it obtained *before* loading its data (the since-token
// handshake, see app.js), so nothing committed in between is lost. Entries carry the entity's
// current state, so an entry delivered twice is harmless; the browser resumes after a dropped
// connection with the Last-Event-ID header, so after a reconnect each missed entry arrives once.
//
// States reported to onState: "connecting" (opening, or catching up on the backlog), "live"
// (the server sent `up-to-date`), "offline" (the connection is down; the browser retries).

import { ApiError, get, query } from "./api.js";
import { backoff } from "./util.js";

export class ChangeFeed {
  constructor({ onEntry, onReset, onState }) {
    this.onEntry = onEntry;
    this.onReset = onReset;
    this.onState = onState;
    this.source = null;
    this.token = null; // where this subscription started
    this.lastId = null; // the last event id we saw (the browser also tracks id-only events)
    this.failures = 0;
    this.timer = null;
    this.generation = 0; // bumped by close(): a probe in flight must not reopen a closed feed
  }

  /** Subscribe from `token` (a feed token, or "now"). Closes any previous subscription. */
  open(token) {
    this.close();
    this.token = token;
    this.lastId = null;
    this.failures = 0;
    this.connect();
  }

  close() {
    this.generation += 1;
    clearTimeout(this.timer);
    this.timer = null;
    if (this.source) {
      this.source.close();
      this.source = null;
    }
  }

  connect() {
    const since = this.lastId || this.token;
    const source = new EventSource(`/api/changes/stream${query({ since })}`);
    this.source = source;
    this.onState("connecting");
    const mine = (handler) => (event) => {
      if (this.source === source) handler(event);
    };
    source.addEventListener(
      "open",
      mine(() => {
        this.failures = 0;
        this.onState("connecting", "catching up");
      }),
    );
    source.addEventListener(
      "change",
      mine((event) => {
        if (event.lastEventId) this.lastId = event.lastEventId;
        let entry;
        try {
          entry = JSON.parse(event.data);
        } catch {
          return;
        }
        this.onEntry(entry);
      }),
    );
    source.addEventListener(
      "up-to-date",
      mine((event) => {
        if (event.lastEventId) this.lastId = event.lastEventId;
        this.onState("live");
      }),
    );
    source.addEventListener(
      "reset",
      mine(() => {
        // The stream ends after a reset; the browser would reconnect with the same id and be
        // told to reset again. Stop here and let the app reload its data.
        this.close();
        this.onState("connecting", "reloading");
        this.onReset();
      }),
    );
    source.addEventListener(
      "error",
      mine(() => {
        this.onState("offline", "reconnecting…");
        if (source.readyState === EventSource.CLOSED) {
          // The browser gave up (an answer that was not an event stream: 401, 422, a proxy's
          // 502 …). Find out why with an ordinary request, then retry ourselves.
          this.source = null;
          this.retryLater();
        }
        // Otherwise (readyState CONNECTING) the browser retries by itself after `retry:` ms,
        // sending Last-Event-ID.
      }),
    );
  }

  retryLater() {
    const wait = backoff(this.failures);
    this.failures += 1;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.probeAndReconnect(), wait);
  }

  async probeAndReconnect() {
    this.timer = null;
    const generation = this.generation;
    const since = this.lastId || this.token;
    try {
      await get(`/api/changes${query({ since, limit: 1 })}`);
    } catch (err) {
      if (generation !== this.generation) return;
      if (err instanceof ApiError) {
        if (err.status === 401) return; // the app shows the sign-in form
        if (err.status === 410 || err.status === 422) {
          this.close();
          this.onReset();
          return;
        }
      }
      this.retryLater();
      return;
    }
    if (generation === this.generation && this.source === null) this.connect();
  }
}
