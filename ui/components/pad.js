// The drawing pad's MNIST preprocessing in plain JavaScript.
// Top-level functions only: this file is prepended to the component's module and also loaded alone by the tests.

// The drawing pad's strokes (light on black, grey levels 0..1 of a side×side field) made into an MNIST-like input
// as vae_core/preprocess.py does for uploads: crop to the content, fit the longer side to 20 px by area averaging,
// put the centre of mass at (14, 14) with whole-pixel shifts, scale so the brightest pixel is 1.
// Returns null for an empty pad.
function lpPadToInput(raw, side) {
  const FLOOR = 0.05, SIZE = 28, BOX = 20, COM = 14.0;
  // preprocess.py's floor: levels below 5 % of the contrast are background, the rest stretched to 0..1
  const level = raw.map((v) => Math.min(Math.max((v - FLOOR) / (1 - FLOOR), 0), 1));
  let r0 = side, r1 = -1, c0 = side, c1 = -1;
  for (let r = 0; r < side; r++) {
    for (let c = 0; c < side; c++) {
      if (level[r * side + c] > 0) {
        if (r < r0) r0 = r;
        if (r > r1) r1 = r;
        if (c < c0) c0 = c;
        if (c > c1) c1 = c;
      }
    }
  }
  if (r1 < 0) return null;
  const ch = r1 - r0 + 1, cw = c1 - c0 + 1;
  const scale = BOX / Math.max(ch, cw);
  const nh = Math.max(1, Math.round(ch * scale)), nw = Math.max(1, Math.round(cw * scale));
  // area average: each output pixel is the mean of the crop over its footprint (fractional edges weighted)
  const small = new Float64Array(nh * nw);
  const fy = ch / nh, fx = cw / nw;
  for (let y = 0; y < nh; y++) {
    const ya = y * fy, yb = ya + fy;
    for (let x = 0; x < nw; x++) {
      const xa = x * fx, xb = xa + fx;
      let s = 0, area = 0;
      for (let r = Math.floor(ya); r < Math.ceil(yb); r++) {
        const wy = Math.min(r + 1, yb) - Math.max(r, ya);
        for (let c = Math.floor(xa); c < Math.ceil(xb); c++) {
          const wx = Math.min(c + 1, xb) - Math.max(c, xa);
          s += wy * wx * level[(r0 + r) * side + c0 + c];
          area += wy * wx;
        }
      }
      small[y * nw + x] = s / area;
    }
  }
  let mass = 0, my = 0, mx = 0;
  for (let y = 0; y < nh; y++) for (let x = 0; x < nw; x++) {
    const v = small[y * nw + x];
    mass += v; my += v * y; mx += v * x;
  }
  if (mass <= 0) return null;
  const clamp = (v, lo, hi) => Math.min(Math.max(v, lo), hi);
  const top = clamp(Math.floor(COM - my / mass + 0.5), 0, SIZE - nh);
  const left = clamp(Math.floor(COM - mx / mass + 0.5), 0, SIZE - nw);
  const image = new Float32Array(SIZE * SIZE);
  let peak = 0;
  for (let y = 0; y < nh; y++) for (let x = 0; x < nw; x++) peak = Math.max(peak, small[y * nw + x]);
  for (let y = 0; y < nh; y++) for (let x = 0; x < nw; x++) image[(top + y) * SIZE + left + x] = small[y * nw + x] / peak;
  return image;
}
