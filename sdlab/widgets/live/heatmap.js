// A word's heatmap from the page's maps, as sdlab's cap.heatmap computes it: each layer's probabilities summed
// over the word's positions, on its grid, upsampled bilinearly (align_corners=False) to the image, averaged over
// the layers and steps chosen, divided by its maximum.
// >>> sdlabHeatmap.heatmap(maps, layers, [3], [0, 1, 2], [64, 64])    // Float32Array(64 * 64) in [0, 1]
(function (root) {
  "use strict";

  function upsample(flat, [gh, gw], [h, w]) {  // torch's F.interpolate(mode="bilinear", align_corners=False)
    const out = new Float32Array(h * w);
    const source = (dst, n, size) => Math.max((dst + 0.5) * (n / size) - 0.5, 0);
    for (let y = 0; y < h; y++) {
      const sy = source(y, gh, h), y0 = Math.floor(sy), y1 = Math.min(y0 + 1, gh - 1), ly = sy - y0;
      for (let x = 0; x < w; x++) {
        const sx = source(x, gw, w), x0 = Math.floor(sx), x1 = Math.min(x0 + 1, gw - 1), lx = sx - x0;
        out[y * w + x] = (1 - ly) * ((1 - lx) * flat[y0 * gw + x0] + lx * flat[y0 * gw + x1])
                       + ly * ((1 - lx) * flat[y1 * gw + x0] + lx * flat[y1 * gw + x1]);
      }
    }
    return out;
  }

  // maps[step][layer]: Float32Array(queries * keys); layers: [{grid}]; which: layer indices; steps: step indices
  function heatmap(maps, layers, positions, which, steps, size, keys = 77) {
    const sum = new Float32Array(size[0] * size[1]);
    for (const l of which) {
      const [gh, gw] = layers[l].grid, flat = new Float32Array(gh * gw);
      for (const s of steps) {
        const probs = maps[s][l];
        for (let q = 0; q < gh * gw; q++) for (const p of positions) flat[q] += probs[q * keys + p] / steps.length;
      }
      upsample(flat, [gh, gw], size).forEach((v, i) => { sum[i] += v / which.length; });
    }
    let max = 0;
    for (const v of sum) max = Math.max(max, v);
    return max > 0 ? sum.map((v) => Math.min(v / max, 1)) : sum;
  }

  function peak(heat, width) {  // (y, x) of the first maximum, as numpy's argmax
    let best = 0;
    for (let i = 1; i < heat.length; i++) if (heat[i] > heat[best]) best = i;
    return [Math.floor(best / width), best % width];
  }

  const api = { upsample, heatmap, peak };
  if (typeof module !== "undefined" && module.exports) module.exports = api;
  else root.sdlabHeatmap = api;
})(this);
