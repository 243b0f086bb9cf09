// Test doubles for ssehub.js: a fake clock with timers, a seeded random
// source, a scripted fetch whose response bodies the test writes, and a
// document whose visibility the test flips. No dependencies.

/** A deterministic source of numbers in [0, 1) (mulberry32). */
export function seededRandom(seed) {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A random source that returns the given values in turn, then `last`. */
export function scriptedRandom(values, last = 0) {
  let i = 0;
  return () => (i < values.length ? values[i++] : last);
}

/** Lets pending promise callbacks (fetch, stream reads) run. */
export async function settle(rounds = 20) {
  for (let i = 0; i < rounds; i++) await new Promise((resolve) => setImmediate(resolve));
}

/** Time that moves only when the test says so. */
export class FakeClock {
  time = 1_000_000;
  #next = 1;
  timers = new Map();

  now() {
    return this.time;
  }

  setTimeout(fn, ms) {
    if (!(ms >= 0 && ms <= 2147483647)) throw new RangeError(`timer delay out of range: ${ms}`);
    const id = this.#next++;
    this.timers.set(id, { at: this.time + ms, fn, ms });
    return id;
  }

  clearTimeout(id) {
    this.timers.delete(id);
  }

  /** Delays of the pending timers, soonest first. */
  pending() {
    return [...this.timers.values()].map((t) => t.at - this.time).sort((a, b) => a - b);
  }

  /** Moves time forward by `ms`, firing due timers in order (settling between). */
  async advance(ms) {
    await settle(); // what is already under way arms its timers first
    const end = this.time + ms;
    for (;;) {
      let due = null;
      for (const [id, t] of this.timers) {
        if (t.at <= end && (due === null || t.at < due[1].at)) due = [id, t];
      }
      if (due === null) break;
      this.timers.delete(due[0]);
      this.time = Math.max(this.time, due[1].at);
      due[1].fn();
      await settle();
    }
    this.time = end;
    await settle();
  }
}

/** A response body the test writes to. */
export class Body {
  constructor() {
    this.stream = new ReadableStream({
      start: (controller) => {
        this.controller = controller;
      },
      cancel: () => {
        this.cancelled = true;
      },
    });
    this.cancelled = false;
    this.closed = false;
  }

  write(text) {
    if (this.closed || this.cancelled) return;
    this.controller.enqueue(typeof text === "string" ? new TextEncoder().encode(text) : text);
  }

  end() {
    if (this.closed || this.cancelled) return;
    this.closed = true;
    this.controller.close();
  }

  fail(error = new TypeError("network error")) {
    if (this.closed || this.cancelled) return;
    this.closed = true;
    this.controller.error(error);
  }
}

/**
 * A scripted server behind a fake fetch. Every request is recorded in
 * `requests` ({ url, headers, init, respond(...), fail(...) }); the test
 * answers it, or queues answers with `next(...)` beforehand.
 */
export class FakeServer {
  requests = [];
  #waiting = [];

  get fetch() {
    return (url, init) =>
      new Promise((resolve, reject) => {
        const request = {
          url,
          init,
          headers: new Headers(init.headers),
          answered: false,
          body: null,
          respond: (status = 200, headers = { "content-type": "text/event-stream" }) => {
            if (request.answered) throw new Error("answered twice");
            request.answered = true;
            const body = new Body();
            request.body = body;
            init.signal?.addEventListener("abort", () => body.fail(new DOMException("aborted", "AbortError")));
            resolve(new Response(body.stream, { status: status === 204 ? 200 : status, headers }));
            if (status === 204) throw new Error("use respondEmpty for bodiless statuses");
            return body;
          },
          respondEmpty: (status, headers = {}) => {
            request.answered = true;
            resolve(new Response(null, { status, headers }));
          },
          fail: (error = new TypeError("fetch failed")) => {
            request.answered = true;
            reject(error);
          },
        };
        init.signal?.addEventListener("abort", () => {
          if (!request.answered) {
            request.answered = true;
            reject(new DOMException("aborted", "AbortError"));
          }
        });
        this.requests.push(request);
        const waiter = this.#waiting.shift();
        if (waiter) waiter(request);
      });
  }

  /** The latest request. */
  get last() {
    return this.requests[this.requests.length - 1];
  }
}

/** A document whose `visibilityState` the test sets. */
export class FakeDocument extends EventTarget {
  visibilityState = "visible";

  setVisibility(state) {
    this.visibilityState = state;
    this.dispatchEvent(new Event("visibilitychange"));
  }
}

/** Records what an SseHub dispatches, in order, as compact strings. */
export function recorder(hub, types) {
  const log = [];
  for (const type of types) {
    hub.addEventListener(type, (e) => {
      if (e.kind !== undefined) log.push(`error:${e.kind}${e.status ? `:${e.status}` : ""}${e.willRetry ? "" : ":final"}`);
      else if (e.state !== undefined && type !== "statechange") log.push(`state:${e.state}`);
      else if (type === "statechange") return;
      else if (e.code !== undefined) log.push(`server-error:${e.code}`);
      else log.push(`${type}:${e.data}`);
    });
  }
  return log;
}
