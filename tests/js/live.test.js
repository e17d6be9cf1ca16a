// The live page's JS ports against what Python computed (tests/test_live_js.py writes the reference and runs this).
const test = require("node:test");
const assert = require("node:assert");
const fs = require("node:fs");
const live = "../../sdlab/widgets/live/";
const { randn } = require(live + "randn.js");
const scheduler = require(live + "scheduler.js");
const { make } = require(live + "tokenizer.js");
const { upsample, heatmap } = require(live + "heatmap.js");

const ref = JSON.parse(fs.readFileSync(process.env.SDLAB_LIVE_REFERENCE, "utf8"));

function maxDiff(a, b) {
  assert.strictEqual(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

test("tokenizer ids and words equal Python's", () => {
  const tok = make(ref.manifest.tokenizer);
  for (const { prompt, ids, words } of ref.prompts) {
    const got = tok.encode(prompt);
    assert.deepStrictEqual(got.ids, ids, prompt);
    if (words) assert.deepStrictEqual(got.words.map((w) => [w.text, w.positions]), words, prompt);
  }
});

test("randn matches torch's CPU stream for each seed and size", () => {
  for (const { seed, n, values } of ref.randn) {
    assert.ok(maxDiff(randn(BigInt(seed), n), values) <= ref.randn_tolerance, `seed ${seed} n ${n}`);
  }
  assert.throws(() => randn(0, 15), /16 or more/);
});

test("timesteps and DDIM steps match diffusers", () => {
  const config = ref.manifest.scheduler;
  for (const { steps, timesteps, t, output, sample, prev, x0 } of ref.scheduler) {
    assert.deepStrictEqual(scheduler.timesteps(config, steps), timesteps, `steps ${steps}`);
    const got = scheduler.step(config, steps, t, output, sample);
    assert.ok(maxDiff(got.prev, prev) < 1e-6 && maxDiff(got.x0, x0) < 1e-6, `steps ${steps} t ${t}`);
  }
  assert.throws(() => scheduler.timesteps(config, 0), /steps must be/);
});

test("guidance is uncond + scale * (cond - uncond) in float32", () => {
  const { prediction, scale, guided } = ref.guidance;
  assert.deepStrictEqual(Array.from(scheduler.guide(Float32Array.from(prediction), scale)), guided);
});

test("upsampling and heatmaps match torch's bilinear and cap.heatmap", () => {
  for (const { grid, flat, size, out } of ref.upsample) assert.ok(maxDiff(upsample(flat, grid, size), out) < 1e-6);
  const { maps, layers, positions, steps, heat } = ref.heatmap;
  const got = heatmap(maps.map((s) => s.map((l) => Float32Array.from(l))), layers, positions,
                      layers.map((_, i) => i), steps, [64, 64]);
  assert.ok(maxDiff(got, heat) < 1e-5);
});
