// ssehub.js: a Server-Sent Events client for web pages, served by the
// ssehub hub at GET /ssehub.js. One dependency-free ES module (fetch,
// ReadableStream, TextDecoder, EventTarget), with the same parser and
// reconnect policy as the Rust client (ssehub-core's `codec::decode` and
// `reconnect`), so that switching from EventSource is one line:
//
//   import { SseHub } from "/ssehub.js";
//   const es = new SseHub("/events?topic=news", { headers: { Authorization: "Bearer ..." } });
//   es.onmessage = (e) => console.log(e.lastEventId, e.data);
//
// What the native EventSource cannot do and this does:
// - it sees the HTTP status: 204 and 4xx other than 408/429 stop it for
//   good ("fatal-status"), 5xx/408/429 and network errors are retried;
// - it sends headers (Authorization: Bearer, and Last-Event-ID on every
//   reconnect);
// - it backs off: full jitter, exponential from the server's `retry:` (or
//   `baseDelay`), capped by `maxDelay`, with `Retry-After` as a floor;
// - it notices a half-open connection: no bytes for `readTimeout`
//   (heartbeats included) reconnects ("timeout");
// - it tells the server's fatal event, its `reset` event and a business
//   error (`event: error`, JSON {code, message}) apart from connection
//   errors, and reports state changes a UI can show.
//
// The module has three layers, each usable alone:
// - `SseParser`: bytes -> frames, the WHATWG rules exactly, byte-for-byte
//   the frames of the Rust decoder (checked on shared vectors);
// - `ReconnectPolicy`: a pure state machine (no clock, no IO, injected
//   randomness), the Rust policy's rules;
// - `SseHub`: the EventSource-like driver; its fetch, clock, randomness and
//   document are injectable, so tests run it on a fake clock.
//
// Invariants:
// - No input (bytes, header values, option values within their documented
//   types) makes it throw from a callback or arm a timer with an invalid
//   delay: every delay is clamped to [0, MAX_TIMER_DELAY] (setTimeout fires
//   at once beyond 2^31 - 1 ms, which would turn a huge Retry-After into a
//   tight loop).
// - `close()` is final: nothing is fetched or dispatched after it (but the
//   `closed` state event it causes).
// - A stale connection never acts: every asynchronous step checks that the
//   connection it belongs to is still the current one.
// - Memory per connection is bounded by `maxLineLength` and
//   `maxEventLength` (bytes), whatever the server sends.

/** `readyState` values, as in EventSource. */
export const CONNECTING = 0;
export const OPEN = 1;
export const CLOSED = 2;

/** The largest delay setTimeout honours (2^31 - 1 ms, about 24.8 days). */
export const MAX_TIMER_DELAY = 2147483647;

/** Default longest line, in bytes (as the Rust decoder: 1 MiB). */
export const DEFAULT_MAX_LINE_LENGTH = 1 << 20;

/** Default largest event data, in bytes (as the Rust decoder: 4 MiB). */
export const DEFAULT_MAX_EVENT_LENGTH = 4 << 20;

/** Default backoff base before the server sends `retry:` (3 s). */
export const DEFAULT_BASE_DELAY = 3000;

/** Default cap of the jittered backoff (60 s). */
export const DEFAULT_MAX_DELAY = 60000;

/** Default liveness timeout: 3 x the hub's default 15 s heartbeat. */
export const DEFAULT_READ_TIMEOUT = 45000;

/** Default time a connection must stay open to count as healthy (30 s). */
export const DEFAULT_HEALTHY_AFTER = 30000;

/** From the second attempt on, backoff grows from at least this (1 ms). */
export const MIN_GROWTH_BASE = 1;

// ---------------------------------------------------------------------------
// Parser
// ---------------------------------------------------------------------------

const LF = 0x0a;
const CR = 0x0d;
const COLON = 0x3a;
const SPACE = 0x20;
const BOM = [0xef, 0xbb, 0xbf];
const EMPTY = new Uint8Array(0);

/** Why an `SseParser` stopped: `kind` is "line-too-long" or "event-too-large". */
export class ParseError extends Error {
  constructor(kind, limit) {
    super(
      kind === "line-too-long"
        ? `event stream line longer than the limit of ${limit} bytes`
        : `event data larger than the limit of ${limit} bytes`,
    );
    this.name = "ParseError";
    this.kind = kind;
    this.limit = limit;
  }
}

/**
 * The incremental `text/event-stream` parser of one connection.
 *
 * `feed(bytes)` takes a chunk split anywhere (inside a line, a CRLF pair, a
 * UTF-8 sequence or the BOM) and returns the frames it completed:
 * - `{ type: "event", event, data, lastEventId }` (a dispatched event);
 * - `{ type: "retry", ms }` (a `retry:` of digits only, reported at once);
 * - `{ type: "id", id }` (a block without data changed the last event id);
 * - `{ type: "comment", text }` (only with `comments: true`).
 *
 * The rules are the WHATWG ones, as ssehub-core's decoder applies them: one
 * leading BOM stripped; CRLF, LF and lone CR end lines (a CR ending one
 * chunk and a LF starting the next are one break); one space after the
 * colon stripped; unknown fields ignored; an `id` containing NUL ignored;
 * the last event id persists across events; a block without data is not
 * dispatched; bytes decoded as UTF-8 with U+FFFD replacement, field by
 * field. A line over `maxLineLength` bytes or event data over
 * `maxEventLength` bytes stops the parser: `error` is then a `ParseError`,
 * the frames completed before it are still returned, and later input is
 * ignored.
 */
export class SseParser {
  #maxLine;
  #maxEvent;
  #comments;
  /** Bytes of the BOM seen at the very start, or -1 once decided. */
  #bom = 0;
  #afterCr = false;
  #line = new Uint8Array(64);
  #lineLength = 0;
  #data = "";
  #dataBytes = 0;
  #eventType = "";
  #idBuffer;
  #lastEventId;
  #error = null;
  #frames = [];
  #text = new TextDecoder("utf-8", { ignoreBOM: true });

  constructor({
    maxLineLength = DEFAULT_MAX_LINE_LENGTH,
    maxEventLength = DEFAULT_MAX_EVENT_LENGTH,
    comments = false,
    lastEventId = "",
  } = {}) {
    this.#maxLine = checkCount("maxLineLength", maxLineLength);
    this.#maxEvent = checkCount("maxEventLength", maxEventLength);
    this.#comments = Boolean(comments);
    this.#lastEventId = String(lastEventId);
    this.#idBuffer = this.#lastEventId;
  }

  /** The last event id at the last dispatch point ("" if none). */
  get lastEventId() {
    return this.#lastEventId;
  }

  /** The `ParseError` that stopped this parser, or null. */
  get error() {
    return this.#error;
  }

  /** Consumes a chunk (a Uint8Array); returns the frames it completed. */
  feed(chunk) {
    const frames = (this.#frames = []);
    if (this.#error) return frames;
    const n = chunk.length;
    let i = 0;
    if (this.#bom >= 0) i = this.#stripBom(chunk);
    if (this.#afterCr && i < n) {
      this.#afterCr = false;
      if (chunk[i] === LF) i++;
    }
    // Next LF / CR at or after i (n when none): each found once, so the
    // scan stays linear whatever the mix of line breaks.
    let nextLf = -1;
    let nextCr = -1;
    while (i < n) {
      if (nextLf < i) nextLf = indexOrEnd(chunk, LF, i);
      if (nextCr < i) nextCr = indexOrEnd(chunk, CR, i);
      const end = Math.min(nextLf, nextCr);
      if (end === n) {
        this.#pushPartial(chunk, i, n);
        break;
      }
      let next = end + 1;
      if (chunk[end] === CR) {
        if (next < n) {
          if (chunk[next] === LF) next++;
        } else {
          this.#afterCr = true;
        }
      }
      if (this.#lineLength === 0) {
        if (end - i > this.#maxLine) this.#fail("line-too-long", this.#maxLine);
        else this.#processLine(chunk.subarray(i, end));
      } else {
        this.#pushPartial(chunk, i, end);
        if (!this.#error) {
          const line = this.#line.subarray(0, this.#lineLength);
          this.#lineLength = 0;
          this.#processLine(line);
        }
      }
      if (this.#error) break;
      i = next;
    }
    return frames;
  }

  #stripBom(chunk) {
    let seen = this.#bom;
    let i = 0;
    while (i < chunk.length) {
      if (chunk[i] !== BOM[seen]) {
        // Not a BOM: the bytes taken for one are line content.
        this.#bom = -1;
        this.#pushPartial(Uint8Array.from(BOM), 0, seen);
        return i;
      }
      seen++;
      i++;
      if (seen === BOM.length) {
        this.#bom = -1;
        return i;
      }
    }
    this.#bom = seen;
    return i;
  }

  #pushPartial(bytes, from, to) {
    if (this.#error) return;
    const length = this.#lineLength + (to - from);
    if (length > this.#maxLine) {
      this.#fail("line-too-long", this.#maxLine);
      return;
    }
    if (length > this.#line.length) {
      const grown = new Uint8Array(Math.min(Math.max(length, this.#line.length * 2), this.#maxLine));
      grown.set(this.#line.subarray(0, this.#lineLength));
      this.#line = grown;
    }
    this.#line.set(bytes.subarray(from, to), this.#lineLength);
    this.#lineLength = length;
  }

  #processLine(line) {
    if (line.length === 0) {
      this.#dispatch();
      return;
    }
    if (line[0] === COLON) {
      if (this.#comments) {
        this.#frames.push({ type: "comment", text: this.#decode(stripSpace(line.subarray(1))) });
      }
      return;
    }
    const colon = line.indexOf(COLON);
    const name = colon < 0 ? line : line.subarray(0, colon);
    const value = colon < 0 ? EMPTY : stripSpace(line.subarray(colon + 1));
    switch (fieldName(name)) {
      case "event":
        this.#eventType = this.#decode(value);
        break;
      case "data": {
        const text = this.#decode(value);
        const bytes = utf8Length(text, value.length);
        if (this.#dataBytes + bytes > this.#maxEvent) {
          this.#fail("event-too-large", this.#maxEvent);
        } else {
          this.#data += text + "\n";
          this.#dataBytes += bytes + 1;
        }
        break;
      }
      case "id":
        if (value.indexOf(0) < 0) this.#idBuffer = this.#decode(value);
        break;
      case "retry": {
        const ms = parseRetryField(value, this.#decode(value));
        if (ms !== null) this.#frames.push({ type: "retry", ms });
        break;
      }
      default:
        break;
    }
  }

  #dispatch() {
    const idChanged = this.#lastEventId !== this.#idBuffer;
    if (idChanged) this.#lastEventId = this.#idBuffer;
    if (this.#data === "") {
      this.#eventType = "";
      if (idChanged) this.#frames.push({ type: "id", id: this.#lastEventId });
      return;
    }
    const data = this.#data.endsWith("\n") ? this.#data.slice(0, -1) : this.#data;
    this.#frames.push({
      type: "event",
      event: this.#eventType === "" ? "message" : this.#eventType,
      data,
      lastEventId: this.#lastEventId,
    });
    this.#data = "";
    this.#dataBytes = 0;
    this.#eventType = "";
  }

  #fail(kind, limit) {
    this.#error = new ParseError(kind, limit);
    this.#line = EMPTY;
    this.#lineLength = 0;
    this.#data = "";
    this.#dataBytes = 0;
    this.#eventType = "";
  }

  #decode(bytes) {
    return bytes.length === 0 ? "" : this.#text.decode(bytes);
  }
}

function indexOrEnd(bytes, byte, from) {
  const at = bytes.indexOf(byte, from);
  return at < 0 ? bytes.length : at;
}

function stripSpace(bytes) {
  return bytes.length > 0 && bytes[0] === SPACE ? bytes.subarray(1) : bytes;
}

/** The field name if it is one the rules know, else "". */
function fieldName(bytes) {
  if (bytes.length < 2 || bytes.length > 5) return "";
  return String.fromCharCode(...bytes);
}

/** UTF-8 length of `text`, decoded from `rawLength` bytes. */
function utf8Length(text, rawLength) {
  // Without replacements the decoded text re-encodes to the same bytes.
  if (!text.includes("\ufffd")) return rawLength;
  let bytes = 0;
  for (let i = 0; i < text.length; i++) {
    const unit = text.charCodeAt(i);
    if (unit < 0x80) bytes += 1;
    else if (unit < 0x800) bytes += 2;
    else if (unit >= 0xd800 && unit <= 0xdbff) {
      bytes += 4; // a pair: TextDecoder never yields a lone surrogate
      i++;
    } else bytes += 3;
  }
  return bytes;
}

/** A `retry:` value: ASCII digits only, at least one; milliseconds. */
function parseRetryField(bytes, text) {
  if (bytes.length === 0) return null;
  for (const b of bytes) if (b < 0x30 || b > 0x39) return null;
  return Number(text);
}

function checkCount(name, value) {
  if (!(Number.isInteger(value) && value >= 0)) {
    throw new RangeError(`${name} must be a non-negative integer, got ${value}`);
  }
  return value;
}

// ---------------------------------------------------------------------------
// Reconnect policy
// ---------------------------------------------------------------------------

/**
 * What a response's status and content type mean, as the Rust client's
 * `classify`: `{ verdict: "open" | "retry" | "fatal", reason }`.
 *
 * | status | verdict |
 * |---|---|
 * | 200 with `text/event-stream` (any case, parameters allowed) | open |
 * | 200 with another or no content type | fatal, "wrong-content-type" |
 * | other 2xx (204: the server says stop), 1xx, 3xx | fatal, "http-status" |
 * | 408, 429, 5xx | retry |
 * | other 4xx, anything outside 100..599 (0 too) | fatal, "http-status" |
 */
export function classify(status, contentType) {
  if (status === 200) {
    return isEventStream(contentType)
      ? { verdict: "open", reason: null }
      : { verdict: "fatal", reason: "wrong-content-type" };
  }
  if (status === 408 || status === 429 || (status >= 500 && status <= 599)) {
    return { verdict: "retry", reason: null };
  }
  return { verdict: "fatal", reason: "http-status" };
}

function isEventStream(contentType) {
  if (typeof contentType !== "string") return false;
  return contentType.split(";")[0].trim().toLowerCase() === "text/event-stream";
}

const DAYS = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
const IMF_FIXDATE = /^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), (\d{2}) ([A-Z][a-z]{2}) (\d{4}) (\d{2}):(\d{2}):(\d{2}) GMT$/;

/**
 * A `Retry-After` value in milliseconds from `nowMs` (epoch ms):
 * delta-seconds ("120") or an IMF-fixdate (a date in the past gives 0).
 * Anything else, including the obsolete date forms, gives null (ignored,
 * not an error). The value is not clamped here: the policy clamps delays.
 */
export function parseRetryAfter(value, nowMs) {
  if (typeof value !== "string") return null;
  const text = value.trim();
  if (/^[0-9]+$/.test(text)) return Number(text) * 1000;
  const m = IMF_FIXDATE.exec(text);
  if (!m || !DAYS.includes(m[1])) return null;
  const month = MONTHS.indexOf(m[3]);
  if (month < 0) return null;
  const [day, year, hour, minute, second] = [m[2], m[4], m[5], m[6], m[7]].map(Number);
  const leap = year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0);
  const maxDay = month === 1 ? (leap ? 29 : 28) : [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][month];
  if (day === 0 || day > maxDay || hour > 23 || minute > 59 || second > 60) return null;
  const at = Date.UTC(year, month, day, hour, minute, second);
  // Date.UTC maps years 0..99 to 1900..1999; those are long past either way.
  return Math.max(0, at - nowMs);
}

/** Clamps a delay to what a timer can wait: [0, MAX_TIMER_DELAY] ms. */
export function clampDelay(ms) {
  if (!(ms > 0)) return 0; // NaN and negatives too
  return Math.min(ms, MAX_TIMER_DELAY);
}

/** `min(cap, base * 2^(attempt - 1))`; from attempt 2, base >= 1 ms. */
export function backoffCeiling(base, cap, attempt) {
  if (attempt <= 1) return Math.min(base, cap);
  return Math.min(Math.max(base, MIN_GROWTH_BASE) * 2 ** (attempt - 1), cap);
}

/** A uniform whole number of ms in [0, ceiling], from `random` in [0, 1). */
export function fullJitter(ceiling, random) {
  const top = Math.floor(clampDelay(ceiling));
  const r = random >= 0 && random < 1 ? random : 0;
  return Math.min(top, Math.floor(r * (top + 1)));
}

/**
 * The reconnect state machine, ms-based, with the Rust policy's rules
 * (ssehub-core `reconnect`):
 *
 * - `start()` -> connect; `onResponse(status, contentType, retryAfterMs)`
 *   opens, retries or closes as `classify` says; `onConnectError()`,
 *   `onStreamEnd()`, `onStreamError()` schedule a retry;
 * - retry n waits a uniform delay in [0, min(maxDelay, base * 2^(n-1))]
 *   (base: the server's last `retry:`, else `baseDelay`), at least the
 *   `Retry-After` (the cap does not cut it), clamped to MAX_TIMER_DELAY;
 * - `maxAttempts` consecutive failed retries, then close
 *   ("attempts-exhausted");
 * - the failure count resets when a connection delivers an event other than
 *   its greeting (`greetingEvents`: the hub's `welcome` and `reset`, sent
 *   at the start of every stream), when `onHealthy()` reports it stayed open
 *   long enough, and on `reconnect()`. A server that accepts, greets and
 *   hangs up therefore keeps backing off (with `retry: 0` the first retry
 *   is still immediate);
 * - the fatal event closes ("fatal-event"); `close()` is local and final;
 *   `reconnect()` revives anything but a local close;
 * - `pause()` (page hidden) drops the connection without counting a
 *   failure; `resume()` connects again with the last event id.
 *
 * Actions: `{ type: "continue" }`, `{ type: "connect", lastEventId }`,
 * `{ type: "connect-after", delay, attempt, lastEventId }`,
 * `{ type: "close", info: { reason, status, isLocal, fatal } }`,
 * `{ type: "pause" }`. `lastEventId` is null when empty.
 *
 * States (`state.name`): "connecting", "open", "reconnecting" (with
 * `attempt`, `delay`), "paused", "closed" (with `info`).
 */
export class ReconnectPolicy {
  #baseDelay;
  #maxDelay;
  #maxAttempts;
  #fatalEvent;
  #greeting;
  #random;
  #state = { name: "connecting" };
  #failures = 0;
  #serverRetry = null;
  #lastEventId = "";

  constructor({
    baseDelay = DEFAULT_BASE_DELAY,
    maxDelay = DEFAULT_MAX_DELAY,
    maxAttempts = Infinity,
    fatalEvent = null,
    greetingEvents = ["welcome", "reset"],
    random = Math.random,
    lastEventId = "",
  } = {}) {
    this.#baseDelay = checkDelay("baseDelay", baseDelay);
    this.#maxDelay = checkDelay("maxDelay", maxDelay);
    if (!(maxAttempts === Infinity || (Number.isInteger(maxAttempts) && maxAttempts >= 0))) {
      throw new RangeError(`maxAttempts must be a non-negative integer or Infinity, got ${maxAttempts}`);
    }
    this.#maxAttempts = maxAttempts;
    this.#fatalEvent = checkName("fatalEvent", fatalEvent);
    this.#greeting = new Set(greetingEvents);
    if (typeof random !== "function") throw new TypeError("random must be a function");
    this.#random = random;
    this.#lastEventId = String(lastEventId);
  }

  /** The current state: `{ name, ... }`. */
  get state() {
    return this.#state;
  }

  /** The last event id seen ("" if none). */
  get lastEventId() {
    return this.#lastEventId;
  }

  /** Consecutive failures counted now. */
  get failures() {
    return this.#failures;
  }

  /** The backoff base now: the server's `retry:` if it sent one. */
  get baseDelay() {
    return this.#serverRetry ?? this.#baseDelay;
  }

  start() {
    return this.#state.name === "connecting" ? this.#connectNow() : CONTINUE;
  }

  onResponse(status, contentType, retryAfter = null) {
    if (!this.#isConnecting()) return CONTINUE;
    const { verdict, reason } = classify(status, contentType);
    if (verdict === "open") {
      this.#state = { name: "open" };
      return CONTINUE;
    }
    if (verdict === "retry") return this.#schedule(status, retryAfter);
    return this.#closeWith({ reason, status, isLocal: false, fatal: true });
  }

  onConnectError() {
    return this.#isConnecting() ? this.#schedule(null, null) : CONTINUE;
  }

  /** A delivered event of type `type` whose last event id is `lastEventId`. */
  onEvent(type, lastEventId) {
    if (this.#state.name !== "open") return CONTINUE;
    this.#lastEventId = String(lastEventId);
    if (!this.#greeting.has(type)) this.#failures = 0;
    if (this.#fatalEvent !== null && type === this.#fatalEvent) {
      return this.#closeWith({ reason: "fatal-event", status: null, isLocal: false, fatal: true });
    }
    return CONTINUE;
  }

  onLastEventId(id) {
    if (this.#state.name === "open") this.#lastEventId = String(id);
    return CONTINUE;
  }

  onRetry(ms) {
    if (this.#state.name !== "closed") this.#serverRetry = clampDelay(ms);
    return CONTINUE;
  }

  /** The open connection stayed up for the healthy period. */
  onHealthy() {
    if (this.#state.name === "open") this.#failures = 0;
    return CONTINUE;
  }

  onStreamEnd() {
    return this.#state.name === "open" ? this.#schedule(null, null) : CONTINUE;
  }

  onStreamError() {
    return this.onStreamEnd();
  }

  close() {
    if (this.#state.name === "closed") {
      // Already stopped by the server: make the stop final.
      if (!this.#state.info.isLocal) this.#state = { name: "closed", info: localClose() };
      return CONTINUE;
    }
    return this.#closeWith(localClose());
  }

  reconnect() {
    if (this.#state.name === "closed" && this.#state.info.isLocal) return CONTINUE;
    this.#failures = 0;
    this.#state = { name: "connecting" };
    return this.#connectNow();
  }

  pause() {
    if (this.#state.name === "closed" || this.#state.name === "paused") return CONTINUE;
    this.#state = { name: "paused" };
    return { type: "pause" };
  }

  resume() {
    if (this.#state.name !== "paused") return CONTINUE;
    this.#state = { name: "connecting" };
    return this.#connectNow();
  }

  #isConnecting() {
    return this.#state.name === "connecting" || this.#state.name === "reconnecting";
  }

  #connectNow() {
    return { type: "connect", lastEventId: this.#lastEventId || null };
  }

  #closeWith(info) {
    this.#state = { name: "closed", info };
    return { type: "close", info };
  }

  #schedule(status, retryAfter) {
    this.#failures += 1;
    if (this.#failures > this.#maxAttempts) {
      return this.#closeWith({ reason: "attempts-exhausted", status, isLocal: false, fatal: false });
    }
    const ceiling = backoffCeiling(this.baseDelay, this.#maxDelay, this.#failures);
    const jitter = fullJitter(ceiling, this.#random());
    const delay = clampDelay(Math.max(jitter, retryAfter ?? 0));
    const attempt = this.#failures;
    this.#state = { name: "reconnecting", attempt, delay };
    return { type: "connect-after", delay, attempt, lastEventId: this.#lastEventId || null };
  }
}

const CONTINUE = Object.freeze({ type: "continue" });

function localClose() {
  return { reason: "local", status: null, isLocal: true, fatal: false };
}

function checkDelay(name, value) {
  if (typeof value !== "number" || !(value >= 0)) {
    throw new RangeError(`${name} must be a non-negative number of ms, got ${value}`);
  }
  return clampDelay(value);
}

function checkName(name, value) {
  if (value === null || value === undefined) return null;
  if (typeof value !== "string") throw new TypeError(`${name} must be a string or null`);
  return value;
}

// ---------------------------------------------------------------------------
// The EventSource-like client
// ---------------------------------------------------------------------------

/**
 * A connection error or failure, dispatched as `error`.
 *
 * `kind`: "network" (fetch failed, or the stream broke), "timeout" (no
 * response head, or no bytes, within `readTimeout`), "parse" (a line or an
 * event over its limit), "status" (a retried status: 5xx, 408, 429),
 * "fatal-status" (a status or content type that stops it), "fatal-event"
 * (the server's fatal event). `willRetry` says whether a reconnect is
 * scheduled (then `attempt` and `delay` say which and when); when it is
 * not, a `closed` state event follows, whose `info.reason` says why
 * ("http-status", "wrong-content-type", "fatal-event" or
 * "attempts-exhausted": the final failure after `maxAttempts`).
 */
export class SseHubErrorEvent extends Event {
  constructor(kind, detail) {
    super("error");
    this.kind = kind;
    this.status = detail.status ?? null;
    this.retryAfter = detail.retryAfter ?? null;
    this.message = detail.message ?? kind;
    this.cause = detail.cause ?? null;
    this.willRetry = detail.willRetry;
    this.attempt = detail.attempt ?? null;
    this.delay = detail.delay ?? null;
    this.closeInfo = detail.closeInfo ?? null;
  }
}

/**
 * A state change, dispatched as `statechange` and as its state's own name
 * (`connecting`, `open`, `paused`, `closed`). `attempt` and `delay` (ms)
 * describe a scheduled (re)connection (attempt 0: the first or a manual
 * one); `info` is the close info of `closed`.
 */
export class SseHubStateEvent extends Event {
  constructor(type, state, detail = {}) {
    super(type);
    this.state = state;
    this.attempt = detail.attempt ?? null;
    this.delay = detail.delay ?? null;
    this.info = detail.info ?? null;
  }
}

/**
 * A business error the server sent as an event (`event: error` by
 * default, data JSON `{"code": ..., "message": ...}`), dispatched as
 * `server-error`: never as `error`, which is for connection errors only.
 * `code` and `message` are null when the data is not such JSON.
 */
export class SseHubServerErrorEvent extends Event {
  constructor(data, lastEventId, origin) {
    super("server-error");
    this.data = data;
    this.lastEventId = lastEventId;
    this.origin = origin;
    this.code = null;
    this.message = null;
    try {
      const parsed = JSON.parse(data);
      if (parsed !== null && typeof parsed === "object") {
        this.code = parsed.code ?? null;
        this.message = parsed.message ?? null;
      }
    } catch {
      // Not JSON: `data` has it all.
    }
  }
}

/** Names of the events the client itself dispatches. */
const LIFECYCLE = new Set(["open", "error", "connecting", "paused", "closed", "statechange", "server-error"]);

const realClock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (id) => clearTimeout(id),
};

/**
 * An EventSource with the Rust client's policy. See the module header.
 *
 * Options (all optional):
 * - `headers`: object, `Headers`, or a function (may be async) returning
 *   them, called before every connection (e.g. to refresh a token);
 * - `lastEventId`: the id to resume from on the first connection;
 * - `withCredentials`: send cookies cross-origin (fetch `credentials`);
 * - `fatalEvent` ("fatal"), `resetEvent` ("reset"), `welcomeEvent`
 *   ("welcome"), `serverErrorEvent` ("error"): event names, null to
 *   disable. The reset event is dispatched as `reset` whatever its name;
 * - `maxAttempts` (Infinity), `baseDelay` (3000), `maxDelay` (60000),
 *   `healthyAfter` (30000): the backoff;
 * - `readTimeout` (45000; 0 or null: none): liveness;
 * - `pauseWhenHidden` (false): close while the page is hidden, resume with
 *   Last-Event-ID when it is visible again;
 * - `maxLineLength`, `maxEventLength`: parser limits in bytes;
 * - `fetch`, `clock` ({ now, setTimeout, clearTimeout }), `random`
 *   (() => [0, 1)), `document`: injected for tests.
 *
 * Events: `message` and every named event (MessageEvent; a server event
 * named like one of the client's own events is dispatched as
 * `server:<name>`), `reset`, `server-error`, `error` (SseHubErrorEvent),
 * `statechange`, `connecting`, `open`, `paused`, `closed`
 * (SseHubStateEvent). `onmessage`, `onerror`, `onopen` work as on
 * EventSource.
 */
export class SseHub extends EventTarget {
  static CONNECTING = CONNECTING;
  static OPEN = OPEN;
  static CLOSED = CLOSED;

  #url;
  #options;
  #policy;
  #fetch;
  #clock;
  #document;
  #readyState = CONNECTING;
  /** Identifies the current connection; bumped to disown async work. */
  #generation = 0;
  #abort = null;
  #timer = null;
  #liveness = null;
  #healthy = null;
  /** When the pending reconnect is due (clock ms), for a resume. */
  #retryAt = 0;
  #handlers = new Map();
  #onVisibility = null;

  constructor(url, options = {}) {
    super();
    const base = globalThis.location?.href;
    this.#url = (base === undefined ? new URL(url) : new URL(url, base)).href;
    const o = normalizeOptions(options);
    this.#options = o;
    this.#fetch = o.fetch;
    this.#clock = o.clock;
    this.#document = o.document;
    this.#policy = new ReconnectPolicy({
      baseDelay: o.baseDelay,
      maxDelay: o.maxDelay,
      maxAttempts: o.maxAttempts,
      fatalEvent: o.fatalEvent,
      greetingEvents: [o.welcomeEvent, o.resetEvent].filter((n) => n !== null),
      random: o.random,
      lastEventId: o.lastEventId,
    });
    if (o.pauseWhenHidden && this.#document) {
      this.#onVisibility = () => this.#visibilityChanged();
      this.#document.addEventListener("visibilitychange", this.#onVisibility);
    }
    // Start after the constructor returns, as EventSource does, so that
    // listeners added right after `new` see the first state change.
    const generation = this.#generation;
    Promise.resolve().then(() => {
      if (generation !== this.#generation) return;
      if (this.#onVisibility && this.#document.visibilityState === "hidden") {
        this.#run(this.#policy.pause());
      } else {
        this.#run(this.#policy.start());
      }
    });
  }

  get url() {
    return this.#url;
  }

  get readyState() {
    return this.#readyState;
  }

  get withCredentials() {
    return this.#options.withCredentials;
  }

  /** The last event id seen: what the next reconnect sends. */
  get lastEventId() {
    return this.#policy.lastEventId;
  }

  /** The policy's state name: connecting, open, reconnecting, paused or closed. */
  get state() {
    return this.#policy.state.name;
  }

  get onopen() {
    return this.#handlers.get("open") ?? null;
  }
  set onopen(fn) {
    this.#setHandler("open", fn);
  }
  get onmessage() {
    return this.#handlers.get("message") ?? null;
  }
  set onmessage(fn) {
    this.#setHandler("message", fn);
  }
  get onerror() {
    return this.#handlers.get("error") ?? null;
  }
  set onerror(fn) {
    this.#setHandler("error", fn);
  }

  /** Closes for good: nothing is fetched or dispatched afterwards. */
  close() {
    const action = this.#policy.close();
    this.#teardown();
    this.#readyState = CLOSED;
    if (this.#onVisibility) {
      this.#document.removeEventListener("visibilitychange", this.#onVisibility);
      this.#onVisibility = null;
    }
    if (action.type === "close") this.#setState("closed", { info: action.info });
  }

  /**
   * Reconnects now with the last event id, resetting the backoff: for a
   * "retry" button after a fatal stop or exhausted attempts. Returns false
   * (and does nothing) after `close()`.
   */
  reconnect() {
    const action = this.#policy.reconnect();
    if (action.type === "continue") return false;
    this.#run(action);
    return true;
  }

  #setHandler(type, fn) {
    if (!this.#handlers.has(type)) {
      this.addEventListener(type, (event) => {
        const handler = this.#handlers.get(type);
        if (typeof handler === "function") handler.call(this, event);
      });
    }
    this.#handlers.set(type, typeof fn === "function" ? fn : null);
  }

  /** Acts on a policy action. */
  #run(action) {
    switch (action.type) {
      case "connect":
        this.#teardown();
        this.#readyState = CONNECTING;
        this.#retryAt = 0;
        if (this.#setState("connecting", { attempt: 0, delay: 0 })) this.#connect();
        break;
      case "connect-after": {
        this.#teardown();
        this.#readyState = CONNECTING;
        this.#retryAt = this.#clock.now() + action.delay;
        const generation = this.#generation;
        if (!this.#setState("connecting", { attempt: action.attempt, delay: action.delay })) break;
        if (generation !== this.#generation) break;
        this.#timer = this.#clock.setTimeout(() => {
          this.#timer = null;
          if (generation === this.#generation) this.#connect();
        }, action.delay);
        break;
      }
      case "close":
        this.#teardown();
        this.#readyState = CLOSED;
        this.#setState("closed", { info: action.info });
        break;
      case "pause":
        this.#teardown();
        this.#readyState = CONNECTING;
        this.#setState("paused");
        break;
      default:
        break;
    }
  }

  /** Drops the connection and every timer; disowns pending async work. */
  #teardown() {
    this.#generation += 1;
    if (this.#abort) {
      this.#abort.abort();
      this.#abort = null;
    }
    for (const timer of [this.#timer, this.#liveness, this.#healthy]) {
      if (timer !== null) this.#clock.clearTimeout(timer);
    }
    this.#timer = this.#liveness = this.#healthy = null;
  }

  /** Dispatches the state change; false if a listener took over. */
  #setState(state, detail = {}) {
    const generation = this.#generation;
    this.dispatchEvent(new SseHubStateEvent("statechange", state, detail));
    if (generation !== this.#generation) return false;
    this.dispatchEvent(new SseHubStateEvent(state, state, detail));
    return generation === this.#generation;
  }

  async #connect() {
    const generation = this.#generation;
    const abort = new AbortController();
    this.#abort = abort;
    this.#armLiveness(generation);
    let response;
    try {
      const headers = new Headers(await resolveHeaders(this.#options.headers));
      headers.set("Accept", "text/event-stream");
      const lastEventId = this.#policy.lastEventId;
      if (lastEventId !== "") headers.set("Last-Event-ID", toByteString(lastEventId));
      if (generation !== this.#generation) return;
      response = await this.#fetch(this.#url, {
        method: "GET",
        headers,
        signal: abort.signal,
        credentials: this.#options.withCredentials ? "include" : "same-origin",
        cache: "no-store",
        redirect: "follow",
      });
    } catch (error) {
      if (generation !== this.#generation) return;
      this.#fail(generation, "network", { cause: error, message: describe(error) }, this.#policy.onConnectError());
      return;
    }
    if (generation !== this.#generation) {
      discard(response);
      return;
    }
    const status = response.status;
    const contentType = response.headers.get("content-type");
    const retryAfter = parseRetryAfter(response.headers.get("retry-after"), this.#clock.now());
    const action = this.#policy.onResponse(status, contentType, retryAfter);
    if (this.#policy.state.name !== "open") {
      discard(response);
      const fatal = classify(status, contentType).verdict === "fatal";
      const message = fatal
        ? `the server answered ${status}${contentType ? ` (${contentType})` : ""}: not retried`
        : `the server answered ${status}`;
      this.#fail(generation, fatal ? "fatal-status" : "status", { status, retryAfter, message }, action);
      return;
    }
    this.#readyState = OPEN;
    this.#armLiveness(generation);
    if (this.#options.healthyAfter > 0) {
      this.#healthy = this.#clock.setTimeout(() => {
        this.#healthy = null;
        if (generation === this.#generation) this.#policy.onHealthy();
      }, this.#options.healthyAfter);
    }
    if (!this.#setState("open")) return;
    const origin = new URL(response.url || this.#url).origin;
    await this.#read(generation, response.body, origin);
  }

  async #read(generation, body, origin) {
    const o = this.#options;
    const parser = new SseParser({
      maxLineLength: o.maxLineLength,
      maxEventLength: o.maxEventLength,
      lastEventId: this.#policy.lastEventId,
    });
    if (!body) {
      this.#run(this.#policy.onStreamEnd());
      return;
    }
    const reader = body.getReader();
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (generation !== this.#generation) return;
        if (done) {
          this.#teardown();
          this.#run(this.#policy.onStreamEnd());
          return;
        }
        this.#armLiveness(generation);
        for (const frame of parser.feed(value)) {
          this.#frame(frame, origin);
          if (generation !== this.#generation) return;
        }
        if (parser.error) {
          const error = parser.error;
          this.#fail(generation, "parse", { cause: error, message: error.message }, this.#policy.onStreamError());
          return;
        }
      }
    } catch (error) {
      if (generation !== this.#generation) return;
      this.#fail(generation, "network", { cause: error, message: describe(error) }, this.#policy.onStreamError());
    } finally {
      if (generation !== this.#generation) reader.cancel().catch(() => {});
    }
  }

  #frame(frame, origin) {
    switch (frame.type) {
      case "retry":
        this.#policy.onRetry(frame.ms);
        break;
      case "id":
        this.#policy.onLastEventId(frame.id);
        break;
      case "event": {
        const generation = this.#generation;
        const action = this.#policy.onEvent(frame.event, frame.lastEventId);
        this.#deliver(frame, origin);
        if (action.type === "close" && generation === this.#generation) {
          this.#fail(generation, "fatal-event", { message: `the server sent its fatal event "${frame.event}"` }, action);
        }
        break;
      }
      default:
        break;
    }
  }

  #deliver(frame, origin) {
    const o = this.#options;
    if (frame.event === o.serverErrorEvent) {
      this.dispatchEvent(new SseHubServerErrorEvent(frame.data, frame.lastEventId, origin));
      return;
    }
    let type = frame.event;
    if (type === o.resetEvent) type = "reset";
    else if (LIFECYCLE.has(type) || (type === "reset" && o.resetEvent !== null)) type = `server:${type}`;
    this.dispatchEvent(newMessageEvent(type, frame.data, frame.lastEventId, origin));
  }

  /** Dispatches the error, then acts on the policy's answer to it. */
  #fail(generation, kind, detail, action) {
    if (generation !== this.#generation) return;
    this.#teardown();
    const retrying = action.type === "connect-after";
    this.#readyState = action.type === "close" ? CLOSED : CONNECTING;
    const event = new SseHubErrorEvent(kind, {
      ...detail,
      willRetry: retrying,
      attempt: retrying ? action.attempt : null,
      delay: retrying ? action.delay : null,
      closeInfo: action.type === "close" ? action.info : null,
    });
    const mine = this.#generation;
    this.dispatchEvent(event);
    if (mine === this.#generation) this.#run(action);
  }

  #armLiveness(generation) {
    if (this.#liveness !== null) this.#clock.clearTimeout(this.#liveness);
    this.#liveness = null;
    const timeout = this.#options.readTimeout;
    if (!(timeout > 0)) return;
    this.#liveness = this.#clock.setTimeout(() => {
      this.#liveness = null;
      if (generation !== this.#generation) return;
      const open = this.#policy.state.name === "open";
      const action = open ? this.#policy.onStreamError() : this.#policy.onConnectError();
      const message = open
        ? `no bytes for ${timeout} ms: the connection is presumed dead`
        : `no response within ${timeout} ms`;
      this.#fail(generation, "timeout", { message }, action);
    }, timeout);
  }

  #visibilityChanged() {
    if (this.#document.visibilityState === "hidden") {
      this.#run(this.#policy.pause());
      return;
    }
    const action = this.#policy.resume();
    if (action.type !== "connect") return;
    // A backoff (or Retry-After) still running when the page was hidden
    // keeps its deadline.
    const remaining = this.#retryAt - this.#clock.now();
    if (remaining > 0) {
      this.#run({ type: "connect-after", delay: clampDelay(remaining), attempt: this.#policy.failures, lastEventId: action.lastEventId });
    } else {
      this.#run(action);
    }
  }
}

function normalizeOptions(options) {
  if (options === null || typeof options !== "object") throw new TypeError("options must be an object");
  const has = (name) => options[name] !== undefined;
  const name = (key, fallback) => (has(key) ? checkName(key, options[key]) : fallback);
  const o = {
    headers: has("headers") ? options.headers : {},
    lastEventId: has("lastEventId") && options.lastEventId !== null ? checkId(String(options.lastEventId)) : "",
    withCredentials: Boolean(options.withCredentials),
    fatalEvent: name("fatalEvent", "fatal"),
    resetEvent: name("resetEvent", "reset"),
    welcomeEvent: name("welcomeEvent", "welcome"),
    serverErrorEvent: name("serverErrorEvent", "error"),
    maxAttempts: has("maxAttempts") ? options.maxAttempts : Infinity,
    baseDelay: has("baseDelay") ? options.baseDelay : DEFAULT_BASE_DELAY,
    maxDelay: has("maxDelay") ? options.maxDelay : DEFAULT_MAX_DELAY,
    healthyAfter: has("healthyAfter") ? checkDelay("healthyAfter", options.healthyAfter) : DEFAULT_HEALTHY_AFTER,
    readTimeout:
      !has("readTimeout") ? DEFAULT_READ_TIMEOUT : options.readTimeout === null ? 0 : checkDelay("readTimeout", options.readTimeout),
    pauseWhenHidden: Boolean(options.pauseWhenHidden),
    maxLineLength: has("maxLineLength") ? checkCount("maxLineLength", options.maxLineLength) : DEFAULT_MAX_LINE_LENGTH,
    maxEventLength: has("maxEventLength") ? checkCount("maxEventLength", options.maxEventLength) : DEFAULT_MAX_EVENT_LENGTH,
    fetch: has("fetch") ? options.fetch : globalThis.fetch?.bind(globalThis),
    clock: has("clock") ? options.clock : realClock,
    random: has("random") ? options.random : Math.random,
    document: has("document") ? options.document : globalThis.document ?? null,
  };
  if (typeof o.fetch !== "function") throw new TypeError("no fetch: pass options.fetch");
  for (const method of ["now", "setTimeout", "clearTimeout"]) {
    if (typeof o.clock?.[method] !== "function") throw new TypeError(`clock.${method} must be a function`);
  }
  if (typeof o.headers !== "function") new Headers(o.headers); // throws a TypeError on bad headers now
  return o;
}

function checkId(id) {
  // The parser never yields such an id; the Last-Event-ID header cannot carry one.
  if (/[\0\r\n]/.test(id)) throw new TypeError("lastEventId must not contain NUL, CR or LF");
  return id;
}

async function resolveHeaders(headers) {
  return typeof headers === "function" ? await headers() : headers;
}

/** The UTF-8 bytes of `text` as a ByteString: what EventSource sends. */
function toByteString(text) {
  // eslint-disable-next-line no-control-regex
  if (/^[\x00-\x7f]*$/.test(text)) return text;
  const bytes = new TextEncoder().encode(text);
  let out = "";
  for (let i = 0; i < bytes.length; i += 4096) {
    out += String.fromCharCode(...bytes.subarray(i, i + 4096));
  }
  return out;
}

function newMessageEvent(type, data, lastEventId, origin) {
  if (typeof MessageEvent === "function") return new MessageEvent(type, { data, lastEventId, origin });
  const event = new Event(type);
  Object.assign(event, { data, lastEventId, origin });
  return event;
}

function discard(response) {
  response?.body?.cancel().catch(() => {});
}

function describe(error) {
  return error instanceof Error ? error.message : String(error);
}

export default SseHub;
