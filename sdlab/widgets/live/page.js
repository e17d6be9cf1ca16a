// The "try it" page: prompt, seed, steps, guidance; the image, each step's x0, each word's heatmap by layer and
// step; a skip's scale and a word's weight as live edits. The model runs in a Web Worker (worker.js); this file
// only tokenises, draws and asks. Everything it loads is inlined in the page (script tags with ids "asset-*").
// window.sdlabLive: {ready: Promise, readyMs (since navigation), run(): Promise of the finished run,
//                    heatmap(word, layer, step), words(), busy(), last: the last run's settings and timings}
(function () {
  "use strict";
  const $ = (id) => document.getElementById(id);
  const manifest = JSON.parse($("live-manifest").textContent);
  const tokenizer = sdlabTokenizer.make(manifest.tokenizer);
  const [height, width] = manifest.image;
  const state = { words: [], maps: [], x0: [], image: null, waiters: [], queued: false, running: false };
  const live = { last: null };
  window.sdlabLive = live;

  function asset(name) {  // an inlined file: its base64 text for the worker to decode
    return { base64: $("asset-" + name).textContent.trim() };
  }

  const worker = new Worker(URL.createObjectURL(new Blob([$("live-worker").textContent], { type: "text/javascript" })));
  live.ready = new Promise((resolve, reject) => {
    worker.onmessage = (event) => {
      const m = event.data;
      if (m.type === "ready") {
        live.readyMs = performance.now();  // since navigation began
        live.workerReady = { ms: m.ms, parts: m.parts };
        status(`ready in ${(live.readyMs / 1000).toFixed(1)} s: type a prompt and press Enter`);
        resolve(live.readyMs);
        generate();
      } else if (m.type === "error") {
        status("error: " + m.message);
        reject(new Error(m.message));
        state.running = false;
        for (const w of state.waiters.splice(0)) w.reject(new Error(m.message));
      } else onResult(m);
    };
  });
  // onnxruntime-web imports its glue by URL: a data: URL, as file:// pages may import no other
  const urls = { glue: "data:text/javascript;base64," + asset("glue").base64, wasm: asset("wasm") };
  for (const name of Object.keys(manifest.files)) urls[name] = asset(name);
  worker.postMessage({ type: "init", manifest, urls });

  function status(text) { $("status").textContent = text; }

  function settings() {
    const prompt = $("prompt").value, encoded = tokenizer.encode(prompt);
    const keyWeights = new Array(2 * manifest.tokenizer.max_length).fill(1);
    const word = $("word").value === "" ? null : encoded.words[Number($("word").value)];
    if (word) for (const p of word.positions) keyWeights[manifest.tokenizer.max_length + p] = Number($("word-weight").value);
    const skipScales = manifest.skips.map((_, k) => (String(k) === $("skip").value ? Number($("skip-scale").value) : 1));
    return { prompt, words: encoded.words, ids: encoded.ids, negativeIds: tokenizer.encode("").ids,
             seed: Math.max(0, Math.floor(Number($("seed").value) || 0)), steps: clamp(Number($("steps").value), 1, 50),
             guidance: Math.max(1, Number($("guidance").value) || 1), skipScales, keyWeights };
  }

  function clamp(v, lo, hi) { return Math.min(hi, Math.max(lo, Math.round(v) || lo)); }

  function generate() {  // one run at a time; asking while one runs starts the newest settings when it ends
    const done = new Promise((resolve, reject) => state.waiters.push({ resolve, reject }));
    if (state.running) state.queued = true;
    else start();
    return done;
  }

  function start() {
    const words = tokenizer.encode($("prompt").value).words;
    if (words.map((w) => w.text).join("\n") !== state.words.map((w) => w.text).join("\n")) wordsChanged(words);
    const s = settings();
    Object.assign(state, { words: s.words, maps: [], x0: [], running: true, queued: false, settings: s,
                           started: performance.now() });
    status(`running ${s.steps} steps...`);
    $("x0").replaceChildren();
    state.run = (state.run || 0) + 1;  // the worker numbers runs the same way
    worker.postMessage({ type: "run", ...s });
  }

  function onResult(m) {
    if (m.type === "step") {
      state.maps[m.step] = m.maps;
      return;
    }
    if (m.type === "x0") {
      if (state.running || m.run !== state.run) return;  // an older run's, or a newer run has started
      state.x0[m.step] = m.x0;
      const c = canvas(m.x0, "x0 at step " + m.step + " (t=" + m.t + ")");
      c.onclick = () => { $("map-step").value = String(m.step); drawMaps(); };
      $("x0").append(c);
      return;
    }
    state.running = false;
    state.image = m.image;
    const ms = performance.now() - state.started;
    live.last = { settings: state.settings, ms, workerMs: m.ms, unetMs: m.unetMs, decodeMs: m.decodeMs };
    draw($("image"), m.image);
    fillStepChoice();
    drawMaps();
    status(`${state.settings.steps} steps with maps in ${(ms / 1000).toFixed(2)} s`);
    if (state.queued) return start();
    for (const w of state.waiters.splice(0)) w.resolve(live.last);
  }

  function canvas(rgba, title) {
    const c = document.createElement("canvas");
    c.width = width; c.height = height; c.title = title;
    draw(c, rgba);
    return c;
  }

  function draw(c, rgba) { c.getContext("2d").putImageData(new ImageData(new Uint8ClampedArray(rgba), width, height), 0, 0); }

  function wordsChanged(words) {
    const choice = $("word"), before = choice.selectedOptions[0]?.textContent;
    choice.replaceChildren(new Option("(none)", ""), ...words.map((w, i) => new Option(w.text, String(i))));
    const again = words.findIndex((w) => w.text === before);
    choice.value = again >= 0 ? String(again) : "";
  }

  function fillStepChoice() {
    const choice = $("map-step"), keep = choice.value;
    choice.replaceChildren(new Option("mean of all steps", "mean"), ...state.maps.map((_, k) => new Option("step " + k, String(k))));
    choice.value = [...choice.options].some((o) => o.value === keep) ? keep : "mean";
  }

  function heatmap(word, layer = $("map-layer").value, step = $("map-step").value) {
    const index = typeof word === "number" ? word : state.words.findIndex((w) => w.text === word);
    if (index < 0) throw new Error(`no word ${word} in the prompt`);
    const layers = layer === "all" ? manifest.layers.map((_, i) => i) : [Number(layer)];
    const steps = step === "mean" ? state.maps.map((_, k) => k) : [Number(step)];
    return sdlabHeatmap.heatmap(state.maps, manifest.layers, state.words[index].positions, layers, steps, [height, width]);
  }

  function drawMaps() {
    const box = $("maps");
    box.replaceChildren();
    state.words.forEach((w, i) => {
      const heat = heatmap(i), rgba = new Uint8ClampedArray(width * height * 4);
      for (let p = 0; p < heat.length; p++) {  // the image, dimmed, under the heat in orange
        const g = 0.3 * (state.image[4 * p] + state.image[4 * p + 1] + state.image[4 * p + 2]) / 3, h = heat[p];
        rgba.set([g + 255 * h * 0.85, g + 160 * h * h * 0.85, g + 40 * h, 255], 4 * p);
      }
      const figure = document.createElement("figure");
      const caption = document.createElement("figcaption");
      caption.textContent = w.text;
      figure.append(canvas(rgba, "where the pixels read " + w.text), caption);
      box.append(figure);
    });
  }

  $("map-layer").replaceChildren(new Option("all cross-attention layers", "all"),
    ...manifest.layers.map((l, i) => new Option(`${l.path.replace(".transformer_blocks.0.attn2", "")} (${l.grid.join("x")})`, String(i))));
  $("skip").replaceChildren(new Option("(none)", ""),
    ...manifest.skips.map((s, k) => new Option(`${s.source} -> ${s.target}`, String(k))));
  $("controls").addEventListener("submit", (e) => { e.preventDefault(); live.ready.then(generate); });
  for (const id of ["map-layer", "map-step"]) $(id).addEventListener("change", drawMaps);
  for (const id of ["skip-scale", "word-weight"]) {
    $(id).addEventListener("input", () => { $(id + "-value").textContent = $(id).value; live.ready.then(generate); });
  }
  for (const id of ["skip", "word"]) $(id).addEventListener("change", () => live.ready.then(generate));
  live.run = () => live.ready.then(generate);
  live.heatmap = heatmap;
  live.words = () => state.words.map((w) => w.text);
  live.busy = () => state.running || state.queued;
})();
