// Runs ssehub.js's SseParser over a decoder vectors file (the format of
// core/tests/vectors/sse-decoder.json, which the Rust decoder also runs)
// and reports every vector whose frames differ from the expected ones.
//
// Library: `checkVectors(document, { randomCuts })` returns the mismatches.
// Command: `node testing/vectors.js FILE` prints them and exits 1 if any
// (the Rust differential test in runtime-tokio/tests/ssehub_js.rs uses it
// on random streams the core decoder decoded).

import { readFileSync } from "node:fs";
import { pathToFileURL } from "node:url";
import { SseParser } from "../ssehub.js";
import { seededRandom } from "./fakes.js";

/** The bytes of one chunk: a string is UTF-8, `{hex}` raw bytes. */
export function chunkBytes(chunk) {
  if (typeof chunk === "string") return new TextEncoder().encode(chunk);
  const hex = chunk.hex;
  const bytes = new Uint8Array(hex.length / 2);
  for (let i = 0; i < bytes.length; i++) bytes[i] = parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  return bytes;
}

/** Feeds `chunks` (Uint8Arrays) to a parser; returns frames in the vector format. */
export function decode(chunks, options = {}) {
  const parser = new SseParser(options);
  const out = [];
  for (const chunk of chunks) {
    for (const frame of parser.feed(chunk)) {
      switch (frame.type) {
        case "event":
          out.push({ type: "event", event: frame.event, data: frame.data, id: frame.lastEventId });
          break;
        case "retry":
          out.push({ type: "retry", ms: frame.ms });
          break;
        case "id":
          out.push({ type: "id", id: frame.id });
          break;
        case "comment":
          out.push({ type: "comment", text: frame.text });
          break;
        default:
          throw new Error(`unknown frame ${JSON.stringify(frame)}`);
      }
    }
  }
  if (parser.error) out.push({ type: "error", error: parser.error.kind, limit: parser.error.limit });
  return out;
}

function concat(chunks) {
  const whole = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let at = 0;
  for (const c of chunks) {
    whole.set(c, at);
    at += c.length;
  }
  return whole;
}

/** `bytes` cut at random places (empty chunks included). */
export function randomCuts(bytes, random) {
  const chunks = [];
  let at = 0;
  while (at < bytes.length) {
    const n = Math.floor(random() * 8); // 0..7: empty chunks happen too
    chunks.push(bytes.subarray(at, Math.min(bytes.length, at + n)));
    at += n;
  }
  return chunks;
}

/**
 * Checks every vector as given, whole, byte by byte and in `randomCuts`
 * random chunkings; returns `{ name, how, expected, actual }` per mismatch.
 */
export function checkVectors(document, { randomCuts: cuts = 20, seed = 1 } = {}) {
  const random = seededRandom(seed);
  const problems = [];
  for (const vector of document.vectors) {
    const options = vector.options ?? {};
    const given = vector.chunks.map(chunkBytes);
    const whole = concat(given);
    const ways = [
      ["as given", given],
      ["whole", [whole]],
      ["byte by byte", Array.from(whole, (b) => Uint8Array.of(b))],
    ];
    for (let i = 0; i < cuts; i++) ways.push([`random cuts #${i}`, randomCuts(whole, random)]);
    const expected = canonical(vector.expected);
    for (const [how, chunks] of ways) {
      const actual = canonical(decode(chunks, options));
      if (actual !== expected) problems.push({ name: vector.name, how, expected, actual });
    }
  }
  return problems;
}

/** Frames as JSON with sorted keys, so that key order does not matter. */
function canonical(frames) {
  return JSON.stringify(frames.map((frame) => Object.fromEntries(Object.entries(frame).sort())));
}

export function loadVectors(path) {
  return JSON.parse(readFileSync(path, "utf8"));
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const file = process.argv[2];
  if (!file) {
    console.error("usage: node testing/vectors.js VECTORS.json");
    process.exit(2);
  }
  const document = loadVectors(file);
  const problems = checkVectors(document, { randomCuts: 5 });
  for (const p of problems.slice(0, 20)) {
    console.error(`${p.name} (${p.how}):\n  expected ${p.expected}\n  actual   ${p.actual}`);
  }
  console.log(`${document.vectors.length} vectors, ${problems.length} mismatches`);
  process.exit(problems.length === 0 ? 0 : 1);
}
