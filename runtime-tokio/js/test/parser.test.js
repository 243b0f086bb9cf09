// SseParser: the rules the vectors cannot show (state across calls, huge
// inputs) and random inputs in random chunkings.

import { test } from "node:test";
import assert from "node:assert/strict";
import { SseParser, ParseError } from "../ssehub.js";
import { decode, randomCuts } from "../testing/vectors.js";
import { seededRandom } from "../testing/fakes.js";

const bytes = (text) => new TextEncoder().encode(text);

test("a CR ending one chunk and a LF starting the next are one line break", () => {
  const parser = new SseParser();
  assert.deepEqual(parser.feed(bytes("data: a\r")), []);
  assert.deepEqual(parser.feed(bytes("\ndata: b\r")), []);
  // The LF ends "data: b"; the CR is a blank line: dispatch.
  assert.deepEqual(parser.feed(bytes("\n\r")), [{ type: "event", event: "message", data: "a\nb", lastEventId: "" }]);
  // This LF belongs to that CR: no second blank line (nothing to see here),
  // and the next line starts clean.
  assert.deepEqual(parser.feed(bytes("\ndata: c\n\n")), [{ type: "event", event: "message", data: "c", lastEventId: "" }]);
});

test("the last event id is kept between feeds and exposed", () => {
  const parser = new SseParser({ lastEventId: "3" });
  assert.equal(parser.lastEventId, "3");
  parser.feed(bytes("id: 4\ndata: x\n"));
  assert.equal(parser.lastEventId, "3", "the id applies at the blank line");
  assert.deepEqual(parser.feed(bytes("\n")), [{ type: "event", event: "message", data: "x", lastEventId: "4" }]);
  assert.equal(parser.lastEventId, "4");
});

test("a huge chunk without a line break fails at the limit without buffering it", () => {
  const parser = new SseParser({ maxLineLength: 1024 });
  assert.equal(parser.feed(bytes("data: ok\n\n")).length, 1);
  assert.deepEqual(parser.feed(new Uint8Array(10 << 20).fill(0x78)), []);
  assert.ok(parser.error instanceof ParseError);
  assert.equal(parser.error.kind, "line-too-long");
  assert.equal(parser.error.limit, 1024);
  assert.deepEqual(parser.feed(bytes("data: later\n\n")), [], "input after an error is ignored");
});

test("a retry beyond any timer is reported as its number, and 400 digits do not throw", () => {
  const parser = new SseParser();
  assert.deepEqual(parser.feed(bytes("retry: 18446744073709551615\n")), [{ type: "retry", ms: 18446744073709551615 }]);
  const [frame] = parser.feed(bytes(`retry: ${"9".repeat(400)}\n`));
  assert.equal(frame.ms, Infinity);
});

test("a long retry or id line is handled without spreading it onto the stack", () => {
  const parser = new SseParser();
  const frames = parser.feed(bytes(`id: ${"7".repeat(500_000)}\ndata: x\n\nretry: ${"1".repeat(500_000)}\n`));
  assert.equal(frames.length, 2);
  assert.equal(frames[0].lastEventId.length, 500_000);
});

test("bad limits are a RangeError", () => {
  assert.throws(() => new SseParser({ maxLineLength: -1 }), RangeError);
  assert.throws(() => new SseParser({ maxEventLength: 1.5 }), RangeError);
});

/** Random streams made mostly of the bytes the parser cares about. */
function randomStream(random, length) {
  const alphabet = bytes("data:id:event:retry: 12\n\n\r\r:x\0");
  const out = new Uint8Array(length);
  for (let i = 0; i < length; i++) {
    const r = random();
    if (r < 0.06) out[i] = [0xef, 0xbb, 0xbf, 0xff, 0xc3, 0xa9, 0xe2, 0x82, 0xf0][Math.floor(random() * 9)];
    else out[i] = alphabet[Math.floor(random() * alphabet.length)];
  }
  return out;
}

test("random streams: any chunking gives the frames and the error of the whole input", () => {
  const random = seededRandom(42);
  for (let round = 0; round < 1500; round++) {
    const input = randomStream(random, Math.floor(random() * 300));
    const options = round % 3 === 0 ? { maxLineLength: 24, maxEventLength: 40, comments: true } : { comments: round % 2 === 0 };
    const expected = decode([input], options);
    const actual = decode(randomCuts(input, random), options);
    assert.deepEqual(actual, expected, `round ${round}: ${Buffer.from(input).toString("hex")}`);
  }
});
