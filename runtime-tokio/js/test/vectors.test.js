// The parser against the vectors the Rust decoder also runs
// (core/tests/decoder_vectors.rs): both must give the same frames.

import { test } from "node:test";
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { checkVectors, loadVectors } from "../testing/vectors.js";

const FILE = fileURLToPath(new URL("../../../core/tests/vectors/sse-decoder.json", import.meta.url));

test("every shared vector decodes to its expected frames, in any chunking", () => {
  const document = loadVectors(FILE);
  assert.ok(document.vectors.length >= 50, "the vectors file is there");
  const problems = checkVectors(document, { randomCuts: 30, seed: 7 });
  assert.deepEqual(problems, []);
});

test("a wrong expectation is reported (the check can fail)", () => {
  const document = {
    vectors: [{ name: "wrong", chunks: ["data: a\n\n"], expected: [{ type: "event", event: "message", data: "b", id: "" }] }],
  };
  const problems = checkVectors(document, { randomCuts: 1 });
  assert.equal(problems.length, 4); // as given, whole, byte by byte, one random cut
});
