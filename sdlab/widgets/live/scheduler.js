// diffusers' DDIMScheduler (eta 0) and classifier-free guidance in float32, for the page's denoising loop.
// config is live.json's "scheduler": alphas_cumprod (zero terminal SNR already in them), timestep_spacing, ...
// >>> const ts = sdlabScheduler.timesteps(config, 20);                  // [999, 949, ..., 49] for "trailing"
// >>> const {prev, x0} = sdlabScheduler.step(config, 20, ts[0], v, x);   // one step back, and its x0 estimate
(function (root) {
  "use strict";
  const f = Math.fround;

  function roundHalfEven(x) {  // numpy's np.round
    const r = Math.round(x);
    return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
  }

  function timesteps(config, steps) {
    const n = config.num_train_timesteps;
    if (!(Number.isInteger(steps) && steps >= 1 && steps <= n)) throw new Error(`steps must be 1..${n}, not ${steps}`);
    const out = [];
    if (config.timestep_spacing === "trailing") {  // np.round(np.arange(n, 0, -n / steps)) - 1
      const ratio = n / steps;
      for (let i = 0; n - i * ratio > 0; i++) out.push(roundHalfEven(n - i * ratio) - 1);
    } else if (config.timestep_spacing === "leading") {  // (np.arange(0, steps) * (n // steps))[::-1] + offset
      const ratio = Math.floor(n / steps);
      for (let i = steps - 1; i >= 0; i--) out.push(i * ratio + config.steps_offset);
    } else {
      throw new Error(`timestep_spacing ${config.timestep_spacing} is not ported`);
    }
    return out;
  }

  function step(config, steps, t, output, sample) {
    const a = f(config.alphas_cumprod[t]);
    const prevT = t - Math.floor(config.num_train_timesteps / steps);
    const aPrev = f(prevT >= 0 ? config.alphas_cumprod[prevT] : config.final_alpha_cumprod);
    const sa = f(Math.sqrt(a)), sb = f(Math.sqrt(f(1 - a)));
    const saPrev = f(Math.sqrt(aPrev)), sbPrev = f(Math.sqrt(f(1 - aPrev)));
    const v = config.prediction_type === "v_prediction";
    if (!v && config.prediction_type !== "epsilon") throw new Error(`prediction_type ${config.prediction_type} is not ported`);
    const prev = new Float32Array(sample.length), x0 = new Float32Array(sample.length);
    for (let i = 0; i < sample.length; i++) {
      const x = sample[i], o = output[i];
      const orig = v ? f(f(sa * x) - f(sb * o)) : f(f(x - f(sb * o)) / sa);
      const eps = v ? f(f(sa * o) + f(sb * x)) : o;
      x0[i] = orig;
      prev[i] = f(f(saPrev * orig) + f(sbPrev * eps));
    }
    return { prev, x0 };
  }

  function guide(prediction, scale) {  // rows [uncond; cond] -> uncond + scale * (cond - uncond)
    const n = prediction.length / 2, out = new Float32Array(n), g = f(scale);
    for (let i = 0; i < n; i++) out[i] = f(prediction[i] + f(g * f(prediction[n + i] - prediction[i])));
    return out;
  }

  const api = { timesteps, step, guide, roundHalfEven };
  if (typeof module !== "undefined" && module.exports) module.exports = api;
  else root.sdlabScheduler = api;
})(this);
