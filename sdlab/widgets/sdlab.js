// sdlab's three views, drawn in the browser from data the kernel sent once: no control waits for the kernel.
// The model is anywidget's (in a notebook) or a small stand-in (in an exported page); both have get/set/on.
const bytes = s => Uint8Array.from(atob(s), c => c.charCodeAt(0));
const floats = s => new Float32Array(bytes(s).buffer);
const el = (tag, props = {}, ...kids) => { const e = Object.assign(document.createElement(tag), props); e.append(...kids); return e; };
const fmt = v => (v === 0 ? "0" : Math.abs(v) >= 0.01 && Math.abs(v) < 1000 ? v.toFixed(3).replace(/\.?0+$/, "") : v.toExponential(2));

function choose(label, options, onchange) {  // options: [[value, text, title?]]
  const s = el("select");
  for (const [v, t, title] of options) s.append(el("option", { value: String(v), textContent: t, title: title || t }));
  s.addEventListener("change", () => onchange(s.value));
  return [el("label", { className: "sdlab-control" }, el("span", { textContent: label }), s), s];
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

// A vertical colour bar with its value range written at both ends and the middle.
function colourBar(lut, height) {
  const strip = el("canvas", { width: 12, height: 256, className: "sdlab-strip" });
  const ctx = strip.getContext("2d");
  for (let i = 0; i < 256; i++) {
    const k = (255 - i) * 3;
    ctx.fillStyle = `rgb(${lut[k]},${lut[k + 1]},${lut[k + 2]})`;
    ctx.fillRect(0, i, 12, 1);
  }
  strip.style.height = height + "px";
  const [hi, mid, lo] = [0, 1, 2].map(() => el("span"));
  const bar = el("div", { className: "sdlab-bar" }, strip, el("div", { className: "sdlab-ticks" }, hi, mid, lo));
  bar.range = (a, b) => { lo.textContent = fmt(a); mid.textContent = fmt((a + b) / 2); hi.textContent = fmt(b); };
  return bar;
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
  const opacity = el("input", { type: "range", min: 0, max: 1, step: 0.05 });
  opacity.addEventListener("input", () => set("opacity", +opacity.value));
  const norms = Object.keys(d.legend).map(n => {
    const b = el("button", { textContent: n, className: "sdlab-norm" });
    b.addEventListener("click", () => set("norm", n));
    return b;
  });
  const tokens = el("div", { className: "sdlab-tokens" }), legend = el("div", { className: "sdlab-legend" });
  const side = 232, heat = el("canvas", { width: side, height: side, className: "sdlab-heat" });
  const image = picture(bytes(d.image), H, W);
  Object.assign(image, { className: "sdlab-image" });
  image.style.width = image.style.height = side + "px";
  const bar = colourBar(lut, side), title = el("div", { className: "sdlab-title" });
  const controls = el("div", { className: "sdlab-controls" }, word, tokens, layer, head, step,
    el("label", { className: "sdlab-control" }, el("span", { textContent: "opacity" }), opacity),
    el("div", { className: "sdlab-control" }, el("span", { textContent: "normalise" }), ...norms));
  root.append(controls, el("div", {}, title, el("div", { className: "sdlab-panels" }, image, heat, bar), legend));
  function draw() {
    const s = state(), l = d.layers.indexOf(s.layer), [h, w] = d.grids[l], n = h * w;
    const slotOf = w => (d.words.indexOf(w) * d.slots[0] + s.step) * d.slots[1] + s.head, slot = slotOf(s.word);
    const top = maxes[l][slot], q = maps[l].subarray(slot * n, slot * n + n);
    const values = Float32Array.from(q, v => v / 255 * top);
    const lo = s.norm === "minmax" ? Math.min(...values) : 0;
    const hi = s.norm === "none" ? Math.max(...d.words.map(w => maxes[l][slotOf(w)])) : Math.max(...values);
    paint(heat, values.map(v => (v - lo) / (hi - lo || 1)), h, w, lut, s.opacity, grey);
    bar.range(lo, hi);
    [wordSel.value, layerSel.value, headSel.value, stepSel.value, opacity.value] = [s.word, s.layer, s.head, s.step, s.opacity];
    norms.forEach(b => b.classList.toggle("sdlab-on", b.textContent === s.norm));
    tokens.innerHTML = d.tokens[s.word];
    title.textContent = `"${s.word}" | ${d.short[l]} (${h}x${w} grid) | head ${heads[s.head][1]} | ` +
      `step ${s.step ? d.steps[s.step - 1] : "mean"}`;
    legend.textContent = `${s.norm}: ${d.legend[s.norm]}`;
    root.dataset.view = JSON.stringify(s);
  }
  model.on("change:state", draw);
  draw();
}

function stepper(model, root, d) {
  const lut = bytes(d.lut), maps = d.maps.map(bytes), [h, w] = d.grid, n = h * w, side = 120;
  const state = () => model.get("state");
  const set = (k, v) => { model.set("state", { ...state(), [k]: v }); model.save_changes(); };
  const slider = el("input", { type: "range", min: 1, max: d.n, step: 1 });
  slider.addEventListener("input", () => set("step", slider.value - 1));
  const [channel, channelSel] = choose("channel", Array.from({ length: d.channels }, (_, c) => [c, String(c)]),
    v => set("channel", +v));
  const title = el("div", { className: "sdlab-title" });
  const panels = d.names.map(name => {
    const canvas = el("canvas", { width: side, height: side }), bar = colourBar(lut, side);
    const caption = el("div", { className: "sdlab-caption" });
    return { name, canvas, bar, caption, box: el("figure", {}, caption, el("div", { className: "sdlab-panels" }, canvas, bar)) };
  });
  const [dh, dw] = d.decoded_size, decoded = el("canvas", { width: dw || 1, height: dh || 1 });
  decoded.style.width = decoded.style.height = side + "px";
  const pictures = [el("figure", {}, el("div", { className: "sdlab-caption", textContent: "x0 decoded" }), decoded)];
  if (d.final) {
    const [fh, fw] = d.final_size, final = picture(bytes(d.final), fh, fw);
    final.style.width = final.style.height = side + "px";
    pictures.push(el("figure", {}, el("div", { className: "sdlab-caption", textContent: "final image" }), final));
  }
  const decodedPixels = d.decoded.map(s => s && bytes(s));
  root.append(el("div", { className: "sdlab-row" },
    el("label", { className: "sdlab-control" }, el("span", { textContent: "step" }), slider), channel, title),
    el("div", { className: "sdlab-grid" }, ...panels.map(p => p.box), ...pictures));
  function draw() {
    const s = state();
    panels.forEach((p, k) => {
      const q = maps[k].subarray((s.step * d.channels + s.channel) * n, (s.step * d.channels + s.channel + 1) * n);
      paint(p.canvas, Float32Array.from(q, v => v / 255), h, w, lut);
      p.bar.range(-d.limits[k], d.limits[k]);
      p.caption.textContent = `${p.name}, channel ${s.channel}`;
    });
    const px = decodedPixels[s.step];
    if (px) decoded.getContext("2d").drawImage(picture(px, dh, dw), 0, 0);
    [slider.value, channelSel.value] = [s.step + 1, s.channel];
    title.textContent = `step ${s.step + 1} of ${d.n}, timestep ${d.timesteps[s.step]} (${d.title})`;
    root.dataset.view = JSON.stringify(s);
  }
  model.on("change:state", draw);
  draw();
}

function tracer(model, root, d) {
  const state = () => model.get("state");
  const set = change => { model.set("state", { ...state(), ...change }); model.save_changes(); };
  const [component, componentSel] = choose("component", d.components.map(c => [c, c]),
    c => set({ component: c, selected: d.blocks[c][0][1] }));
  const depth = el("input", { type: "number", min: 1, max: 8, className: "sdlab-depth" });
  depth.addEventListener("input", () => depth.value && set({ depth: +depth.value }));
  const list = el("select", { size: 14, className: "sdlab-tree" });
  list.addEventListener("change", () => set({ selected: list.value }));
  const buttons = d.stages.map(([row, col, name, path, tip]) => {
    const b = el("button", { textContent: path, title: tip, className: "sdlab-stage" });
    b.style.gridArea = `${row + 1} / ${col + 1}`;
    b.addEventListener("click", () => set({ selected: name }));
    return [name, b];
  });
  const u = el("div", { className: "sdlab-u" }, ...buttons.map(([, b]) => b));
  const details = el("div", { className: "sdlab-details" }), diagram = el("div", { className: "sdlab-diagram" });
  root.append(el("div", { className: "sdlab-picker" },
    el("div", { className: "sdlab-row" }, component, el("label", { className: "sdlab-control" },
      el("span", { textContent: "depth" }), depth)), list, u, details), diagram);
  let shown = {};
  const within = (node, sel) => node === sel || sel.startsWith(node + ".") || node.startsWith(sel + ".");
  function draw() {
    const s = state();
    if (shown.component !== s.component || shown.depth !== s.depth) {
      list.replaceChildren(...d.blocks[s.component].filter(b => b[2] <= s.depth)
        .map(([label, name]) => el("option", { value: name, textContent: label })));
      u.style.display = s.component === "unet" ? "" : "none";
    }
    if (shown.component !== s.component) diagram.innerHTML = d.svgs[s.component];
    // a block deeper than the tree lists stays selected; the tree marks the listed block that holds it
    const listed = [...list.options].map(o => o.value).filter(n => n === s.selected || s.selected.startsWith(n + "."));
    list.value = listed.length ? listed[listed.length - 1] : "";
    list.selectedOptions[0]?.scrollIntoView({ block: "nearest" });
    depth.value = s.depth;
    componentSel.value = s.component;
    details.innerHTML = d.details[s.selected];
    for (const [name, b] of buttons) b.classList.toggle("sdlab-on", s.selected === name || s.selected.startsWith(name + "."));
    for (const g of diagram.querySelectorAll("g.node")) {
      g.classList.toggle("sdlab-hit", within(g.querySelector("title").textContent, s.selected));
    }
    shown = s;
    root.dataset.view = JSON.stringify(s);
  }
  model.on("change:state", draw);
  draw();
}

const VIEWS = { explorer, stepper, tracer };

export default {
  render({ model, el: root }) {
    root.classList.add("sdlab-view", `sdlab-${model.get("kind")}`);
    VIEWS[model.get("kind")](model, root, model.get("data"));
  },
};
