// The live event stream (GET /api/v1/events, Server-Sent Events). EventSource cannot send an
// Authorization header and the token must not go in a URL, so the stream is read with fetch()
// and a streaming reader, and parsed here. After an error, a server restart or a silent
// connection (no keep-alive for 45 s) it reconnects with backoff; every (re)connection tells
// the app, which re-reads state from the API to cover the gap.

import { authHeaders } from "./api.js";

/** Longest silence accepted: the server sends a keep-alive comment every 15 s. */
const SILENCE_MS = 45000;
const BACKOFF_MIN_MS = 500;
const BACKOFF_MAX_MS = 10000;

/** Splits an SSE byte stream (already decoded to text) into events. */
export class SseParser {
  constructor(onEvent) {
    this.onEvent = onEvent;
    this.buffer = "";
    this.event = "";
    this.data = [];
  }

  push(text) {
    this.buffer += text;
    let start = 0;
    for (;;) {
      const nl = this.buffer.slice(start).search(/\r\n|\r|\n/);
      if (nl < 0) break;
      const end = start + nl;
      const line = this.buffer.slice(start, end);
      // A lone \r at the very end may be the first half of \r\n: wait for more.
      if (this.buffer[end] === "\r" && end + 1 === this.buffer.length) break;
      start = end + (this.buffer.startsWith("\r\n", end) ? 2 : 1);
      this.line(line);
    }
    this.buffer = this.buffer.slice(start);
  }

  line(line) {
    if (line === "") {
      if (this.data.length) {
        this.onEvent(this.event || "message", this.data.join("\n"));
      }
      this.event = "";
      this.data = [];
      return;
    }
    if (line.startsWith(":")) return;
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "event") this.event = value;
    else if (field === "data") this.data.push(value);
  }
}

/**
 * One stream at a time. Callbacks: `onEvent(name, data)` with parsed JSON, `onState("connected" |
 * "reconnecting")`, `onOpen()` after each successful (re)connection, `onUnauthorized()` on 401
 * (the stream then waits for `retryNow()`, called when a token is entered).
 */
export class LiveStream {
  constructor({ onEvent, onState, onOpen, onUnauthorized }) {
    this.callbacks = { onEvent, onState, onOpen, onUnauthorized };
    this.filter = null;
    this.controller = null;
    this.wake = null;
    this.running = false;
    this.generation = 0;
  }

  /** Follows one charge point's events only (null: every charge point); reconnects if changed. */
  setFilter(chargePoint) {
    const filter = chargePoint || null;
    if (filter === this.filter && this.running) return;
    this.filter = filter;
    this.restart();
  }

  /** Drops the current connection and connects again at once. */
  restart() {
    this.generation += 1;
    if (this.controller) this.controller.abort();
    if (this.wake) this.wake();
    if (!this.running) {
      this.running = true;
      this.loop();
    }
  }

  /** Ends a wait (backoff or waiting for a token) early. */
  retryNow() {
    if (this.wake) this.wake();
  }

  url() {
    return this.filter
      ? `/api/v1/events?charge_point=${encodeURIComponent(this.filter)}`
      : "/api/v1/events";
  }

  state(value) {
    this.callbacks.onState(value);
  }

  sleep(ms) {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      const self = this;
      function done() {
        clearTimeout(timer);
        self.wake = null;
        resolve();
      }
      this.wake = done;
    });
  }

  async loop() {
    let backoff = BACKOFF_MIN_MS;
    for (;;) {
      const generation = this.generation;
      const controller = new AbortController();
      this.controller = controller;
      let opened = false;
      let waitForToken = false;
      try {
        const response = await fetch(this.url(), {
          headers: authHeaders({ Accept: "text/event-stream" }),
          cache: "no-store",
          signal: controller.signal,
        });
        if (response.status === 401) {
          waitForToken = true;
          this.callbacks.onUnauthorized();
        } else if (response.ok && response.body) {
          opened = true;
          backoff = BACKOFF_MIN_MS;
          this.state("connected");
          try {
            this.callbacks.onOpen();
          } catch (error) {
            console.error("live stream open handler failed", error);
          }
          await this.read(response.body, controller);
        }
      } catch (_) {
        // Network error, server gone, or aborted by restart()/the silence watchdog.
      }
      if (this.controller === controller) this.controller = null;
      this.state("reconnecting");
      if (generation !== this.generation) continue;
      if (waitForToken) {
        await this.sleep(60000);
      } else if (!opened) {
        await this.sleep(backoff * (0.8 + Math.random() * 0.4));
        backoff = Math.min(backoff * 2, BACKOFF_MAX_MS);
      } else {
        await this.sleep(BACKOFF_MIN_MS);
      }
    }
  }

  async read(body, controller) {
    const reader = body.getReader();
    const decoder = new TextDecoder();
    const parser = new SseParser((name, data) => {
      let parsed;
      try {
        parsed = JSON.parse(data);
      } catch (_) {
        return;
      }
      try {
        this.callbacks.onEvent(name, parsed);
      } catch (error) {
        // A page's bug must not look like a broken stream; it is reported, not retried.
        console.error("live event handler failed", error);
      }
    });
    let watchdog = setTimeout(() => controller.abort(), SILENCE_MS);
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return;
        clearTimeout(watchdog);
        watchdog = setTimeout(() => controller.abort(), SILENCE_MS);
        parser.push(decoder.decode(value, { stream: true }));
      }
    } finally {
      clearTimeout(watchdog);
    }
  }
}
