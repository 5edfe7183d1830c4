// Colouring points by a number: a 256-step ramp from the colour scale's stops (Python sends plotly's Viridis, the
// one the app's other plots use) and the colour bar under the plane with its threshold.
// Top-level definitions only: the component concatenates its files.

function cmRamp(stops) {
  const rgb = stops.map((h) => [1, 3, 5].map((k) => parseInt(h.slice(k, k + 2), 16)));
  const ramp = new Uint8Array(256 * 3);
  for (let i = 0; i < 256; i++) {
    const t = (i / 255) * (rgb.length - 1), k = Math.min(Math.floor(t), rgb.length - 2), f = t - k;
    for (let c = 0; c < 3; c++) ramp[3 * i + c] = Math.round(rgb[k][c] * (1 - f) + rgb[k + 1][c] * f);
  }
  return ramp;
}

// index into the ramp of value v on [lo, hi]
function cmIndex(v, lo, hi) {
  return Math.max(0, Math.min(255, Math.round(((v - lo) / (hi - lo || 1)) * 255)));
}

function cmNumber(v) {
  return Math.abs(v) >= 1000 || Math.abs(v) < 0.01 && v !== 0 ? v.toPrecision(3) : +v.toFixed(2) + "";
}

// the bar: the ramp over [lo, hi], the part below `above` greyed out (those points are hidden)
function cmDrawBar(canvas, ramp, lo, hi, above) {
  const w = canvas.width, h = canvas.height, ctx = canvas.getContext("2d");
  const img = ctx.createImageData(w, h);
  for (let x = 0; x < w; x++) {
    const i = Math.round((x / (w - 1)) * 255), hidden = above != null && lo + (x / (w - 1)) * (hi - lo) < above;
    for (let y = 0; y < h; y++) {
      const o = 4 * (y * w + x);
      for (let c = 0; c < 3; c++) img.data[o + c] = hidden ? 220 : ramp[3 * i + c];
      img.data[o + 3] = 255;
    }
  }
  ctx.putImageData(img, 0, 0);
}
