// ReconnectPolicy: the Rust policy's table and backoff, on injected
// randomness (no clock: the policy has none).

import { test } from "node:test";
import assert from "node:assert/strict";
import {
  ReconnectPolicy,
  classify,
  parseRetryAfter,
  backoffCeiling,
  fullJitter,
  clampDelay,
  MAX_TIMER_DELAY,
} from "../ssehub.js";
import { scriptedRandom, seededRandom } from "../testing/fakes.js";

const ES = "text/event-stream";
/** The top of [0, 1): full jitter then gives the ceiling itself. */
const TOP = 1 - 2 ** -53;

test("classification follows the Rust client's table", () => {
  const cases = [
    [200, ES, "open", null],
    [200, "Text/Event-Stream; charset=utf-8", "open", null],
    [200, " text/event-stream ;x=y", "open", null],
    [200, "text/html", "fatal", "wrong-content-type"],
    [200, null, "fatal", "wrong-content-type"],
    [200, "text/event-streams", "fatal", "wrong-content-type"],
    [204, null, "fatal", "http-status"],
    [201, ES, "fatal", "http-status"],
    [101, null, "fatal", "http-status"],
    [301, null, "fatal", "http-status"],
    [304, null, "fatal", "http-status"],
    [400, null, "fatal", "http-status"],
    [401, null, "fatal", "http-status"],
    [403, null, "fatal", "http-status"],
    [404, null, "fatal", "http-status"],
    [410, null, "fatal", "http-status"],
    [499, null, "fatal", "http-status"],
    [408, null, "retry", null],
    [429, null, "retry", null],
    [500, null, "retry", null],
    [502, null, "retry", null],
    [503, null, "retry", null],
    [599, null, "retry", null],
    [600, null, "fatal", "http-status"],
    [0, null, "fatal", "http-status"],
  ];
  for (const [status, type, verdict, reason] of cases) {
    assert.deepEqual(classify(status, type), { verdict, reason }, `${status} ${type}`);
  }
});

test("Retry-After: delta seconds, IMF-fixdate from now, anything else ignored", () => {
  const now = Date.UTC(1994, 10, 6, 8, 49, 30);
  assert.equal(parseRetryAfter("120", now), 120_000);
  assert.equal(parseRetryAfter(" 7 ", now), 7_000);
  assert.equal(parseRetryAfter("Sun, 06 Nov 1994 08:49:37 GMT", now), 7_000);
  assert.equal(parseRetryAfter("Sun, 06 Nov 1994 08:49:00 GMT", now), 0, "a past date is zero");
  assert.equal(parseRetryAfter("Sat, 29 Feb 2020 00:00:00 GMT", now) > 0, true);
  for (const bad of ["soon", "-1", "1.5", "", "Sunday, 06-Nov-94 08:49:37 GMT", "Sun Nov  6 08:49:37 1994", "Sun, 31 Nov 1994 08:49:37 GMT", "Sun, 29 Feb 2019 00:00:00 GMT", "Sun, 06 Nov 1994 24:00:00 GMT", "Xyz, 06 Nov 1994 08:49:37 GMT", "Sun, 06 Foo 1994 08:49:37 GMT"]) {
    assert.equal(parseRetryAfter(bad, now), null, bad);
  }
  assert.equal(parseRetryAfter(null, now), null);
  assert.equal(parseRetryAfter("18446744073709551615", now), 18446744073709551615 * 1000);
});

test("the backoff ceiling doubles then caps; a zero base grows from 1 ms after the first attempt", () => {
  assert.equal(backoffCeiling(100, 10_000, 1), 100);
  assert.equal(backoffCeiling(100, 10_000, 2), 200);
  assert.equal(backoffCeiling(100, 10_000, 4), 800);
  assert.equal(backoffCeiling(100, 10_000, 8), 10_000);
  assert.equal(backoffCeiling(100, 10_000, 5000), 10_000, "no overflow to NaN");
  assert.equal(backoffCeiling(0, 10_000, 1), 0);
  assert.equal(backoffCeiling(0, 10_000, 3), 4);
  assert.equal(backoffCeiling(200_000, 10_000, 1), 10_000, "the cap bounds the first attempt too");
});

test("full jitter spans 0 to the ceiling inclusive, and clamps its input", () => {
  assert.equal(fullJitter(2000, 0), 0);
  assert.equal(fullJitter(2000, TOP), 2000);
  assert.equal(fullJitter(2000, 0.5), 1000);
  assert.equal(fullJitter(0, TOP), 0);
  assert.equal(fullJitter(Infinity, TOP), MAX_TIMER_DELAY);
  assert.equal(fullJitter(2000, NaN), 0);
  assert.equal(fullJitter(2000, 7), 0, "a random source out of range counts as 0");
  assert.equal(clampDelay(Infinity), MAX_TIMER_DELAY);
  assert.equal(clampDelay(-5), 0);
  assert.equal(clampDelay(NaN), 0);
});

function opened(policy) {
  assert.deepEqual(policy.onResponse(200, ES, null), { type: "continue" });
  assert.equal(policy.state.name, "open");
}

test("a retried failure waits a jittered delay within the doubling ceiling", () => {
  const policy = new ReconnectPolicy({ baseDelay: 1000, maxDelay: 5000, random: scriptedRandom([TOP, TOP, TOP, TOP, 0.5]) });
  assert.deepEqual(policy.start(), { type: "connect", lastEventId: null });
  const delays = [];
  for (let i = 0; i < 5; i++) {
    const action = policy.onResponse(503, null, null);
    assert.equal(action.type, "connect-after");
    assert.equal(action.attempt, i + 1);
    delays.push(action.delay);
  }
  assert.deepEqual(delays, [1000, 2000, 4000, 5000, 2500]);
  assert.deepEqual(policy.state, { name: "reconnecting", attempt: 5, delay: 2500 });
});

test("the server's retry becomes the base; Retry-After is a floor the cap does not cut", () => {
  const policy = new ReconnectPolicy({ baseDelay: 1000, maxDelay: 5000, random: () => 0 });
  policy.start();
  opened(policy);
  policy.onRetry(200);
  assert.equal(policy.baseDelay, 200);
  let action = policy.onStreamEnd();
  assert.equal(action.delay, 0, "jitter drew 0");
  action = policy.onResponse(503, null, 30_000);
  assert.equal(action.delay, 30_000, "above the 5 s cap");
  action = policy.onResponse(429, null, 10);
  assert.equal(action.delay, 10);
});

test("no value breaks a timer: huge Retry-After and retry are clamped to the largest timer delay", () => {
  const policy = new ReconnectPolicy({ random: () => TOP });
  policy.start();
  const huge = parseRetryAfter("18446744073709551615", 0);
  let action = policy.onResponse(503, null, huge);
  assert.equal(action.delay, MAX_TIMER_DELAY);
  action = policy.onResponse(503, null, Infinity);
  assert.equal(action.delay, MAX_TIMER_DELAY);
  opened(policy);
  policy.onRetry(Infinity);
  assert.equal(policy.baseDelay, MAX_TIMER_DELAY);
  policy.onRetry(18446744073709551615);
  action = policy.onStreamEnd();
  assert.ok(action.delay <= MAX_TIMER_DELAY && action.delay >= 0);
  assert.throws(() => new ReconnectPolicy({ baseDelay: -1 }), RangeError);
  assert.throws(() => new ReconnectPolicy({ maxDelay: NaN }), RangeError);
  assert.throws(() => new ReconnectPolicy({ maxAttempts: 1.5 }), RangeError);
});

test("fatal statuses and a wrong content type close with their reason and status", () => {
  for (const [status, type, reason] of [
    [204, null, "http-status"],
    [401, "application/json", "http-status"],
    [404, null, "http-status"],
    [200, "text/plain", "wrong-content-type"],
  ]) {
    const policy = new ReconnectPolicy();
    policy.start();
    assert.deepEqual(policy.onResponse(status, type, null), {
      type: "close",
      info: { reason, status, isLocal: false, fatal: true },
    });
    assert.equal(policy.onConnectError().type, "continue", "closed: inputs ignored");
  }
});

test("a connection that only greets (welcome) does not reset the count; a real event does", () => {
  // The scenario of a server that sends `retry: 0`, its welcome and hangs
  // up: the attempt number must keep growing.
  const policy = new ReconnectPolicy({ random: () => TOP, maxDelay: 60_000 });
  policy.start();
  const attempts = [];
  for (let i = 0; i < 6; i++) {
    opened(policy);
    policy.onRetry(0);
    policy.onEvent("welcome", "");
    const action = policy.onStreamEnd();
    attempts.push([action.attempt, action.delay]);
  }
  assert.deepEqual(attempts, [
    [1, 0],
    [2, 2],
    [3, 4],
    [4, 8],
    [5, 16],
    [6, 32],
  ]);
  // The hub's reset event is part of the greeting too.
  opened(policy);
  policy.onEvent("reset", "9-1");
  assert.equal(policy.onStreamEnd().attempt, 7);
  // A real event resets: the next retry is attempt 1 again.
  opened(policy);
  policy.onEvent("welcome", "");
  policy.onEvent("message", "9-2");
  assert.equal(policy.onStreamEnd().attempt, 1);
});

test("a connection that stayed healthy resets the count even without events", () => {
  const policy = new ReconnectPolicy({ random: () => 0 });
  policy.start();
  policy.onResponse(503, null, null);
  policy.onResponse(503, null, null);
  opened(policy);
  assert.equal(policy.failures, 2);
  policy.onHealthy();
  assert.equal(policy.failures, 0);
  assert.equal(policy.onStreamEnd().attempt, 1);
  policy.onHealthy(); // not open: ignored
  assert.equal(policy.failures, 1);
});

test("maxAttempts consecutive failures, then a final close carrying the last status", () => {
  const policy = new ReconnectPolicy({ maxAttempts: 2, random: () => 0 });
  policy.start();
  assert.equal(policy.onConnectError().attempt, 1);
  assert.equal(policy.onResponse(502, null, null).attempt, 2);
  assert.deepEqual(policy.onResponse(503, null, null), {
    type: "close",
    info: { reason: "attempts-exhausted", status: 503, isLocal: false, fatal: false },
  });
  const never = new ReconnectPolicy({ maxAttempts: 0 });
  never.start();
  assert.deepEqual(never.onConnectError().info, { reason: "attempts-exhausted", status: null, isLocal: false, fatal: false });
});

test("the fatal event closes; reconnect revives it with the last id; close is final", () => {
  const policy = new ReconnectPolicy({ fatalEvent: "fatal", random: () => 0 });
  policy.start();
  opened(policy);
  policy.onEvent("message", "7-1");
  assert.deepEqual(policy.onEvent("fatal", "7-1"), {
    type: "close",
    info: { reason: "fatal-event", status: null, isLocal: false, fatal: true },
  });
  assert.deepEqual(policy.reconnect(), { type: "connect", lastEventId: "7-1" });
  opened(policy);
  assert.deepEqual(policy.close(), { type: "close", info: { reason: "local", status: null, isLocal: true, fatal: false } });
  assert.deepEqual(policy.reconnect(), { type: "continue" });
  assert.deepEqual(policy.close(), { type: "continue" });
  // A stop by the server made final by close().
  const stopped = new ReconnectPolicy();
  stopped.start();
  stopped.onResponse(401, null, null);
  stopped.close();
  assert.deepEqual(stopped.reconnect(), { type: "continue" });
});

test("every connect carries the last event id; an empty id means none", () => {
  const policy = new ReconnectPolicy({ lastEventId: "5", random: () => 0 });
  assert.deepEqual(policy.start(), { type: "connect", lastEventId: "5" });
  opened(policy);
  policy.onLastEventId("6");
  assert.equal(policy.onStreamError().lastEventId, "6");
  opened(policy);
  policy.onEvent("message", "");
  assert.equal(policy.onStreamEnd().lastEventId, null);
  policy.onLastEventId("late"); // not open: ignored
  assert.equal(policy.lastEventId, "");
});

test("inputs that do not fit the state change nothing", () => {
  const policy = new ReconnectPolicy();
  policy.start();
  assert.equal(policy.onStreamEnd().type, "continue", "not open");
  assert.equal(policy.onEvent("message", "1").type, "continue", "not open");
  opened(policy);
  assert.equal(policy.onResponse(200, ES, null).type, "continue", "already open");
  assert.equal(policy.onConnectError().type, "continue", "already open");
});

test("pause drops the connection without a failure; resume connects with the last id", () => {
  const policy = new ReconnectPolicy({ random: () => 0 });
  policy.start();
  opened(policy);
  policy.onEvent("message", "3");
  assert.deepEqual(policy.pause(), { type: "pause" });
  assert.equal(policy.pause().type, "continue");
  assert.equal(policy.onStreamEnd().type, "continue", "a paused stream's end is stale");
  assert.deepEqual(policy.resume(), { type: "connect", lastEventId: "3" });
  assert.equal(policy.failures, 0);
  assert.equal(policy.resume().type, "continue");
  policy.close();
  assert.equal(policy.pause().type, "continue");
});

test("random sources drive the jitter deterministically", () => {
  const run = () => {
    const policy = new ReconnectPolicy({ random: seededRandom(3) });
    policy.start();
    return Array.from({ length: 8 }, () => policy.onConnectError().delay);
  };
  const first = run();
  assert.deepEqual(run(), first);
  assert.ok(new Set(first).size > 1);
});
