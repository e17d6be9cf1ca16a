// The page's Web Worker: onnxruntime-web sessions for the three graphs and the denoising loop, off the page's
// thread. Runs after ort.wasm.min.js, randn.js and scheduler.js in the same worker script.
// in:  {type: "init", manifest, urls: {glue: a URL; wasm, text_encoder, unet, decoder: URLs or {base64}}}
//      {type: "run", ids, negativeIds, seed, steps, guidance, skipScales, keyWeights}
// out: {type: "ready", ms, parts} | {type: "step", run, step, t, maps} | {type: "done", run, image, ms, unetMs, decodeMs}
//      | {type: "x0", run, step, t, x0} (each step's x0 decoded after the image: it never delays it) | {type: "error"}
"use strict";
let sessions = null, manifest = null, current = 0;

self.onmessage = (event) => {
  const message = event.data;
  const work = message.type === "init" ? init(message) : run(message, ++current);
  work.catch((error) => self.postMessage({ type: "error", message: String((error && error.message) || error) }));
};

// onnxruntime-web's runs resolve through microtasks only: without a task break a newer message would wait.
// A MessageChannel break, as setTimeout's nested calls are clamped to 4 ms.
const breaks = new MessageChannel(), waiting = [];
breaks.port1.onmessage = () => waiting.shift()();
const yieldToMessages = () => new Promise((resolve) => { waiting.push(resolve); breaks.port2.postMessage(0); });

async function bytes(source) {  // a URL, or {base64} inlined in the page (decoded natively where the browser can)
  if (typeof source === "string") return new Uint8Array(await (await fetch(source)).arrayBuffer());
  if (Uint8Array.fromBase64) return Uint8Array.fromBase64(source.base64);
  return bytes("data:application/octet-stream;base64," + source.base64);
}

async function init(message) {  // ready: {ms, parts: {wasm, "unet read", unet (its session), ...}} in ms
  const start = performance.now(), parts = {};
  manifest = message.manifest;
  Object.assign(ort.env.wasm, { numThreads: 1, proxy: false, wasmPaths: { mjs: message.urls.glue } });
  ort.env.wasm.wasmBinary = await bytes(message.urls.wasm);
  parts.wasm = performance.now() - start;
  const options = { executionProviders: ["wasm"], graphOptimizationLevel: "all" };
  sessions = {};
  for (const name of ["text_encoder", "unet", "decoder"]) {
    const begun = performance.now(), model = await bytes(message.urls[name]);
    parts[name + " read"] = performance.now() - begun;
    sessions[name] = await ort.InferenceSession.create(model, options);
    parts[name] = performance.now() - begun - parts[name + " read"];
  }
  self.postMessage({ type: "ready", ms: performance.now() - start, parts });
}

async function encode(ids) {
  const out = await sessions.text_encoder.run({ ids: new ort.Tensor("int64", BigInt64Array.from(ids, BigInt), [1, ids.length]) });
  return out.text.data;
}

async function decode(latents) {  // -> RGBA bytes, rounded as the pipeline's (image * 255).round()
  const [c, h, w] = manifest.latent, [height, width] = manifest.image;
  const image = (await sessions.decoder.run({ latents: new ort.Tensor("float32", latents, [1, c, h, w]) })).image.data;
  const rgba = new Uint8ClampedArray(height * width * 4), plane = height * width;
  for (let p = 0; p < plane; p++) {
    for (let k = 0; k < 3; k++) rgba[4 * p + k] = sdlabScheduler.roundHalfEven(Math.fround(image[k * plane + p] * 255));
    rgba[4 * p + 3] = 255;
  }
  return rgba;
}

async function run(message, id) {
  const start = performance.now();
  const [c, h, w] = manifest.latent, n = c * h * w, length = manifest.tokenizer.max_length;
  const negative = await encode(message.negativeIds), positive = await encode(message.ids);
  const text = new Float32Array(negative.length * 2);
  text.set(negative);
  text.set(positive, negative.length);
  let x = sdlabRandn.randn(message.seed, n).map((v) => Math.fround(v * manifest.scheduler.init_noise_sigma));
  const feeds = {
    text: new ort.Tensor("float32", text, [2, length, manifest.text_width]),
    skip_scales: new ort.Tensor("float32", Float32Array.from(message.skipScales), [manifest.skips.length]),
    key_weights: new ort.Tensor("float32", Float32Array.from(message.keyWeights), [2, length]),
  };
  const timesteps = sdlabScheduler.timesteps(manifest.scheduler, message.steps), x0s = [];
  let unetMs = 0;
  for (let k = 0; k < timesteps.length; k++) {
    const t = timesteps[k], sample = new Float32Array(2 * n);
    sample.set(x);
    sample.set(x, n);
    const called = performance.now();
    const out = await sessions.unet.run({ ...feeds, sample: new ort.Tensor("float32", sample, [2, c, h, w]),
                                          timestep: new ort.Tensor("int64", BigInt64Array.of(BigInt(t)), [1]) });
    unetMs += performance.now() - called;
    await yieldToMessages();
    if (id !== current) return;  // a newer run was asked for: drop this one
    const step = sdlabScheduler.step(manifest.scheduler, message.steps, t, sdlabScheduler.guide(out.prediction.data, message.guidance), x);
    x = step.prev;
    x0s.push(step.x0);
    const maps = manifest.layers.map((layer) => out["attention." + layer.path].data);
    self.postMessage({ type: "step", run: id, step: k, t, maps }, maps.map((m) => m.buffer));
  }
  const denoised = performance.now();
  const image = await decode(x);
  const ms = performance.now() - start, decodeMs = performance.now() - denoised;
  self.postMessage({ type: "done", run: id, image, ms, unetMs: unetMs, decodeMs }, [image.buffer]);
  for (let k = 0; k < x0s.length; k++) {
    await yieldToMessages();
    if (id !== current) return;
    const x0 = await decode(x0s[k]);
    self.postMessage({ type: "x0", run: id, step: k, t: timesteps[k], x0 }, [x0.buffer]);
  }
}
