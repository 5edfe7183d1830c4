// The forward pass of vae_core/export.py's ops, and the drawing pad's MNIST preprocessing, in plain JavaScript.
// Weights are float32; sums are accumulated in doubles, so results match torch's float32 to ~1e-6.
// Top-level functions only: this file is prepended to the component's module and also loaded alone by the tests.

function lpLinear(op, W, h) {
  const out = new Float32Array(op.out);
  const n = op.in;
  for (let o = 0; o < op.out; o++) {
    let s = W[op.b + o];
    const row = op.w + o * n;
    for (let i = 0; i < n; i++) s += W[row + i] * h[i];
    out[o] = s;
  }
  return out;
}

function lpConv(op, W, h, shape) {
  const [cin, H, Wd] = shape;
  const { cout, k, stride, pad } = op;
  const oh = Math.floor((H + 2 * pad - k) / stride) + 1, ow = Math.floor((Wd + 2 * pad - k) / stride) + 1;
  const out = new Float32Array(cout * oh * ow);
  for (let co = 0; co < cout; co++) {
    for (let oy = 0; oy < oh; oy++) {
      for (let ox = 0; ox < ow; ox++) {
        let s = W[op.b + co];
        for (let ci = 0; ci < cin; ci++) {
          for (let ky = 0; ky < k; ky++) {
            const iy = oy * stride - pad + ky;
            if (iy < 0 || iy >= H) continue;
            for (let kx = 0; kx < k; kx++) {
              const ix = ox * stride - pad + kx;
              if (ix < 0 || ix >= Wd) continue;
              s += W[op.w + ((co * cin + ci) * k + ky) * k + kx] * h[(ci * H + iy) * Wd + ix];
            }
          }
        }
        out[(co * oh + oy) * ow + ox] = s;
      }
    }
  }
  return [out, [cout, oh, ow]];
}

function lpConvT(op, W, h, shape) {
  // A transposed convolution scatters each input pixel through the kernel (weight layout: cin, cout, k, k).
  const [cin, H, Wd] = shape;
  const { cout, k, stride, pad } = op;
  const oh = (H - 1) * stride - 2 * pad + k, ow = (Wd - 1) * stride - 2 * pad + k;
  const acc = new Float64Array(cout * oh * ow);
  for (let co = 0; co < cout; co++) acc.fill(W[op.b + co], co * oh * ow, (co + 1) * oh * ow);
  for (let ci = 0; ci < cin; ci++) {
    for (let iy = 0; iy < H; iy++) {
      for (let ix = 0; ix < Wd; ix++) {
        const v = h[(ci * H + iy) * Wd + ix];
        if (v === 0) continue;  // after a ReLU most inputs are zero
        for (let co = 0; co < cout; co++) {
          const wbase = op.w + (ci * cout + co) * k * k;
          for (let ky = 0; ky < k; ky++) {
            const oy = iy * stride - pad + ky;
            if (oy < 0 || oy >= oh) continue;
            for (let kx = 0; kx < k; kx++) {
              const ox = ix * stride - pad + kx;
              if (ox < 0 || ox >= ow) continue;
              acc[(co * oh + oy) * ow + ox] += W[wbase + ky * k + kx] * v;
            }
          }
        }
      }
    }
  }
  return [Float32Array.from(acc), [cout, oh, ow]];
}

// Runs `ops` on one input; `shape` is the input's [C, H, W] (or [n] for a vector); `condition` is the one-hot label
// for a conditional model (null otherwise). Returns the flat output.
function lpRun(ops, W, input, shape, condition) {
  let h = input instanceof Float32Array ? input : Float32Array.from(input);
  let s = shape;
  for (const op of ops) {
    switch (op.op) {
      case "linear": h = lpLinear(op, W, h); s = [op.out]; break;
      case "relu": h = h.map((v) => (v > 0 ? v : 0)); break;
      case "flatten": s = [h.length]; break;
      case "reshape": s = op.shape; break;
      case "concat_condition":
        if (condition) {
          const c = new Float32Array(h.length + condition.length);
          c.set(h); c.set(condition, h.length);
          h = c;
        }
        s = [h.length];
        break;
      case "conv": [h, s] = lpConv(op, W, h, s); break;
      case "convT": [h, s] = lpConvT(op, W, h, s); break;
      default: throw new Error("unknown op " + op.op);
    }
  }
  return h;
}

function lpOneHot(spec, label) {
  if (!spec.n_classes) return null;
  const c = new Float32Array(spec.n_classes);
  c[label] = 1;
  return c;
}

// Pixel means p in [0, 1] for latent z: sigmoid of the decoder's logits, as decode_mean does.
function lpDecode(spec, W, z, label) {
  const logits = lpRun(spec.decoder, W, z, [z.length], lpOneHot(spec, label));
  const p = new Float32Array(logits.length);
  for (let i = 0; i < p.length; i++) p[i] = 1 / (1 + Math.exp(-logits[i]));
  return p;
}

// {mu, logvar}: the code of an image (flat, C·H·W values in [0, 1]); logvar is null for an autoencoder.
function lpEncode(spec, W, x, label) {
  const out = lpRun(spec.encoder, W, x, spec.image_shape, lpOneHot(spec, label));
  const d = spec.latent_dim;
  return { mu: Array.from(out.slice(0, d)), logvar: spec.probabilistic ? Array.from(out.slice(d, 2 * d)) : null };
}

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
