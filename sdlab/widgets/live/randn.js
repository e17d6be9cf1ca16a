// torch.randn on the CPU, float32, for a seed: mt19937 (torch.Generator().manual_seed) and ATen's normal_fill
// (uniforms from 24 random bits, Box-Muller on 16-value chunks, the last chunk redrawn when n % 16 != 0).
// Only n >= 16 (torch draws smaller tensors another way); torch's AVX2 build rounds log/sin/cos to within 1 ulp,
// so values agree to ~1e-6, not always bit for bit.
// >>> sdlabRandn.randn(42, 256)   // Float32Array as torch.randn(256, generator=torch.Generator().manual_seed(42))
(function (root) {
  "use strict";

  function mt19937(seed) {
    const mt = new Uint32Array(624);
    let index = 624;
    mt[0] = Number(BigInt.asUintN(32, BigInt(seed)));
    for (let i = 1; i < 624; i++) {
      const prev = mt[i - 1] ^ (mt[i - 1] >>> 30);
      mt[i] = (Math.imul(1812433253, prev) + i) >>> 0;
    }
    function twist() {
      for (let i = 0; i < 624; i++) {
        const y = (mt[i] & 0x80000000) | (mt[(i + 1) % 624] & 0x7fffffff);
        mt[i] = (mt[(i + 397) % 624] ^ (y >>> 1) ^ (y & 1 ? 0x9908b0df : 0)) >>> 0;
      }
      index = 0;
    }
    return function next() {
      if (index >= 624) twist();
      let y = mt[index++];
      y ^= y >>> 11;
      y ^= (y << 7) & 0x9d2c5680;
      y ^= (y << 15) & 0xefc60000;
      y ^= y >>> 18;
      return y >>> 0;
    };
  }

  function uniform(next) {  // ATen's uniform_real_distribution<float>: 24 bits over 2^24, exact in float32
    return (next() & 0xffffff) / 16777216;
  }

  function fill16(d, o) {  // ATen's normal_fill_16: (1 - u1, u2) pairs j, j + 8 of a chunk
    const f = Math.fround;
    for (let j = 0; j < 8; j++) {
      const radius = f(Math.sqrt(f(-2 * f(Math.log(f(1 - d[o + j]))))));
      const theta = f(2 * Math.PI * d[o + j + 8]);
      d[o + j] = f(radius * f(Math.cos(theta)));
      d[o + j + 8] = f(radius * f(Math.sin(theta)));
    }
  }

  function randn(seed, n) {
    if (!(n >= 16)) throw new Error("randn ports torch's path for 16 or more values; got " + n);
    const next = mt19937(seed);
    const d = new Float32Array(n);
    for (let i = 0; i < n; i++) d[i] = uniform(next);
    for (let i = 0; i + 16 <= n; i += 16) fill16(d, i);
    if (n % 16) {
      for (let j = n - 16; j < n; j++) d[j] = uniform(next);
      fill16(d, n - 16);
    }
    return d;
  }

  const api = { mt19937, randn };
  if (typeof module !== "undefined" && module.exports) module.exports = api;
  else root.sdlabRandn = api;
})(this);
