// sdlab's views, drawn in the browser from data the kernel sent once: no control waits for the kernel.
// The model is anywidget's (in a notebook) or a small stand-in (in an exported page); both have get/set/on.
const bytes = s => Uint8Array.from(atob(s), c => c.charCodeAt(0));
const floats = s => new Float32Array(bytes(s).buffer);
const el = (tag, props = {}, ...kids) => { const e = Object.assign(document.createElement(tag), props); e.append(...kids); return e; };
const fmt = v => (v === 0 ? "0" : Math.abs(v) >= 0.01 && Math.abs(v) < 1000 ? v.toFixed(3).replace(/\.?0+$/, "") : v.toExponential(2));
const range = values => values.reduce(([a, b], v) => [Math.min(a, v), Math.max(b, v)], [Infinity, -Infinity]);

function choose(label, options, onchange) {  // options: [[value, text, title?]]
  const s = el("select");
  for (const [v, t, title] of options) s.append(el("option", { value: String(v), textContent: t, title: title || t }));
  s.addEventListener("change", () => onchange(s.value));
  return [el("label", { className: "sdlab-control" }, el("span", { textContent: label }), s), s];
}

function slider(label, min, max, step, oninput) {
  const s = el("input", { type: "range", min, max, step });
  s.setAttribute("aria-label", label);
  s.addEventListener("input", () => oninput(+s.value));
  return [el("label", { className: "sdlab-control" }, el("span", { textContent: label }), s), s];
}

// A canvas read as a picture by a screen reader: its text alternative says what is drawn and its value range.
function figure(canvas, alt) { canvas.setAttribute("role", "img"); canvas.setAttribute("aria-label", alt); return canvas; }
const readout = () => el("div", { className: "sdlab-readout", role: "status", textContent: "click a picture to read a value" });

// Which (row, column) of an h x w grid drawn over `canvas` a click landed on.
function cellAt(canvas, event, h, w) {
  const r = canvas.getBoundingClientRect();
  const clamp = (v, n) => Math.max(0, Math.min(n - 1, Math.floor(v * n)));
  return [clamp((event.clientY - r.top) / r.height, h), clamp((event.clientX - r.left) / r.width, w)];
}

// Paint a (h, w) grid of values in 0..1 as cells, optionally over a grey picture, on a square-ish canvas.
function paint(canvas, values, h, w, lut, alpha = 1, under = null) {
  const cells = new ImageData(w, h);
  for (let i = 0; i < h * w; i++) {
    const k = Math.max(0, Math.min(255, Math.round(values[i] * 255))) * 3;
    cells.data.set([lut[k], lut[k + 1], lut[k + 2], 255], i * 4);
  }
  const small = el("canvas", { width: w, height: h });
  small.getContext("2d").putImageData(cells, 0, 0);
  const ctx = canvas.getContext("2d");
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  ctx.globalAlpha = 1;
  if (under) { ctx.imageSmoothingEnabled = true; ctx.drawImage(under, 0, 0, canvas.width, canvas.height); }
  ctx.imageSmoothingEnabled = false;  // coarse grids show as their cells
  ctx.globalAlpha = under ? alpha : 1;
  ctx.drawImage(small, 0, 0, canvas.width, canvas.height);
  ctx.globalAlpha = 1;
}

function picture(rgb, h, w, channels = 3) {  // uint8 pixels -> a canvas to draw from
  const img = new ImageData(w, h);
  for (let i = 0; i < h * w; i++) {
    const p = rgb.subarray(i * channels, i * channels + channels);
    img.data.set(channels === 1 ? [p[0], p[0], p[0], 255] : [p[0], p[1], p[2], 255], i * 4);
  }
  const c = el("canvas", { width: w, height: h });
  c.getContext("2d").putImageData(img, 0, 0);
  return c;
}

// A vertical colour bar with its value range written at both ends and the middle. bar.shade(alpha) repaints it as
// an overlay at that opacity looks over the greys under it (0.4..1, left to right), so every colour seen is on it.
function colourBar(lut, height, name = "colour bar") {
  const strip = el("canvas", { width: 16, height: 256, className: "sdlab-strip" });
  const ctx = strip.getContext("2d");
  let lo = 0, hi = 1;
  strip.style.height = height + "px";
  const [top, mid, bottom] = [0, 1, 2].map(() => el("span"));
  const bar = el("div", { className: "sdlab-bar" }, strip, el("div", { className: "sdlab-ticks" }, top, mid, bottom));
  bar.shade = (alpha = 1) => {
    for (let x = 0; x < 16; x++) {
      const g = Math.round(255 * (0.4 + 0.6 * x / 15));
      ctx.globalAlpha = 1;
      ctx.fillStyle = `rgb(${g},${g},${g})`;
      ctx.fillRect(x, 0, 1, 256);
    }
    ctx.globalAlpha = alpha;
    for (let i = 0; i < 256; i++) {
      const k = (255 - i) * 3;
      ctx.fillStyle = `rgb(${lut[k]},${lut[k + 1]},${lut[k + 2]})`;
      ctx.fillRect(0, i, 16, 1);
    }
    ctx.globalAlpha = 1;
  };
  bar.range = (a, b) => {
    [lo, hi] = [a, b];
    bottom.textContent = fmt(a); mid.textContent = fmt((a + b) / 2); top.textContent = fmt(b);
    figure(strip, `${name}: from ${fmt(a)} at the bottom to ${fmt(b)} at the top`);
  };
  bar.valueAt = event => { const r = strip.getBoundingClientRect(); return hi - (hi - lo) * (event.clientY - r.top) / r.height; };
  bar.shade(1);
  return bar;
}

// A line over the settings a slider moves through, the current one marked; a click picks the nearest setting.
function lineChart(values, names, label, onpick) {
  const c = el("canvas", { width: 240, height: 90, className: "sdlab-line", tabIndex: -1 });
  const [lo, hi] = range(values.filter(v => Number.isFinite(v)));
  const x = i => 28 + i * (c.width - 40) / Math.max(1, values.length - 1);
  const y = v => c.height - 14 - (v - lo) / ((hi - lo) || 1) * (c.height - 26);
  c.addEventListener("click", e => {
    const r = c.getBoundingClientRect(), px = (e.clientX - r.left) * c.width / r.width;
    onpick(Math.max(0, Math.min(values.length - 1, Math.round((px - 28) / ((c.width - 40) / Math.max(1, values.length - 1))))));
  });
  c.draw = current => {
    const ctx = c.getContext("2d");
    ctx.clearRect(0, 0, c.width, c.height);
    ctx.font = "10px system-ui, sans-serif"; ctx.fillStyle = "#555";
    ctx.fillText(fmt(hi), 0, 10); ctx.fillText(fmt(lo), 0, c.height - 14);
    ctx.fillText(names[0], 24, c.height - 2); ctx.textAlign = "right"; ctx.fillText(names[names.length - 1], c.width - 4, c.height - 2);
    ctx.textAlign = "left"; ctx.strokeStyle = "#1f77b4"; ctx.lineWidth = 2; ctx.beginPath();
    values.forEach((v, i) => (i ? ctx.lineTo(x(i), y(v)) : ctx.moveTo(x(i), y(v))));
    ctx.stroke();
    ctx.fillStyle = "#d62728"; ctx.beginPath(); ctx.arc(x(current), y(values[current]), 4, 0, 7); ctx.fill();
    figure(c, `${label}: from ${fmt(lo)} to ${fmt(hi)}; at ${names[current]} it is ${fmt(values[current])}`);
  };
  return c;
}

function explorer(model, root, d) {
  const lut = bytes(d.lut), maps = d.maps.map(bytes), maxes = d.maxes.map(floats);
  const [H, W] = d.size, grey = picture(bytes(d.grey), H, W, 1);
  const state = () => model.get("state");
  const set = (k, v) => { model.set("state", { ...state(), [k]: v }); model.save_changes(); };
  const [word, wordSel] = choose("word", d.words.map(w => [w, w]), v => set("word", v));
  const [layer, layerSel] = choose("layer", d.layers.map((p, i) => [p, d.short[i], p]), v => set("layer", v));
  const heads = [[0, "mean"], ...Array.from({ length: d.heads }, (_, i) => [i + 1, String(i)])];
  const [head, headSel] = choose("head", heads, v => set("head", +v));
  const [step, stepSel] = choose("step", [[0, "mean"], ...d.steps.map((s, i) => [i + 1, String(s)])], v => set("step", +v));
  const [opacityBox, opacity] = slider("opacity", 0, 1, 0.05, v => set("opacity", v));
  const norms = Object.keys(d.legend).map(n => {
    const b = el("button", { textContent: n, className: "sdlab-norm", title: d.legend[n] });
    b.addEventListener("click", () => set("norm", n));
    return b;
  });
  const tokens = el("div", { className: "sdlab-tokens" }), legend = el("div", { className: "sdlab-legend" });
  const side = 232, heat = el("canvas", { width: side, height: side, className: "sdlab-heat" });
  const image = figure(picture(bytes(d.image), H, W), "the generated image");
  Object.assign(image, { className: "sdlab-image" });
  image.style.width = image.style.height = side + "px";
  const bar = colourBar(lut, side, "attention colour bar"), title = el("div", { className: "sdlab-title" }), said = readout();
  const normGroup = el("div", { className: "sdlab-control", role: "group" }, el("span", { textContent: "normalise" }), ...norms);
  normGroup.setAttribute("aria-label", "normalise");
  const controls = el("div", { className: "sdlab-controls" }, word, tokens, layer, head, step, opacityBox, normGroup);
  root.append(controls, el("div", {}, title, el("div", { className: "sdlab-panels" }, image, heat, bar), said, legend));
  let shown = { values: null, lo: 0, hi: 1, h: 1, w: 1 };
  const tell = e => {
    const { values, h, w } = shown, [r, c] = cellAt(e.currentTarget, e, h, w);
    said.textContent = `"${state().word}" at row ${r}, column ${c} of the ${h}x${w} grid: attention ${fmt(values[r * w + c])}`;
  };
  heat.addEventListener("click", tell);
  image.addEventListener("click", tell);
  bar.addEventListener("click", e => { said.textContent = `colour bar: ${fmt(bar.valueAt(e))}`; });
  function draw() {
    const s = state(), l = d.layers.indexOf(s.layer), [h, w] = d.grids[l], n = h * w;
    const slotOf = w => (d.words.indexOf(w) * d.slots[0] + s.step) * d.slots[1] + s.head, slot = slotOf(s.word);
    const top = maxes[l][slot], q = maps[l].subarray(slot * n, slot * n + n);
    const values = Float32Array.from(q, v => v / 255 * top);
    const [least, most] = range(values);
    const lo = s.norm === "minmax" ? least : 0;
    const tops = d.words.map(w => [w, maxes[l][slotOf(w)]]).sort((a, b) => b[1] - a[1]);
    const hi = s.norm === "none" ? tops[0][1] : most;
    paint(heat, values.map(v => (v - lo) / (hi - lo || 1)), h, w, lut, s.opacity, grey);
    bar.range(lo, hi);
    bar.shade(s.opacity);
    [wordSel.value, layerSel.value, headSel.value, stepSel.value, opacity.value] = [s.word, s.layer, s.head, s.step, s.opacity];
    norms.forEach(b => { const on = b.textContent === s.norm; b.classList.toggle("sdlab-on", on); b.setAttribute("aria-pressed", String(on)); });
    tokens.innerHTML = d.tokens[s.word];
    title.textContent = `"${s.word}" | ${d.short[l]} (${h}x${w} grid) | head ${heads[s.head][1]} | ` +
      `step ${s.step ? d.steps[s.step - 1] : "mean"}`;
    figure(heat, `attention map of "${s.word}" at ${d.short[l]}: values ${fmt(least)} to ${fmt(most)}; ` +
      `top words here: ${tops.slice(0, 3).map(([w, v]) => `${w} ${fmt(v)}`).join(", ")}`);
    legend.textContent = `${s.norm}: ${d.legend[s.norm]}. The bar shows the colours at opacity ${s.opacity} over the ` +
      `grey image (darker left, lighter right).`;
    shown = { values, h, w };
    root.dataset.view = JSON.stringify(s);
  }
  model.on("change:state", draw);
  draw();
}

function stepper(model, root, d) {
  const lut = bytes(d.lut), maps = d.maps.map(bytes), [h, w] = d.grid, n = h * w, side = 120;
  const state = () => model.get("state");
  const set = (k, v) => { model.set("state", { ...state(), [k]: v }); model.save_changes(); };
  const [stepBox, step] = slider("step", 1, d.n, 1, v => set("step", v - 1));
  const [channel, channelSel] = choose("channel", Array.from({ length: d.channels }, (_, c) => [c, String(c)]),
    v => set("channel", +v));
  const title = el("div", { className: "sdlab-title" }), said = readout();
  const panels = d.names.map((name, k) => {
    const canvas = el("canvas", { width: side, height: side }), bar = colourBar(lut, side, `${name} colour bar`);
    bar.range(-d.limits[k], d.limits[k]);
    const caption = el("div", { className: "sdlab-caption" });
    canvas.addEventListener("click", e => {
      const s = state(), [r, c] = cellAt(canvas, e, h, w), q = maps[k][(s.step * d.channels + s.channel) * n + r * w + c];
      said.textContent = `${name}, channel ${s.channel}, row ${r}, column ${c}: ${fmt((q / 255 * 2 - 1) * d.limits[k])}`;
    });
    return { name, canvas, caption, box: el("figure", {}, caption, el("div", { className: "sdlab-panels" }, canvas, bar)) };
  });
  const [dh, dw] = d.decoded_size, decoded = figure(el("canvas", { width: dw || 1, height: dh || 1 }), "x0 decoded");
  decoded.style.width = decoded.style.height = side + "px";
  const pictures = [el("figure", {}, el("div", { className: "sdlab-caption", textContent: "x0 decoded" }), decoded)];
  if (d.final) {
    const [fh, fw] = d.final_size, final = figure(picture(bytes(d.final), fh, fw), "the final image");
    final.style.width = final.style.height = side + "px";
    pictures.push(el("figure", {}, el("div", { className: "sdlab-caption", textContent: "final image" }), final));
  }
  const decodedPixels = d.decoded.map(s => s && bytes(s));
  root.append(el("div", { className: "sdlab-row" }, stepBox, channel, title),
    el("div", { className: "sdlab-grid" }, ...panels.map(p => p.box), ...pictures), said,
    el("div", { className: "sdlab-legend", textContent: d.legend }));
  function draw() {
    const s = state();
    panels.forEach((p, k) => {
      const q = maps[k].subarray((s.step * d.channels + s.channel) * n, (s.step * d.channels + s.channel + 1) * n);
      const [a, b] = range(q);
      paint(p.canvas, Float32Array.from(q, v => v / 255), h, w, lut);
      p.caption.textContent = `${p.name}, channel ${s.channel}`;
      figure(p.canvas, `${p.name}, channel ${s.channel}: values ${fmt((a / 255 * 2 - 1) * d.limits[k])} to ` +
        `${fmt((b / 255 * 2 - 1) * d.limits[k])} on a scale of ±${fmt(d.limits[k])}`);
    });
    const px = decodedPixels[s.step];
    if (px) decoded.getContext("2d").drawImage(picture(px, dh, dw), 0, 0);
    [step.value, channelSel.value] = [s.step + 1, s.channel];
    title.textContent = `step ${s.step + 1} of ${d.n}, timestep ${d.timesteps[s.step]} (${d.title})`;
    root.dataset.view = JSON.stringify(s);
  }
  model.on("change:state", draw);
  draw();
}

function tracer(model, root, d) {
  const state = () => model.get("state");
  const set = change => { model.set("state", { ...state(), ...change }); model.save_changes(); };
  const depthOf = {};
  for (const c of d.components) for (const [, name, depth] of d.blocks[c]) depthOf[name] = depth;
  const [component, componentSel] = choose("component", d.components.map(c => [c, c]),
    c => set({ component: c, selected: d.blocks[c][0][1] }));
  const depth = el("input", { type: "number", min: 1, max: 8, className: "sdlab-depth" });
  depth.addEventListener("input", () => depth.value && set({ depth: +depth.value }));
  const list = el("select", { size: 10, className: "sdlab-tree" });
  list.setAttribute("aria-label", "blocks of the component, by depth");
  list.addEventListener("change", () => set({ selected: list.value }));
  const buttons = d.stages.map(([row, col, name, path, tip]) => {
    const b = el("button", { textContent: path, title: tip, className: "sdlab-stage" });
    b.style.gridArea = `${row + 1} / ${col + 1}`;
    b.addEventListener("click", () => set({ selected: name }));
    return [name, b];
  });
  const u = el("div", { className: "sdlab-u", role: "group" }, ...buttons.map(([, b]) => b));
  u.setAttribute("aria-label", "the UNet's stages as a U");
  const details = el("div", { className: "sdlab-details" }), diagram = el("div", { className: "sdlab-diagram", role: "figure" });
  diagram.addEventListener("click", e => {  // a click on a drawn block selects it, as the tree would
    const name = e.target.closest("g.node")?.querySelector("title")?.textContent;
    if (name && name in d.details) set({ selected: name, depth: Math.max(state().depth, depthOf[name]) });
  });
  root.append(el("div", { className: "sdlab-picker" },
    el("div", { className: "sdlab-row" }, component, el("label", { className: "sdlab-control" },
      el("span", { textContent: "depth" }), depth)), list, u, details), diagram);
  // made once per component and kept: a change re-lists these nodes and toggles a few classes, never rebuilds
  const options = {}, svgs = {}, hits = new Set();
  const optionsOf = c => (options[c] ||= d.blocks[c].map(([label, name, dep]) =>
    Object.assign(el("option", { value: name, textContent: label }), { depth: dep })));
  // every diagram stays laid out in one grid cell and only the shown one is visible: a switch repaints, no relayout
  for (const c of d.components) {
    const box = el("div", { className: "sdlab-svgs" });
    box.innerHTML = d.svgs[c];
    const nodes = [...box.querySelectorAll("g.node")].map(g => [g.querySelector("title").textContent, g]);
    nodes.forEach(([name, g]) => { if (name in d.details) g.classList.add("sdlab-pick"); });
    svgs[c] = { box, nodes };
    diagram.append(box);
  }
  const svgOf = c => svgs[c];
  let shown = {};
  const within = (node, sel) => node === sel || sel.startsWith(node + ".") || node.startsWith(sel + ".");
  function draw() {
    const s = state();
    if (shown.component !== s.component || shown.depth !== s.depth) {
      list.replaceChildren(...optionsOf(s.component).filter(o => o.depth <= s.depth));
      u.style.display = s.component === "unet" ? "" : "none";
    }
    if (shown.component !== s.component) for (const c of d.components) svgs[c].box.classList.toggle("sdlab-off", c !== s.component);
    if (shown.selected !== s.selected || shown.component !== s.component || shown.depth !== s.depth) {
      // a block deeper than the tree lists stays selected; the tree marks the listed block that holds it
      const listed = [...list.options].filter(o => o.value === s.selected || s.selected.startsWith(o.value + "."));
      list.value = listed.length ? listed[listed.length - 1].value : "";
      if (shown.selected !== s.selected) details.innerHTML = d.details[s.selected];
      for (const [name, b] of buttons) {
        const on = s.selected === name || s.selected.startsWith(name + ".");
        b.classList.toggle("sdlab-on", on);
        b.setAttribute("aria-pressed", String(on));
      }
      for (const g of hits) g.classList.remove("sdlab-hit");
      hits.clear();
      for (const [name, g] of svgOf(s.component).nodes) if (within(name, s.selected)) { g.classList.add("sdlab-hit"); hits.add(g); }
      list.selectedOptions[0]?.scrollIntoView({ block: "nearest" });
    }
    depth.value = s.depth;
    componentSel.value = s.component;
    diagram.setAttribute("aria-label", `diagram of ${s.component}; ${s.selected} highlighted; click a block to select it`);
    shown = s;
    root.dataset.view = JSON.stringify(s);
  }
  model.on("change:state", draw);
  draw();
}

// The forward process: one scene's x_t (decoded) at each kept timestep, with alpha_bar and SNR written and plotted.
function noise(model, root, d) {
  const [h, w] = d.size, side = 200, pictures = d.images.map(s => picture(bytes(s), h, w));
  const state = () => model.get("state");
  const set = k => { model.set("state", { ...state(), index: k }); model.save_changes(); };
  const [tBox, t] = slider("t", 0, d.timesteps.length - 1, 1, set);
  const image = figure(el("canvas", { width: w, height: h, className: "sdlab-image" }), "x_t decoded");
  image.style.width = image.style.height = side + "px";
  const snr = d.alpha_bar.map(a => Math.log10(a / (1 - a)));
  const chart = lineChart(snr, d.timesteps.map(String), "log10 SNR over t", set);
  const title = el("div", { className: "sdlab-title" });
  root.append(el("div", { className: "sdlab-row" }, tBox, title),
    el("div", { className: "sdlab-panels" }, image, el("figure", {}, el("div", { className: "sdlab-caption",
      textContent: "log10 SNR = log10(alpha_bar / (1 - alpha_bar)) over t" }), chart)),
    el("div", { className: "sdlab-legend", textContent: d.legend }));
  function draw() {
    const s = state(), k = s.index, a = d.alpha_bar[k];
    image.getContext("2d").drawImage(pictures[k], 0, 0);
    chart.draw(k);
    t.value = k;
    t.setAttribute("aria-valuetext", `t = ${d.timesteps[k]}`);
    title.textContent = `t = ${d.timesteps[k]}: alpha_bar = ${fmt(a)}, SNR = ${fmt(a / (1 - a))} ` +
      `(signal ${fmt(Math.sqrt(a))} x0 + noise ${fmt(Math.sqrt(1 - a))} ε)`;
    figure(image, `x_t decoded at t = ${d.timesteps[k]}, alpha_bar ${fmt(a)}`);
    root.dataset.view = JSON.stringify(s);
  }
  model.on("change:state", draw);
  draw();
}

// One setting swept: the image of each (prompt, seed) at the chosen value, and the score's mean over values.
function sweep(model, root, d) {
  const [h, w] = d.size, side = 112, n = d.prompts.length * d.seeds.length;
  const pictures = d.images.map(row => row.map(s => picture(bytes(s), h, w)));
  const state = () => model.get("state");
  const set = k => { model.set("state", { ...state(), index: k }); model.save_changes(); };
  const [valueBox, value] = slider(d.setting, 0, d.values.length - 1, 1, set);
  const cells = Array.from({ length: n }, (_, i) => {
    const canvas = el("canvas", { width: w, height: h }), caption = el("div", { className: "sdlab-caption" });
    canvas.style.width = canvas.style.height = side + "px";
    return { canvas, caption, box: el("figure", {}, canvas, caption) };
  });
  const rows = d.prompts.map((p, i) => el("div", { className: "sdlab-sweep-row" },
    el("div", { className: "sdlab-caption sdlab-prompt", textContent: p }),
    el("div", { className: "sdlab-grid" }, ...cells.slice(i * d.seeds.length, (i + 1) * d.seeds.length).map(c => c.box))));
  const chart = d.mean ? lineChart(d.mean, d.values, `mean ${d.score} over ${d.setting}`, set) : null;
  const title = el("div", { className: "sdlab-title" });
  root.append(el("div", { className: "sdlab-row" }, valueBox, title),
    el("div", { className: "sdlab-panels" }, el("div", {}, ...rows), chart ? el("figure", {}, el("div", {
      className: "sdlab-caption", textContent: `mean ${d.score} over ${d.prompts.length} prompts x ${d.seeds.length} seeds` }), chart) : ""));
  function draw() {
    const s = state(), k = s.index;
    cells.forEach((c, i) => {
      const [p, seed] = [d.prompts[Math.floor(i / d.seeds.length)], d.seeds[i % d.seeds.length]];
      c.canvas.getContext("2d").drawImage(pictures[k][i], 0, 0);
      const score = d.scores ? `, ${d.score} ${fmt(d.scores[k][i])}` : "";
      c.caption.textContent = `seed ${seed}${score}`;
      figure(c.canvas, `"${p}", seed ${seed}, ${d.setting} ${d.values[k]}${score}`);
    });
    chart?.draw(k);
    value.value = k;
    value.setAttribute("aria-valuetext", `${d.setting} ${d.values[k]}`);
    title.textContent = `${d.setting} = ${d.values[k]}` + (d.mean ? `: mean ${d.score} ${fmt(d.mean[k])}` : "");
    root.dataset.view = JSON.stringify(s);
  }
  model.on("change:state", draw);
  draw();
}

// Causal tracing: scores over (site x step window) as a heatmap; a click or the arrow keys pick a cell, whose images show.
function tracing(model, root, d) {
  const [R, C] = [d.rows.length, d.cols.length], lut = bytes(d.lut), [h, w] = d.size, side = 96;
  const cell = 34, left = 150, top = 92;
  const heat = el("canvas", { width: left + C * cell + 4, height: top + R * cell + 4, className: "sdlab-cells", tabIndex: 0 });
  const pictures = d.images.map(list => list.map(s => picture(bytes(s), h, w)));
  const reference = (d.reference || []).map(s => picture(bytes(s), h, w));
  const state = () => model.get("state");
  const set = (r, c) => { model.set("state", { ...state(), row: r, col: c }); model.save_changes(); };
  heat.addEventListener("click", e => {
    const b = heat.getBoundingClientRect(), x = (e.clientX - b.left) * heat.width / b.width - left;
    const y = (e.clientY - b.top) * heat.height / b.height - top;
    if (x >= 0 && y >= 0 && x < C * cell && y < R * cell) set(Math.floor(y / cell), Math.floor(x / cell));
  });
  heat.sdlabKey = e => {
    const s = state(), moves = { ArrowUp: [-1, 0], ArrowDown: [1, 0], ArrowLeft: [0, -1], ArrowRight: [0, 1],
      Home: [-R, -C], End: [R, C], PageUp: [-R, 0], PageDown: [R, 0] }[e.key];
    if (!moves) return;
    e.preventDefault();
    set(Math.max(0, Math.min(R - 1, s.row + moves[0])), Math.max(0, Math.min(C - 1, s.col + moves[1])));
  };
  const bar = colourBar(lut, R * cell, `${d.score} colour bar`);
  bar.range(d.lo, d.hi);
  const strip = el("div", { className: "sdlab-strip-images" }), title = el("div", { className: "sdlab-title" });
  const caption = el("div", { className: "sdlab-caption", textContent: "click a cell, or focus the grid and use the arrow keys" });
  root.append(el("div", {}, title, el("div", { className: "sdlab-panels" }, heat, bar), caption), strip);
  const ctx = heat.getContext("2d");
  function draw() {
    const s = state();
    ctx.clearRect(0, 0, heat.width, heat.height);
    ctx.font = "10px system-ui, sans-serif"; ctx.fillStyle = "#333"; ctx.textAlign = "right";
    d.rows.forEach((r, i) => ctx.fillText(r.length > 26 ? "…" + r.slice(-25) : r, left - 4, top + i * cell + cell / 2 + 3));
    d.cols.forEach((c, j) => {
      ctx.save(); ctx.translate(left + j * cell + cell / 2 + 3, top - 4); ctx.rotate(-Math.PI / 3);
      ctx.textAlign = "left"; ctx.fillText(c, 0, 0); ctx.restore();
    });
    d.scores.forEach((v, i) => {
      const k = Math.max(0, Math.min(255, Math.round((v - d.lo) / ((d.hi - d.lo) || 1) * 255))) * 3;
      ctx.fillStyle = `rgb(${lut[k]},${lut[k + 1]},${lut[k + 2]})`;
      ctx.fillRect(left + (i % C) * cell, top + Math.floor(i / C) * cell, cell - 1, cell - 1);
    });
    ctx.strokeStyle = "#000"; ctx.lineWidth = 3;
    ctx.strokeRect(left + s.col * cell - 1, top + s.row * cell - 1, cell + 1, cell + 1);
    const v = d.scores[s.row * C + s.col];
    title.textContent = `${d.rows[s.row]} | ${d.cols[s.col]}: ${d.score} ${fmt(v)}`;
    const best = d.scores.map((x, i) => [x, i]).sort((a, b) => b[0] - a[0])[0];
    figure(heat, `${d.score} over ${R} sites x ${C} step windows, from ${fmt(d.lo)} to ${fmt(d.hi)}; highest ` +
      `${fmt(best[0])} at ${d.rows[Math.floor(best[1] / C)]}, ${d.cols[best[1] % C]}; chosen ${d.rows[s.row]}, ` +
      `${d.cols[s.col]}: ${fmt(v)}`);
    const shown = pictures[s.row * C + s.col].map((p, i) => [p, d.captions[i]]);
    const row = (heading, items) => el("div", {}, el("div", { className: "sdlab-caption sdlab-heading", textContent: heading }),
      el("div", { className: "sdlab-grid" }, ...items.map(([p, text]) => {
        const c = el("canvas", { width: w, height: h });
        c.getContext("2d").drawImage(p, 0, 0);
        c.style.width = c.style.height = side + "px";
        return el("figure", {}, figure(c, text), el("div", { className: "sdlab-caption", textContent: text }));
      })));
    strip.replaceChildren(row(`${d.rows[s.row]} | ${d.cols[s.col]}`, shown),
      ...(reference.length ? [row("references", reference.map((p, i) => [p, d.reference_captions[i]]))] : []));
    root.dataset.view = JSON.stringify(s);
  }
  model.on("change:state", draw);
  draw();
}

const VIEWS = { explorer, stepper, tracer, noise, sweep, tracing };

// In JupyterLab and Notebook 7 a key pressed in a view drives its control, not the notebook (which would move to
// the next cell); Escape hands focus back to the notebook. Notebook 7 reads keys on the document's capture phase,
// so only a listener on the window, which runs first, can keep them: it stops them there and hands them to the
// view's own key handler (el.sdlabKey). The default action (a select or slider moving) is not a listener: it stays.
function keepKeys(root) {
  // the notebook does not see focus or a press arrive either: making the cell active would take focus to the cell
  for (const kind of ["focusin", "mousedown"]) root.addEventListener(kind, e => e.stopPropagation());
  if (window.sdlabKeys) return;
  window.sdlabKeys = true;
  window.addEventListener("keydown", e => {
    const target = e.composedPath()[0], view = target.closest?.(".sdlab-view");  // marimo draws in a shadow root
    if (!view || e.ctrlKey || e.metaKey || e.altKey) return;
    e.stopPropagation();
    if (e.key === "Escape") {
      target.blur();
      view.closest(".jp-Notebook")?.focus();
    } else target.sdlabKey?.(e);
  }, true);
}

export default {
  render({ model, el: root }) {
    root.classList.add("sdlab-view", `sdlab-${model.get("kind")}`);
    keepKeys(root);
    VIEWS[model.get("kind")](model, root, model.get("data"));
  },
};
