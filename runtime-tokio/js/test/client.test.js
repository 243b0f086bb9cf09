// SseHub, the EventSource-like driver, against a scripted fetch on a fake
// clock: what it sends, what it dispatches, when it reconnects.

import { test } from "node:test";
import assert from "node:assert/strict";
import { SseHub, MAX_TIMER_DELAY, CONNECTING, OPEN, CLOSED } from "../ssehub.js";
import { FakeClock, FakeServer, FakeDocument, recorder, settle, scriptedRandom } from "../testing/fakes.js";

const URL_ = "http://hub.test/events?topic=a";
const EVENTS = ["message", "welcome", "fatal", "reset", "server-error", "error", "statechange", "connecting", "open", "paused", "closed"];
const TOP = 1 - 2 ** -53;

function setup(options = {}) {
  const clock = new FakeClock();
  const server = new FakeServer();
  const hub = new SseHub(URL_, { fetch: server.fetch, clock, random: () => TOP, ...options });
  const log = recorder(hub, EVENTS);
  return { clock, server, hub, log };
}

test("connects with Accept and the caller's headers, dispatches events like EventSource", async () => {
  const { server, hub, log } = setup({ headers: { Authorization: "Bearer s3cret" } });
  assert.equal(hub.readyState, CONNECTING);
  await settle();
  assert.equal(server.requests.length, 1);
  const request = server.last;
  assert.equal(request.url, URL_);
  assert.equal(request.headers.get("accept"), "text/event-stream");
  assert.equal(request.headers.get("authorization"), "Bearer s3cret");
  assert.equal(request.headers.get("last-event-id"), null);
  assert.equal(request.init.credentials, "same-origin");
  assert.equal(request.init.cache, "no-store");
  const messages = [];
  hub.onmessage = (e) => messages.push([e.data, e.lastEventId, e.origin]);
  let opened = 0;
  hub.onopen = () => opened++;
  const body = request.respond();
  await settle();
  assert.equal(hub.readyState, OPEN);
  body.write('retry: 3000\nevent: welcome\ndata: {"clientId":"1.1"}\n\nid: 9-1\ndata: hel');
  body.write("lo\n\nevent: custom\ndata: x\n\n");
  await settle();
  assert.deepEqual(messages, [["hello", "9-1", "http://hub.test"]]);
  assert.equal(opened, 1);
  assert.equal(hub.lastEventId, "9-1");
  assert.deepEqual(log, ["state:connecting", "state:open", 'welcome:{"clientId":"1.1"}', "message:hello"]);
  hub.close();
  assert.equal(hub.readyState, CLOSED);
  assert.deepEqual(log.slice(-1), ["state:closed"]);
});

test("a stream that ends reconnects after the jittered retry, sending Last-Event-ID", async () => {
  const { clock, server, hub, log } = setup();
  await settle();
  const body = server.last.respond();
  body.write("retry: 1000\nid: 9-4\ndata: a\n\n");
  body.end();
  await settle();
  assert.equal(hub.readyState, CONNECTING);
  assert.deepEqual(log.slice(-1), ["state:connecting"]);
  assert.deepEqual(clock.pending(), [1000], "attempt 1 waits up to the server's retry");
  await clock.advance(999);
  assert.equal(server.requests.length, 1);
  await clock.advance(1);
  assert.equal(server.requests.length, 2);
  assert.equal(server.last.headers.get("last-event-id"), "9-4");
  assert.ok(!log.some((l) => l.startsWith("error")), "a clean end is not an error");
  // The new connection's events without an id carry the resumed one.
  const seen = [];
  hub.addEventListener("message", (e) => seen.push(e.lastEventId));
  server.last.respond().write("data: b\n\n");
  await settle();
  assert.deepEqual(seen, ["9-4"]);
  hub.close();
});

test("204 stops for good: fatal-status, closed, no further request", async () => {
  const { clock, server, hub, log } = setup();
  await settle();
  server.last.respondEmpty(204);
  await settle();
  assert.equal(hub.readyState, CLOSED);
  assert.deepEqual(log, ["state:connecting", "error:fatal-status:204:final", "state:closed"]);
  await clock.advance(24 * 3600 * 1000);
  assert.equal(server.requests.length, 1);
  assert.equal(clock.timers.size, 0);
});

test("401, 403, 404 and 410 are fatal; 408, 429, 500 and 503 are retried", async () => {
  for (const status of [401, 403, 404, 410]) {
    const { server, hub, log } = setup();
    await settle();
    let info = null;
    hub.addEventListener("closed", (e) => (info = e.info));
    server.last.respondEmpty(status, { "content-type": "application/json" });
    await settle();
    assert.equal(hub.readyState, CLOSED, `${status}`);
    assert.deepEqual(info, { reason: "http-status", status, isLocal: false, fatal: true });
    assert.deepEqual(log.slice(-2), [`error:fatal-status:${status}:final`, "state:closed"]);
  }
  for (const status of [408, 429, 500, 503]) {
    const { clock, server, hub, log } = setup({ baseDelay: 100 });
    await settle();
    server.last.respondEmpty(status);
    await settle();
    assert.equal(hub.readyState, CONNECTING, `${status}`);
    assert.deepEqual(log.slice(-2), [`error:status:${status}`, "state:connecting"]);
    await clock.advance(100);
    assert.equal(server.requests.length, 2, `${status} retried`);
    hub.close();
  }
});

test("a 200 with another content type is fatal, and its body is not read", async () => {
  const { server, hub, log } = setup();
  await settle();
  let info = null;
  hub.addEventListener("closed", (e) => (info = e.info));
  const body = server.last.respond(200, { "content-type": "text/html" });
  body.write("data: not for you\n\n");
  await settle();
  assert.deepEqual(info, { reason: "wrong-content-type", status: 200, isLocal: false, fatal: true });
  assert.deepEqual(log.slice(1), ["error:fatal-status:200:final", "state:closed"]);
  assert.ok(body.cancelled, "the body was cancelled");
});

test("503 with Retry-After waits at least that long, beyond the cap", async () => {
  const { clock, server, hub } = setup({ baseDelay: 10, maxDelay: 1000 });
  await settle();
  let error = null;
  hub.onerror = (e) => (error = e);
  server.last.respondEmpty(503, { "retry-after": "5" });
  await settle();
  assert.equal(error.kind, "status");
  assert.equal(error.status, 503);
  assert.equal(error.retryAfter, 5000);
  assert.equal(error.willRetry, true);
  assert.equal(error.attempt, 1);
  assert.equal(error.delay, 5000);
  await clock.advance(4999);
  assert.equal(server.requests.length, 1);
  await clock.advance(1);
  assert.equal(server.requests.length, 2);
  hub.close();
});

test("a Retry-After of u64::MAX seconds arms a valid timer (clamped), never a tight loop", async () => {
  const { clock, server, hub } = setup();
  await settle();
  server.last.respondEmpty(503, { "retry-after": "18446744073709551615" });
  await settle();
  assert.deepEqual(clock.pending(), [MAX_TIMER_DELAY]);
  await clock.advance(1000);
  assert.equal(server.requests.length, 1);
  hub.close();
  // And a retry: of 400 digits.
  const second = setup();
  await settle();
  const body = second.server.last.respond();
  body.write(`retry: ${"9".repeat(400)}\ndata: x\n\n`);
  body.end();
  await settle();
  const [delay] = second.clock.pending();
  assert.ok(delay >= 0 && delay <= MAX_TIMER_DELAY, `${delay}`);
  second.hub.close();
});

test("the fatal event is delivered, then a fatal-event error and closed; reconnect() revives it", async () => {
  const { clock, server, hub, log } = setup();
  await settle();
  const body = server.last.respond();
  body.write('id: 3-1\ndata: a\n\nevent: fatal\ndata: {"reason":"kicked"}\n\ndata: after\n\n');
  await settle();
  assert.deepEqual(log.slice(1), [
    "state:open",
    "message:a",
    'fatal:{"reason":"kicked"}',
    "error:fatal-event:final",
    "state:closed",
  ]);
  assert.ok(body.cancelled || body.closed, "the connection was dropped");
  await clock.advance(3600_000);
  assert.equal(server.requests.length, 1, "no retry after the fatal event");
  assert.equal(hub.reconnect(), true);
  await settle();
  assert.equal(server.requests.length, 2);
  assert.equal(server.last.headers.get("last-event-id"), "3-1");
  assert.deepEqual(log.slice(-1), ["state:connecting"]);
  hub.close();
  assert.equal(hub.reconnect(), false, "close() is final");
  await clock.advance(3600_000);
  assert.equal(server.requests.length, 2);
});

test("the fatal event name is configurable, and null disables it", async () => {
  const { server, hub, log } = setup({ fatalEvent: null });
  await settle();
  server.last.respond().write("event: fatal\ndata: x\n\n");
  await settle();
  assert.equal(hub.readyState, OPEN);
  assert.deepEqual(log.slice(-1), ["fatal:x"]);
  hub.close();
});

test("the hub's reset event is dispatched as reset, whatever its configured name", async () => {
  const { server, hub } = setup({ resetEvent: "resync" });
  await settle();
  const seen = [];
  hub.addEventListener("reset", (e) => seen.push(["reset", e.lastEventId]));
  hub.addEventListener("server:reset", (e) => seen.push(["server:reset", e.data]));
  server.last.respond().write("id: 8-2\nevent: resync\ndata\n\nevent: reset\ndata: app\n\n");
  await settle();
  assert.deepEqual(seen, [["reset", "8-2"], ["server:reset", "app"]]);
  hub.close();
});

test("a business error event is server-error, never error; its name is configurable", async () => {
  const { server, hub, log } = setup();
  await settle();
  const serverErrors = [];
  hub.addEventListener("server-error", (e) => serverErrors.push([e.code, e.message, e.data]));
  server.last.respond().write('event: error\ndata: {"code": 500, "message": "Failed to retrieve data"}\n\nevent: error\ndata: plain\n\n');
  await settle();
  assert.deepEqual(serverErrors, [
    [500, "Failed to retrieve data", '{"code": 500, "message": "Failed to retrieve data"}'],
    [null, null, "plain"],
  ]);
  assert.ok(!log.some((l) => l.startsWith("error:")), "no connection error");
  assert.equal(hub.readyState, OPEN);
  hub.close();

  const custom = setup({ serverErrorEvent: "app-error" });
  await settle();
  const seen = [];
  custom.hub.addEventListener("server-error", (e) => seen.push(e.code));
  custom.hub.addEventListener("server:error", (e) => seen.push(`renamed ${e.data}`));
  custom.server.last.respond().write('event: app-error\ndata: {"code":"E1"}\n\nevent: error\ndata: x\n\n');
  await settle();
  assert.deepEqual(seen, ["E1", "renamed x"]);
  assert.ok(!custom.log.some((l) => l.startsWith("error:")));
  custom.hub.close();
});

test("server events named like the client's own events are renamed server:<name>", async () => {
  const { server, hub, log } = setup();
  await settle();
  const seen = [];
  for (const name of ["open", "closed", "connecting", "statechange", "paused", "server-error"]) {
    hub.addEventListener(`server:${name}`, (e) => seen.push(`${e.type}=${e.data}`));
  }
  server.last.respond().write(
    ["open", "closed", "connecting", "statechange", "paused", "server-error"].map((n) => `event: ${n}\ndata: ${n}\n\n`).join(""),
  );
  await settle();
  assert.equal(seen.length, 6);
  assert.equal(hub.readyState, OPEN);
  assert.deepEqual(log, ["state:connecting", "state:open"]);
  hub.close();
});

test("a silent stream is dropped after readTimeout and reconnected; any bytes keep it alive", async () => {
  const { clock, server, hub, log } = setup({ readTimeout: 1000, baseDelay: 0 });
  await settle();
  const body = server.last.respond();
  await settle();
  await clock.advance(900);
  body.write(":\n\n"); // a heartbeat comment
  await settle();
  await clock.advance(900);
  assert.equal(hub.readyState, OPEN, "the heartbeat kept it alive");
  await clock.advance(100);
  assert.deepEqual(log.slice(-2), ["error:timeout", "state:connecting"]);
  assert.ok(body.cancelled || body.closed, "the silent connection was dropped");
  await clock.advance(0);
  assert.equal(server.requests.length, 2);
  hub.close();
});

test("no response head within readTimeout is a timeout too", async () => {
  const { clock, server, hub, log } = setup({ readTimeout: 500, baseDelay: 0 });
  await settle();
  await clock.advance(500);
  assert.deepEqual(log.slice(-2), ["error:timeout", "state:connecting"]);
  assert.equal(server.requests[0].answered, true, "the hanging fetch was aborted");
  hub.close();
});

test("a line over the limit is a parse error; the client reconnects", async () => {
  const { clock, server, hub, log } = setup({ maxLineLength: 16, baseDelay: 0 });
  await settle();
  const body = server.last.respond();
  body.write("data: ok\n\ndata: this line is far too long\n\n");
  await settle();
  assert.deepEqual(log.slice(1), ["state:open", "message:ok", "error:parse", "state:connecting"]);
  assert.ok(body.cancelled || body.closed);
  await clock.advance(0);
  assert.equal(server.requests.length, 2);
  hub.close();
});

test("network failures, before and after the response, are retried with growing backoff", async () => {
  const { clock, server, hub, log } = setup({ baseDelay: 100 });
  await settle();
  server.last.fail();
  await settle();
  assert.deepEqual(log.slice(-2), ["error:network", "state:connecting"]);
  assert.deepEqual(clock.pending(), [100]);
  await clock.advance(100);
  server.last.fail();
  await settle();
  assert.deepEqual(clock.pending(), [200], "attempt 2: the ceiling doubled");
  await clock.advance(200);
  const body = server.last.respond();
  await settle();
  body.fail();
  await settle();
  assert.deepEqual(log.slice(-2), ["error:network", "state:connecting"]);
  assert.deepEqual(clock.pending(), [400], "an open connection that delivered nothing did not reset the count");
  hub.close();
});

test("maxAttempts: the last failure is final and closed says attempts-exhausted", async () => {
  const { clock, server, hub, log } = setup({ maxAttempts: 2, baseDelay: 10 });
  let info = null;
  hub.addEventListener("closed", (e) => (info = e.info));
  await settle();
  server.last.respondEmpty(503);
  await clock.advance(10);
  server.last.fail();
  await clock.advance(20);
  server.last.respondEmpty(502);
  await settle();
  assert.deepEqual(log.filter((l) => l.startsWith("error")), ["error:status:503", "error:network", "error:status:502:final"]);
  assert.deepEqual(info, { reason: "attempts-exhausted", status: 502, isLocal: false, fatal: false });
  assert.equal(hub.readyState, CLOSED);
  assert.equal(server.requests.length, 3);
  assert.equal(hub.reconnect(), true, "a retry button can start over");
  await settle();
  assert.equal(server.requests.length, 4);
  hub.close();
});

test("greeting-only connections keep backing off (retry: 0 + welcome + hang up)", async () => {
  const { clock, server, hub } = setup({ maxDelay: 60_000 });
  await settle();
  const waits = [];
  for (let i = 0; i < 6; i++) {
    const body = server.last.respond();
    body.write('retry: 0\nevent: welcome\ndata: {"clientId":"1.1"}\n\n');
    body.end();
    await settle();
    const [wait] = clock.pending();
    waits.push(wait);
    await clock.advance(wait);
  }
  assert.deepEqual(waits, [0, 2, 4, 8, 16, 32], "the first retry is immediate, then it grows");
  // A connection that delivers an event resets the count.
  const body = server.last.respond();
  body.write("event: welcome\ndata: {}\n\ndata: news\n\n");
  body.end();
  await settle();
  assert.deepEqual(clock.pending(), [0]);
  hub.close();
});

test("a connection that stays open for healthyAfter resets the backoff", async () => {
  const { clock, server, hub } = setup({ baseDelay: 100, healthyAfter: 5000, readTimeout: null });
  await settle();
  server.last.respondEmpty(503);
  await clock.advance(100);
  server.last.respondEmpty(503);
  await clock.advance(200);
  const body = server.last.respond();
  await settle();
  await clock.advance(5000);
  body.end();
  await settle();
  assert.deepEqual(clock.pending(), [100], "attempt 1 again");
  hub.close();
});

test("close() from a listener stops processing the rest of the chunk", async () => {
  const { clock, server, hub } = setup();
  await settle();
  const seen = [];
  hub.onmessage = (e) => {
    seen.push(e.data);
    hub.close();
  };
  server.last.respond().write("data: 1\n\ndata: 2\n\n");
  await settle();
  assert.deepEqual(seen, ["1"]);
  await clock.advance(3600_000);
  assert.equal(server.requests.length, 1);
});

test("close() during a backoff cancels the reconnect; close() before the start fetches nothing", async () => {
  const { clock, server, hub } = setup();
  await settle();
  server.last.respondEmpty(503);
  await settle();
  hub.close();
  assert.equal(clock.timers.size, 0);
  await clock.advance(3600_000);
  assert.equal(server.requests.length, 1);

  const early = setup();
  early.hub.close();
  await settle();
  assert.equal(early.server.requests.length, 0);
});

test("pauseWhenHidden: hidden drops the connection, visible resumes with Last-Event-ID", async () => {
  const document = new FakeDocument();
  const { clock, server, hub, log } = setup({ pauseWhenHidden: true, document });
  await settle();
  const body = server.last.respond();
  body.write("id: 5-5\ndata: a\n\n");
  await settle();
  document.setVisibility("hidden");
  await settle();
  assert.ok(body.cancelled || body.closed, "the connection was dropped");
  assert.deepEqual(log.slice(-1), ["state:paused"]);
  assert.equal(hub.readyState, CONNECTING);
  await clock.advance(3600_000);
  assert.equal(server.requests.length, 1, "nothing while hidden");
  document.setVisibility("visible");
  await settle();
  assert.equal(server.requests.length, 2);
  assert.equal(server.last.headers.get("last-event-id"), "5-5");
  assert.ok(!log.some((l) => l.startsWith("error")), "pausing is not an error");
  hub.close();
  document.setVisibility("hidden");
  document.setVisibility("visible");
  await settle();
  assert.equal(server.requests.length, 2, "close() removed the visibility listener");
});

test("pauseWhenHidden: a page hidden at start waits; a backoff keeps its deadline over a pause", async () => {
  const document = new FakeDocument();
  document.visibilityState = "hidden";
  const { clock, server, hub } = setup({ pauseWhenHidden: true, document });
  await settle();
  assert.equal(server.requests.length, 0);
  document.setVisibility("visible");
  await settle();
  assert.equal(server.requests.length, 1);
  server.last.respondEmpty(503, { "retry-after": "10" });
  await settle();
  await clock.advance(4000);
  document.setVisibility("hidden");
  document.setVisibility("visible");
  await settle();
  assert.equal(server.requests.length, 1, "Retry-After still holds");
  assert.deepEqual(clock.pending(), [6000]);
  await clock.advance(6000);
  assert.equal(server.requests.length, 2);
  hub.close();
});

test("headers may come from a function, called for every connection", async () => {
  let n = 0;
  const { clock, server, hub } = setup({ headers: async () => ({ Authorization: `Bearer t${++n}` }), baseDelay: 0 });
  await settle();
  assert.equal(server.last.headers.get("authorization"), "Bearer t1");
  server.last.respondEmpty(503);
  await clock.advance(0);
  assert.equal(server.last.headers.get("authorization"), "Bearer t2");
  hub.close();
});

test("a non-ASCII last event id is sent as its UTF-8 bytes, as EventSource does; a control character as is", async () => {
  const { clock, server, hub } = setup({ baseDelay: 0, lastEventId: "é😀" });
  await settle();
  const sent = server.last.headers.get("last-event-id");
  assert.deepEqual(Buffer.from(sent, "latin1"), Buffer.from("é😀", "utf8"));
  const body = server.last.respond();
  body.write("id: 7\u0001x\ndata: a\n\n");
  body.end();
  await clock.advance(0);
  assert.equal(server.last.headers.get("last-event-id"), "7\u0001x");
  hub.close();
});

test("bad options are typed errors at construction", () => {
  const fetch = () => new Promise(() => {});
  assert.throws(() => new SseHub("not a url", { fetch }), TypeError);
  assert.throws(() => new SseHub(URL_, { fetch, headers: { "bad header": "x" } }), TypeError);
  assert.throws(() => new SseHub(URL_, { fetch, lastEventId: "a\nb" }), TypeError);
  assert.throws(() => new SseHub(URL_, { fetch, maxAttempts: -1 }), RangeError);
  assert.throws(() => new SseHub(URL_, { fetch, readTimeout: -1 }), RangeError);
  assert.throws(() => new SseHub(URL_, { fetch, clock: {} }), TypeError);
  assert.throws(() => new SseHub(URL_, { fetch, fatalEvent: 7 }), TypeError);
  const hub = new SseHub(URL_, { fetch, withCredentials: true, clock: new FakeClock() });
  assert.equal(hub.withCredentials, true);
  hub.close();
});

test("withCredentials sends credentials", async () => {
  const { server, hub } = setup({ withCredentials: true });
  await settle();
  assert.equal(server.last.init.credentials, "include");
  hub.close();
});
