// The live latent plane: codes, the decoded grid under them, decoding under the pointer, pinning, picking, lasso and
// box selection and a drawing pad, all in the browser. Python (ui/latent_plane.py) sends the model once as two static
// ONNX files named by its hash (run by runtime.js), the points once as a static file named by its hash, and the plane
// (z = origin + x·axes[0] + y·axes[1]); the component reports only pins, picks, selections, the view, the drawn digit
// and the cVAE's class back. The points are drawn by PointsLayer (points_gl.js) on their own canvas between the grid's
// and the marks'; pad.js, runtime.js, point_grid.js, points_gl.js, lasso.js, gestures.js and colormap.js are prepended
// to this file (ui/latent_plane.py: SCRIPTS).

const LP = (window.__latentPlane = window.__latentPlane || {
  tiles: new Map(), // url -> Promise<Uint8Array>: the tooltip tiles' pixels, shared by every instance and rerun
  points: new Map(), // url -> Promise<{xy, labels, indices, highlight, grid}>
  values: new Map(), // url -> Promise<Float32Array>
  states: new WeakMap(), // root element -> state kept across reruns
  groups: new Map(), // group name -> the planes whose probes follow each other
  // read by bench/live_latency.py: ms from a pointer event to the probe's repaint, from a pad stroke's end to its μ
  // on the map, and when (performance.now()) the first plane was ready and its first grid fully decoded
  timings: [], padTimings: [], firstReady: null, firstGrid: null,
});

const LP_MARGIN = { l: 46, r: 10, t: 10, b: 38 };
const LP_RADIUS = 3; // marker radius in CSS pixels; a click within it (+1) picks the point
const LP_PAD_SIDE = 280;
const LP_PEN = 18; // pen width on the pad: ~2 px strokes once a digit is fitted to 20 px, as in MNIST
const LP_GRID_SLICE_MS = 5; // the grid's decoding runs this long at a time, so the probe waits at most that
const LP_VIEW_REPORT_MS = 600; // the view goes to Python (the page's URL) this long after the last pan or zoom
const LP_ALPHA = 204; // points are drawn at 80 % opacity, faded ones at 18 %
const LP_FADED = 46;

// The points' binary file (ui/latent_plane.py: points_file): xy float32 (2n), [indices int32 (n)], labels uint8 (n),
// [highlight uint8 (n)], sorted into a PointGrid once per file.
function lpPoints(meta) {
  if (!LP.points.has(meta.url)) {
    LP.points.set(meta.url, (async () => {
      const resp = await fetch(meta.url);
      if (!resp.ok) throw new Error("the points could not be loaded (" + resp.status + ")");
      const buf = await resp.arrayBuffer(), n = meta.n;
      let at = 0;
      const take = (Type, count) => { const a = new Type(buf, at, count); at += count * Type.BYTES_PER_ELEMENT; return a; };
      const xy = take(Float32Array, 2 * n);
      const indices = meta.indices ? take(Int32Array, n) : null;
      const labels = take(Uint8Array, n);
      const highlight = meta.highlight ? take(Uint8Array, n) : null;
      return { xy, labels, indices, highlight, grid: new PointGrid(xy) };
    })());
    LP.points.get(meta.url).catch(() => LP.points.delete(meta.url));
  }
  return LP.points.get(meta.url);
}

function lpValues(url) {
  if (!LP.values.has(url)) {
    LP.values.set(url, fetch(url).then((r) => {
      if (!r.ok) throw new Error("the colouring could not be loaded (" + r.status + ")");
      return r.arrayBuffer();
    }).then((b) => new Float32Array(b)));
    LP.values.get(url).catch(() => LP.values.delete(url));
  }
  return LP.values.get(url);
}

// A tooltip tile's pixels. Tiles are written by the server in the background: one not there yet (404) is forgotten,
// so the next hover asks again.
function lpTile(url) {
  if (!LP.tiles.has(url)) {
    const job = (async () => {
      const resp = await fetch(url);
      if (!resp.ok) throw new Error("tile " + url + ": " + resp.status);
      const raw = resp.body.pipeThrough(new DecompressionStream("gzip"));
      return new Uint8Array(await new Response(raw).arrayBuffer());
    })();
    LP.tiles.set(url, job);
    job.catch(() => LP.tiles.delete(url));
  }
  return LP.tiles.get(url);
}

// what of the page's data is drawn (besides the points, their colours and the selection)
function lpLook(d) {
  const { plane, extent, center, axis_titles, prior_box, pinned, picked, marks, show_grid, classes, colors } = d;
  return JSON.stringify([plane, extent, center, axis_titles, prior_box, pinned, picked, marks, show_grid, classes, colors]);
}

function lpNiceStep(span) {
  const raw = span / 6, p = Math.pow(10, Math.floor(Math.log10(raw))), f = raw / p;
  return (f < 1.5 ? 1 : f < 3.5 ? 2 : f < 7.5 ? 5 : 10) * p;
}

// Writes image `k` of `p` (pixel means, n × C·H·W, C = 1 or 3) into ImageData `img` at (x0, y0); grey ones are
// inverted with `invert` (the grid: dark strokes on the white plane).
function lpPutImage(img, x0, y0, p, k, shape, invert) {
  const [c, h, w] = shape, hw = h * w, base = k * c * hw, g = c === 3 ? hw : 0, data = img.data;
  for (let r = 0; r < h; r++) {
    for (let col = 0; col < w; col++) {
      const i = base + r * w + col, o = 4 * ((y0 + r) * img.width + x0 + col);
      const red = Math.round(255 * p[i]);
      if (c === 3) {
        data[o] = red;
        data[o + 1] = Math.round(255 * p[i + g]);
        data[o + 2] = Math.round(255 * p[i + 2 * g]);
      } else {
        data[o] = data[o + 1] = data[o + 2] = invert ? 255 - red : red;
      }
      data[o + 3] = 255;
    }
  }
}

function lpPaintImage(canvas, p, shape) {
  const ctx = canvas.getContext("2d");
  const img = ctx.createImageData(shape[2], shape[1]);
  lpPutImage(img, 0, 0, p, 0, shape, false);
  ctx.putImageData(img, 0, 0);
}

class LatentPlane {
  constructor(root) {
    this.root = root;
    this.q = (name) => root.querySelector('[data-lp="' + name + '"]');
    this.base = this.q("base");
    this.front = this.q("front");
    this.overlay = this.q("plane");
    this.probe = this.q("probe");
    this.tooltip = this.q("tooltip");
    this.pad = this.q("pad");
    this.layer = new PointsLayer(this.q("points"));
    this.strokes = [];
    this.view = null;
    this.gridCanvas = document.createElement("canvas");
    this.gridToken = 0;
    this.probeWant = null; // the latest position asked for while a decode runs, and the times of the events asking
    this.probeEvents = [];
    this.probeBusy = false;
    this.padToken = 0;
    this.padReport = false;
    this.pointer = null; // plane coordinates under the pointer (or moved by the keys)
    this.hover = -1;
    this.drawnCode = null;
    this.pts = null; // {xy, labels, indices, highlight, grid} of the points shown
    this.xy = new Float32Array(0);
    this.labels = new Uint8Array(0);
    this.values = null; // the number each point is coloured by, or null (by class)
    this.above = null; // points whose value is below this are hidden
    this.shapes = []; // the selection: lasso and box polygons in plane coordinates, united
    this.selected = null; // Uint8Array: 1 for each point in the selection (or highlighted by the page)
    this.tool = "pan";
    this.drag = null; // what a one-pointer drag is doing: {pan: view at its start} or {shape: ShapeDraw}
    this.pinch0 = null;
    this.frame = 0;
    this.bind();
    new ResizeObserver(() => this.layout()).observe(root);
  }

  // --- data ------------------------------------------------------------------------------------------------------
  async update(data, api) {
    this.api = api;
    const prev = this.data || {};
    if (data.group) {
      const members = (LP.groups.get(data.group) || []).filter((p) => p.root.isConnected && p !== this);
      LP.groups.set(data.group, [...members, this]);
    }
    this.data = data;
    const status = this.q("status");
    // fetched and compiled while the plane is drawn
    const loading = data.model ? LpModel.load(data.model, () => { status.textContent = "preparing the model…"; }) : null;
    this.root.classList.toggle("lp-no-decode", !data.decode);
    // the pad draws a digit: only greyscale sets have one
    this.root.classList.toggle("lp-no-pad", !data.pad || (!!data.model && data.model.spec.image_shape[0] !== 1));
    this.q("pad-title").textContent = data.pad_title || "Draw a digit";
    this.root.classList.toggle("lp-compact", !!data.compact);
    this.root.classList.toggle("lp-no-select", !data.select);
    this.root.dataset.ready = "0";
    const loads = [];
    const pointsChanged = (prev.points && prev.points.url) !== (data.points && data.points.url);
    if (pointsChanged) loads.push(data.points ? lpPoints(data.points) : Promise.resolve(null));
    const valuesUrl = data.color_by && data.color_by.url;
    if (valuesUrl !== (prev.color_by && prev.color_by.url)) loads.push(valuesUrl ? lpValues(valuesUrl) : null);
    // a rerun that changes nothing drawn redraws nothing (a frame of 70,000 points is ~60 ms in software WebGL)
    let redraw = pointsChanged || lpLook(prev) !== lpLook(data);
    if (!this.view || prev.view_key !== data.view_key) {
      this.resetView(data.view);
      redraw = true;
    }
    const colorChanged = !this.ramp || JSON.stringify(prev.color_by) !== JSON.stringify(data.color_by);
    if (colorChanged) {
      this.above = data.above ?? null;
      this.ramp = cmRamp(data.colormap);
    }
    this.klass = data.klass ?? 0;
    this.buildToolbar();
    let loaded;
    try {
      loaded = await Promise.all(loads);
    } catch (e) {
      this.q("status").textContent = String(e.message || e);
      return;
    }
    if (this.data !== data) return; // a newer render arrived meanwhile
    if (pointsChanged) this.setPoints(loaded.shift());
    if (valuesUrl !== (prev.color_by && prev.color_by.url)) this.values = loaded.shift() || null;
    const selectionChanged = this.takeSelection(prev, pointsChanged);
    this.buildLegend();
    if (pointsChanged || colorChanged || selectionChanged) this.paint();
    this.layout(redraw || colorChanged || selectionChanged);
    if (loading) {
      let model;
      try {
        model = await loading;
      } catch (e) {
        status.textContent = String(e.message || e);
        return;
      }
      if (this.data !== data) return; // a newer render arrived meanwhile
      status.textContent = "";
      this.model = model;
      this.spec = data.model.spec;
      this.root.dataset.backend = model.backend;
      const [c, h, w] = this.spec.image_shape;
      this.probe.width = w;
      this.probe.height = h;
      const recon = this.q("recon");
      recon.width = w;
      recon.height = h;
      if (!prev.model || prev.model.sha !== data.model.sha || prev.view_key !== data.view_key) this.drawnCode = null;
      if (!prev.model || prev.model.sha !== data.model.sha || prev.view_key !== data.view_key ||
          prev.klass !== data.klass || !this.root.dataset.gridN) this.decodeGrid();
      if (this.pointer) this.paintProbe(this.pointer, null);
      if (this.strokes.length && c === 1) this.encodePad(false);
    }
    this.root.dataset.ready = "1";
    LP.firstReady = LP.firstReady ?? performance.now();
  }

  setPoints(pts) {
    this.pts = pts;
    this.xy = pts ? pts.xy : new Float32Array(0);
    this.labels = pts ? pts.labels : new Uint8Array(0);
    this.hover = -1;
    this.selected = null;
    this.shapes = [];
    this.layer.setPoints(pts ? pts.grid : null, new Uint8Array(4 * this.labels.length));
  }

  // The selection Python holds (restored from the page's URL, or the one this plane reported), applied when Python's
  // changed and differs from the one shown; or the page's highlight (Compare's).
  // Returns whether the selection shown changed.
  takeSelection(prev, pointsChanged) {
    const d = this.data;
    if (this.pts && this.pts.highlight) {
      this.selected = this.pts.highlight;
      this.shapes = [];
      return pointsChanged;
    }
    const sent = d.selection && d.selection.key === d.plane_id ? d.selection.shapes : [];
    const changed = pointsChanged || prev.view_key !== d.view_key ||
      JSON.stringify(prev.selection) !== JSON.stringify(d.selection);
    if (!changed || !pointsChanged && JSON.stringify(sent) === JSON.stringify(this.shapes)) return false;
    this.shapes = sent;
    this.markShapes();
    return true;
  }

  markShapes() {
    if (!this.pts || !this.shapes.length) { this.selected = null; return; }
    this.selected = new Uint8Array(this.labels.length);
    for (const s of this.shapes) this.pts.grid.markInside(s.points, this.selected);
  }

  // The colour of every point (in the layer's sorted order): its class's or its value's, faded outside a selection,
  // hidden (alpha 0) below the threshold.
  paint() {
    const n = this.labels.length, grid = this.pts && this.pts.grid;
    if (!grid) return;
    const rgba = new Uint8Array(4 * n), d = this.data, vals = this.values, cb = d.color_by;
    const classes = d.colors.map((h) => [1, 3, 5].map((k) => parseInt(h.slice(k, k + 2), 16)));
    const sel = this.selected, anySel = !!sel && sel.some((v) => v), above = vals ? this.above : null;
    let shown = 0, chosen = 0;
    for (let s = 0; s < n; s++) {
      const i = grid.order[s];
      let rgb;
      if (vals) {
        const v = vals[i];
        if (above != null && !(v >= above)) continue; // hidden: alpha stays 0
        const k = cmIndex(v, cb.lo, cb.hi);
        rgb = Number.isFinite(v) ? [this.ramp[3 * k], this.ramp[3 * k + 1], this.ramp[3 * k + 2]] : [150, 150, 150];
      } else rgb = classes[this.labels[i] % classes.length];
      const faded = anySel && !sel[i];
      rgba[4 * s] = faded ? 190 : rgb[0];
      rgba[4 * s + 1] = faded ? 190 : rgb[1];
      rgba[4 * s + 2] = faded ? 190 : rgb[2];
      rgba[4 * s + 3] = faded ? LP_FADED : LP_ALPHA;
      shown++;
      if (anySel && sel[i]) chosen++;
    }
    this.rgba = rgba;
    this.layer.setColors(rgba);
    this.root.dataset.shown = String(shown);
    this.root.dataset.selected = String(anySel ? chosen : 0);
    this.q("sel-count").textContent = anySel ? chosen.toLocaleString("en") + " selected" : "";
    this.q("sel-clear").style.display = anySel && !this.pts.highlight ? "" : "none";
  }

  isHidden(i) {
    return this.values != null && this.above != null && !(this.values[i] >= this.above);
  }

  resetView(initial) {
    const e = this.data.extent, [cx, cy] = this.data.center || [0, 0];
    this.view = initial ? { cx: initial.cx, cy: initial.cy, span: initial.span } : { cx, cy, span: 2 * e * 1.04 };
  }

  latent(x, y) {
    const { origin, axes } = this.data.plane;
    return origin.map((o, k) => o + x * axes[0][k] + y * axes[1][k]);
  }

  project(z) {
    const { origin, axes } = this.data.plane;
    let x = 0, y = 0;
    for (let k = 0; k < z.length; k++) {
      x += (z[k] - origin[k]) * axes[0][k];
      y += (z[k] - origin[k]) * axes[1][k];
    }
    return [x, y];
  }

  // the point's split and its image's index in that split
  identity(i) {
    const pts = this.data.points, seg = pts.segments.find((s) => i >= s.start && i < s.start + s.count);
    return { split: seg.split, index: this.pts.indices ? this.pts.indices[i] : i - seg.start };
  }

  // --- layout and coordinates ------------------------------------------------------------------------------------
  // sizes the canvases to the plot's width; redraws when that changed or `redraw` says so
  layout(redraw = false) {
    const host = this.q("plot");
    const size = Math.max(240, Math.min(host.clientWidth || 480, 640));
    const dpr = window.devicePixelRatio || 1;
    if (size !== this.size || dpr !== this.dpr) {
      for (const cv of [this.base, this.front, this.overlay]) {
        cv.style.width = cv.style.height = size + "px";
        cv.width = cv.height = Math.round(size * dpr);
        cv.getContext("2d").setTransform(dpr, 0, 0, dpr, 0, 0);
      }
      this.layer.canvas.style.width = this.layer.canvas.style.height = size + "px";
      host.style.height = size + "px";
      this.size = size;
      this.dpr = dpr;
      redraw = true;
    }
    if (!redraw) return;
    this.render();
    this.drawOverlay();
  }

  area() {
    const w = this.size - LP_MARGIN.l - LP_MARGIN.r, h = this.size - LP_MARGIN.t - LP_MARGIN.b;
    return { x: LP_MARGIN.l, y: LP_MARGIN.t, w, h };
  }

  toScreen(x, y) {
    const a = this.area(), v = this.view;
    return [a.x + ((x - v.cx) / v.span + 0.5) * a.w, a.y + (0.5 - (y - v.cy) / v.span) * a.h];
  }

  toPlane(sx, sy) {
    const a = this.area(), v = this.view;
    return [v.cx + ((sx - a.x) / a.w - 0.5) * v.span, v.cy + (0.5 - (sy - a.y) / a.h) * v.span];
  }

  inside(sx, sy) {
    const a = this.area();
    return sx >= a.x && sx <= a.x + a.w && sy >= a.y && sy <= a.y + a.h;
  }

  // every point's screen position (CSS pixels from the plot's corner), for tests and the benchmark
  screenXY() {
    const n = this.labels.length, sx = new Float32Array(n), sy = new Float32Array(n);
    for (let i = 0; i < n; i++) [sx[i], sy[i]] = this.toScreen(this.xy[2 * i], this.xy[2 * i + 1]);
    return { sx, sy };
  }

  // --- drawing ---------------------------------------------------------------------------------------------------
  // One frame per animation frame however many pointer events ask for one (a frame of 70,000 points takes ~60 ms
  // in software WebGL).
  requestDraw() {
    if (!this.frame) this.frame = requestAnimationFrame(() => { this.frame = 0; this.render(); this.drawOverlay(); });
  }

  render() {
    if (!this.data || !this.size) return;
    this.drawBase();
    this.layer.draw({ view: this.view, area: this.area(), size: this.size, dpr: this.dpr, radius: LP_RADIUS });
    this.root.dataset.mode = this.layer.mode;
    this.drawFront();
  }

  // under the points: the decoded grid and the tick lines
  drawBase() {
    const ctx = this.base.getContext("2d"), a = this.area(), d = this.data;
    ctx.clearRect(0, 0, this.size, this.size);
    ctx.fillStyle = "#fff";
    ctx.fillRect(a.x, a.y, a.w, a.h);
    ctx.save();
    ctx.beginPath();
    ctx.rect(a.x, a.y, a.w, a.h);
    ctx.clip();
    if (this.gridShown() && this.gridCanvas.width) {
      const [x0, y0] = this.toScreen(-d.extent, d.extent), [x1, y1] = this.toScreen(d.extent, -d.extent);
      ctx.imageSmoothingEnabled = false;
      ctx.globalAlpha = this.xy.length ? 0.55 : 1;
      ctx.drawImage(this.gridCanvas, x0, y0, x1 - x0, y1 - y0);
      ctx.globalAlpha = 1;
    }
    this.drawTicks(ctx, a, true);
    ctx.restore();
  }

  // over the points: the prior's square, the selection's outlines, the page's marks, the picked point, the pin, the
  // axes
  drawFront() {
    const ctx = this.front.getContext("2d"), a = this.area(), d = this.data;
    ctx.clearRect(0, 0, this.size, this.size);
    ctx.save();
    ctx.beginPath();
    ctx.rect(a.x, a.y, a.w, a.h);
    ctx.clip();
    if (d.prior_box) {
      const [x0, y0] = this.toScreen(-3, 3), [x1, y1] = this.toScreen(3, -3);
      ctx.setLineDash([6, 4]);
      ctx.strokeStyle = "#444";
      ctx.lineWidth = 1.5;
      ctx.strokeRect(x0, y0, x1 - x0, y1 - y0);
      ctx.setLineDash([]);
    }
    for (const s of this.shapes) {
      ctx.strokeStyle = "rgba(0,0,0,0.55)";
      ctx.setLineDash([4, 3]);
      ctx.lineWidth = 1;
      ctx.beginPath();
      s.points.forEach(([x, y], i) => { const [sx, sy] = this.toScreen(x, y); i ? ctx.lineTo(sx, sy) : ctx.moveTo(sx, sy); });
      ctx.closePath();
      ctx.stroke();
      ctx.setLineDash([]);
    }
    this.drawMarks(ctx);
    ctx.restore();
    this.drawTicks(ctx, a, false);
  }

  drawTicks(ctx, a, lines) {
    const v = this.view, step = lpNiceStep(v.span);
    ctx.font = "11px sans-serif";
    ctx.fillStyle = "#555";
    ctx.strokeStyle = "rgba(0,0,0,0.08)";
    ctx.lineWidth = 1;
    for (const axis of [0, 1]) {
      const lo = (axis ? v.cy : v.cx) - v.span / 2, hi = lo + v.span;
      for (let t = Math.ceil(lo / step) * step; t <= hi; t += step) {
        const label = Math.abs(t) < 1e-9 ? "0" : +t.toPrecision(6) + "";
        if (axis === 0) {
          const [sx] = this.toScreen(t, 0);
          if (lines) { ctx.beginPath(); ctx.moveTo(sx, a.y); ctx.lineTo(sx, a.y + a.h); ctx.stroke(); }
          else { ctx.textAlign = "center"; ctx.fillText(label, sx, a.y + a.h + 14); }
        } else {
          const [, sy] = this.toScreen(0, t);
          if (lines) { ctx.beginPath(); ctx.moveTo(a.x, sy); ctx.lineTo(a.x + a.w, sy); ctx.stroke(); }
          else { ctx.textAlign = "right"; ctx.fillText(label, a.x - 5, sy + 4); }
        }
      }
    }
    if (!lines) {
      const [tx, ty] = this.data.axis_titles || this.data.plane.labels;
      ctx.fillStyle = "#222";
      ctx.font = "12px sans-serif";
      ctx.textAlign = "center";
      ctx.fillText(tx, a.x + a.w / 2, a.y + a.h + 32);
      ctx.save();
      ctx.translate(12, a.y + a.h / 2);
      ctx.rotate(-Math.PI / 2);
      ctx.fillText(ty, 0, 0);
      ctx.restore();
      ctx.strokeStyle = "#999";
      ctx.strokeRect(a.x, a.y, a.w, a.h);
    }
  }

  // marks sent by the page: paths (Interpolate's, posterior outlines on Reconstruct), labelled codes, the picked point
  drawMarks(ctx) {
    const d = this.data;
    if (d.picked != null && d.picked < this.labels.length) {
      const [sx, sy] = this.toScreen(this.xy[2 * d.picked], this.xy[2 * d.picked + 1]);
      ctx.strokeStyle = "#000";
      ctx.lineWidth = 2;
      ctx.beginPath();
      ctx.arc(sx, sy, LP_RADIUS + 4, 0, 2 * Math.PI);
      ctx.stroke();
    }
    for (const m of d.marks || []) {
      if (m.path) {
        ctx.strokeStyle = m.color || "#000";
        ctx.lineWidth = m.closed ? 1.2 : 2.5;
        ctx.beginPath();
        m.path.forEach(([x, y], i) => { const [sx, sy] = this.toScreen(x, y); i ? ctx.lineTo(sx, sy) : ctx.moveTo(sx, sy); });
        if (m.closed) {
          ctx.closePath();
          if (m.fill) { ctx.fillStyle = m.fill; ctx.fill(); }
        }
        ctx.stroke();
        if (m.dots) {
          m.path.forEach(([x, y], i) => {
            const [sx, sy] = this.toScreen(x, y), end = i === 0 || i === m.path.length - 1;
            ctx.fillStyle = end ? m.color || "#000" : "#fff";
            ctx.beginPath(); ctx.arc(sx, sy, end ? 6 : 3.5, 0, 2 * Math.PI); ctx.fill(); ctx.stroke();
          });
        }
      }
      if (m.at) this.drawCode(ctx, m.at, null, m.color || "#000", m.label);
    }
    if (d.pinned) this.drawPin(ctx, d.pinned[0], d.pinned[1], "#d00");
  }

  drawPin(ctx, x, y, color) {
    const [sx, sy] = this.toScreen(x, y);
    ctx.strokeStyle = color;
    ctx.lineWidth = 2;
    ctx.beginPath();
    ctx.moveTo(sx - 8, sy); ctx.lineTo(sx + 8, sy); ctx.moveTo(sx, sy - 8); ctx.lineTo(sx, sy + 8);
    ctx.stroke();
  }

  // a code at plane point `at`, with the 1σ and 2σ ellipses of its projected posterior's 2×2 covariance `cov`
  drawCode(ctx, at, cov, color, label) {
    const [sx, sy] = this.toScreen(at[0], at[1]);
    if (cov) {
      const [[a, b], [, c]] = cov, tr = (a + c) / 2, det = Math.sqrt(((a - c) / 2) ** 2 + b * b);
      const l1 = tr + det, l2 = Math.max(tr - det, 0), angle = 0.5 * Math.atan2(2 * b, a - c);
      const px = this.area().w / this.view.span;
      ctx.strokeStyle = color;
      for (const k of [1, 2]) {
        ctx.lineWidth = k === 1 ? 2 : 1;
        ctx.beginPath();
        ctx.ellipse(sx, sy, k * Math.sqrt(l1) * px, k * Math.sqrt(l2) * px, -angle, 0, 2 * Math.PI);  // screen y points down
        ctx.stroke();
      }
    }
    ctx.fillStyle = color;
    ctx.strokeStyle = "#fff";
    ctx.lineWidth = 1.5;
    ctx.beginPath();
    ctx.moveTo(sx, sy - 7); ctx.lineTo(sx + 6, sy + 4); ctx.lineTo(sx - 6, sy + 4); ctx.closePath();
    ctx.fill(); ctx.stroke();
    if (label) { ctx.fillStyle = "#000"; ctx.font = "bold 12px sans-serif"; ctx.textAlign = "left"; ctx.fillText(label, sx + 8, sy - 6); }
  }

  // at pointer speed: the hovered point or the probe's spot, the drawn digit's code, the shape being drawn
  drawOverlay() {
    if (!this.size) return;
    const ctx = this.overlay.getContext("2d");
    ctx.clearRect(0, 0, this.size, this.size);
    if (this.hover >= 0) {
      const [sx, sy] = this.toScreen(this.xy[2 * this.hover], this.xy[2 * this.hover + 1]);
      ctx.strokeStyle = "#000";
      ctx.lineWidth = 1.5;
      ctx.beginPath();
      ctx.arc(sx, sy, LP_RADIUS + 2, 0, 2 * Math.PI);
      ctx.stroke();
    } else if (this.pointer && this.data.decode) {
      const [sx, sy] = this.toScreen(this.pointer[0], this.pointer[1]);
      ctx.strokeStyle = "rgba(0,0,0,0.7)";
      ctx.lineWidth = 1;
      ctx.beginPath(); ctx.arc(sx, sy, 6, 0, 2 * Math.PI); ctx.stroke();
    }
    if (this.drawnCode) {
      const { mu, logvar } = this.drawnCode;
      const at = this.project(mu);
      let cov = null;
      if (logvar) {
        const { axes } = this.data.plane, v = logvar.map(Math.exp);
        const dot = (p, q) => v.reduce((s, vk, k) => s + p[k] * vk * q[k], 0);
        cov = [[dot(axes[0], axes[0]), dot(axes[0], axes[1])], [dot(axes[1], axes[0]), dot(axes[1], axes[1])]];
      }
      this.drawCode(ctx, at, cov, "#e4007c", "drawn");
    }
    if (this.drag && this.drag.shape) this.drag.shape.draw(ctx, (x, y) => this.toScreen(x, y));
  }

  gridShown() {
    const box = this.q("show-grid");
    return box ? box.checked : true;
  }

  // The n×n decoded grid over [-extent, extent]², a batch of rows per run, sized so that one run takes about
  // LP_GRID_SLICE_MS: a pointer event waits at most that long for the probe's turn.
  async decodeGrid() {
    if (!this.model || !this.data.decode) return;
    const token = ++this.gridToken, n = +this.q("grid-n").value, e = this.data.extent, spec = this.spec;
    const model = this.model, klass = this.klass, [, h, w] = spec.image_shape, d = spec.latent_dim;
    const canvas = this.gridCanvas;
    canvas.width = n * w;
    canvas.height = n * h;
    const ctx = canvas.getContext("2d");
    const img = ctx.createImageData(n * w, n * h);
    let row = 0, rows = 1;
    try {
      while (row < n) {
        const count = Math.min(rows, n - row), zs = new Float32Array(count * n * d);
        for (let r = 0; r < count; r++) {
          const y = e - (row + r + 0.5) * (2 * e / n);
          for (let col = 0; col < n; col++) zs.set(this.latent(-e + (col + 0.5) * (2 * e / n), y), (r * n + col) * d);
        }
        const started = performance.now();
        const p = await model.decode(zs, count * n, klass);
        if (token !== this.gridToken) return;
        const perRow = (performance.now() - started) / count;
        rows = Math.max(1, Math.min(n, Math.floor(LP_GRID_SLICE_MS / Math.max(perRow, 0.01))));
        for (let k = 0; k < count * n; k++) {
          lpPutImage(img, (k % n) * w, (row + Math.floor(k / n)) * h, p, k, spec.image_shape, true);
        }
        row += count;
        ctx.putImageData(img, 0, 0);
        this.drawBase();
        await new Promise((resolve) => setTimeout(resolve, 0)); // let pointer events in between runs
        if (token !== this.gridToken) return;
      }
    } catch (err) {
      this.q("status").textContent = String(err.message || err);
      return;
    }
    this.root.dataset.gridN = String(n);
    LP.firstGrid = LP.firstGrid ?? performance.now();
  }

  // Decodes plane point `at` into the probe, with data-z set in the same frame as the paint. While a decode runs,
  // later positions wait and only the latest is decoded; `eventTime` (the pointer event's) is timed to the paint
  // that shows it or a newer position.
  paintProbe(at, eventTime) {
    if (!this.model || !this.data.decode) return;
    this.probeWant = at;
    if (eventTime != null) this.probeEvents.push(eventTime);
    if (this.probeBusy) return;
    this.probeBusy = true;
    (async () => {
      while (this.probeWant) {
        const want = this.probeWant, events = this.probeEvents, model = this.model, spec = this.spec;
        this.probeWant = null;
        this.probeEvents = [];
        const z = this.latent(want[0], want[1]);
        const p = await model.decode(Float32Array.from(z), 1, this.klass);
        if (model !== this.model) continue; // another model arrived meanwhile
        lpPaintImage(this.probe, p, spec.image_shape);
        this.probe.dataset.z = JSON.stringify(z);
        const now = performance.now();
        for (const t of events) LP.timings.push(now - t);
        this.q("coords").textContent = "x = " + want[0].toFixed(3) + ", y = " + want[1].toFixed(3) +
          (z.length > 2 && !this.data.compact ? "  ·  z = [" + z.map((v) => v.toFixed(2)).join(", ") + "]" : "");
      }
    })().catch((err) => { this.q("status").textContent = String(err.message || err); })
      .finally(() => { this.probeBusy = false; });
  }

  // --- pointer, keys, pad ----------------------------------------------------------------------------------------
  // the point (its index) within the marker's radius (+1 px) of screen point (sx, sy), -1 if none; hidden ones are
  // not there
  pointAt(sx, sy) {
    if (!this.pts) return -1;
    const [x, y] = this.toPlane(sx, sy), r = (LP_RADIUS + 1) * this.view.span / this.area().w;
    return this.pts.grid.nearest(x, y, r, (i) => this.isHidden(i));
  }

  // Planes of one group (Compare's models, on the same axes) follow each other's pointer: one hover decodes the
  // same spot in every model.
  follow(at) {
    this.pointer = at;
    this.hover = -1;
    this.paintProbe(at, null);
    this.drawOverlay();
  }

  showTooltip(i, sx, sy) {
    const tip = this.tooltip, pts = this.data.points;
    if (i < 0) { tip.style.display = "none"; return; }
    tip.style.display = "block";
    tip.style.left = Math.min(sx + 14, this.size - 110) + "px";
    tip.style.top = Math.max(sy - 90, 0) + "px";
    const name = this.data.classes[this.labels[i]] ?? this.labels[i];
    const { split, index } = this.identity(i);
    const value = this.values ? " · " + this.data.color_by.label + " " + cmNumber(this.values[i]) : "";
    this.q("tip-text").textContent = "#" + index + (pts.segments.length > 1 ? " " + split : "") + " · " + name + value;
    const cv = this.q("tip-image"), urls = pts.tiles && pts.tiles[split];
    cv.style.display = urls ? "" : "none";
    delete cv.dataset.index;
    if (!urls) return;
    const [c, h, w] = pts.image_shape, per = pts.tile_images, size = c * h * w;
    cv.width = w;
    cv.height = h;
    cv.getContext("2d").clearRect(0, 0, w, h);
    lpTile(urls[Math.floor(index / per)]).then((tile) => {
      if (this.hover !== i) return;
      const ctx = cv.getContext("2d"), img = ctx.createImageData(w, h), px = tile.subarray((index % per) * size);
      for (let k = 0; k < h * w; k++) {
        img.data[4 * k] = px[c * k];
        img.data[4 * k + 1] = px[c * k + (c === 3 ? 1 : 0)];
        img.data[4 * k + 2] = px[c * k + (c === 3 ? 2 : 0)];
        img.data[4 * k + 3] = 255;
      }
      ctx.putImageData(img, 0, 0);
      cv.dataset.index = String(index);
      cv.dataset.split = split;
    }, () => {
      if (this.hover === i) setTimeout(() => this.hover === i && this.showTooltip(i, sx, sy), 500); // not written yet
    });
  }

  // the pointer (a mouse, or a finger or pen down) at screen point p: decode there, show the point under it
  moveTo(p, eventTime) {
    const [sx, sy] = p;
    if (!this.inside(sx, sy)) return;
    this.hover = this.pointAt(sx, sy);
    this.showTooltip(this.hover, sx, sy);
    this.pointer = this.toPlane(sx, sy);
    this.paintProbe(this.pointer, eventTime);
    this.drawOverlay();
    if (this.data.group) {
      for (const other of LP.groups.get(this.data.group) || []) if (other !== this && other.root.isConnected) other.follow(this.pointer);
    }
  }

  viewChanged() {
    this.requestDraw();
    if (!this.data.report_view) return;
    clearTimeout(this.viewTimer);
    this.viewTimer = setTimeout(() => this.api.setStateValue("view", this.viewState()), LP_VIEW_REPORT_MS);
  }

  viewState() {
    const r = (v) => +v.toPrecision(6);
    return { cx: r(this.view.cx), cy: r(this.view.cy), span: r(this.view.span), above: this.above };
  }

  bind() {
    const ov = this.overlay;
    new PlaneGestures(ov, {
      move: (p, ev, pressed) => {
        // a finger down is the pointer; a drawn shape or a pan keeps the probe where it was
        if (!pressed || !this.drag || ev.pointerType === "touch" && !this.drag.shape) this.moveTo(p, ev.timeStamp);
      },
      dragStart: (p, ev) => {
        ov.focus({ preventScroll: true });
        if (this.tool !== "pan" && this.data.select && this.pts) {
          this.drag = { shape: new ShapeDraw(this.tool, this.toPlane(p[0], p[1]), p), adding: ev.shiftKey };
        } else if (ev.pointerType !== "touch") {
          this.drag = { pan: { ...this.view }, from: p };
        }
      },
      drag: (p) => {
        const g = this.drag;
        if (!g) return;
        if (g.shape) {
          g.shape.add(this.toPlane(p[0], p[1]), p);
          this.drawOverlay();
        } else {
          const a = this.area();
          this.view.cx = g.pan.cx - (p[0] - g.from[0]) / a.w * this.view.span;
          this.view.cy = g.pan.cy + (p[1] - g.from[1]) / a.h * this.view.span;
          this.viewChanged();
        }
      },
      dragEnd: () => {
        const g = this.drag;
        this.drag = null;
        if (g && g.shape) this.select(g.shape.shape(), g.adding);
        this.drawOverlay();
      },
      cancel: () => { this.drag = null; this.drawOverlay(); },
      tap: (p, ev) => {
        ov.focus({ preventScroll: true });
        const [sx, sy] = p;
        if (!this.inside(sx, sy)) return;
        const i = this.pointAt(sx, sy);
        if (i >= 0) {
          this.api.setTriggerValue("pick", this.identity(i));
          if (ev.pointerType === "touch") this.moveTo(p, null);
        } else if (this.data.decode) this.pin(this.toPlane(sx, sy));
      },
      pinch: (mid0, mid, ratio) => {
        // the plane point under the fingers' first midpoint stays under their midpoint
        const a = this.area(), v0 = this.pinch0 || (this.pinch0 = { ...this.view });
        const [px, py] = [v0.cx + ((mid0[0] - a.x) / a.w - 0.5) * v0.span, v0.cy + (0.5 - (mid0[1] - a.y) / a.h) * v0.span];
        const span = v0.span * ratio;
        this.view = { cx: px - ((mid[0] - a.x) / a.w - 0.5) * span, cy: py - (0.5 - (mid[1] - a.y) / a.h) * span, span };
        this.viewChanged();
      },
      pinchEnd: () => { this.pinch0 = null; },
    });
    ov.addEventListener("pointerleave", (ev) => {
      if (ev.pointerType !== "mouse") return;
      this.hover = -1; this.showTooltip(-1); this.drawOverlay();
    });
    ov.addEventListener("wheel", (ev) => {
      ev.preventDefault();
      const r = ov.getBoundingClientRect(), [px, py] = this.toPlane(ev.clientX - r.left, ev.clientY - r.top);
      const f = Math.exp(ev.deltaY * 0.0015);
      this.view.cx = px + (this.view.cx - px) * f;
      this.view.cy = py + (this.view.cy - py) * f;
      this.view.span *= f;
      this.viewChanged();
    }, { passive: false });
    ov.addEventListener("dblclick", () => { this.resetView(); this.viewChanged(); });
    ov.addEventListener("keydown", (ev) => {
      const moves = { ArrowLeft: [-1, 0], ArrowRight: [1, 0], ArrowUp: [0, 1], ArrowDown: [0, -1] };
      if (ev.key === "Escape") {
        if (this.drag && this.drag.shape) { this.drag = null; this.drawOverlay(); }
        else if (this.shapes.length) this.select(null, false);
        return;
      }
      if (!this.data.decode) return;
      if (moves[ev.key]) {
        ev.preventDefault();
        const step = this.view.span / 100 * (ev.shiftKey ? 10 : 1), [dx, dy] = moves[ev.key];
        const at = this.pointer || [this.view.cx, this.view.cy];
        this.pointer = [at[0] + dx * step, at[1] + dy * step];
        this.hover = -1;
        this.paintProbe(this.pointer, ev.timeStamp);
        this.drawOverlay();
      } else if ((ev.key === "Enter" || ev.key === " ") && this.pointer) {
        ev.preventDefault();
        this.pin(this.pointer);
      }
    });
    this.bindPad();
  }

  // a finished lasso or box (null: clear); with `adding`, united with the selection so far. Marked here at once,
  // then reported: Python recounts the same polygons on the same coordinates.
  select(shape, adding) {
    if (!shape && adding) return;
    this.shapes = shape ? (adding ? [...this.shapes, shape] : [shape]) : [];
    if (adding && this.selected) this.pts.grid.markInside(shape.points, this.selected);
    else this.markShapes();
    this.paint();
    this.requestDraw();
    this.api.setStateValue("selection", this.shapes.length ? { key: this.data.plane_id, shapes: this.shapes } : null);
  }

  pin(at) {
    this.data.pinned = at;
    this.drawFront();
    this.api.setTriggerValue("pin", { x: at[0], y: at[1], z: this.latent(at[0], at[1]), klass: this.klass });
  }

  bindPad() {
    const pad = this.pad, ctx = pad.getContext("2d");
    pad.width = pad.height = LP_PAD_SIDE;
    let stroke = null;
    const at = (ev) => {
      const r = pad.getBoundingClientRect();
      return [(ev.clientX - r.left) * LP_PAD_SIDE / r.width, (ev.clientY - r.top) * LP_PAD_SIDE / r.height];
    };
    pad.addEventListener("pointerdown", (ev) => {
      ev.preventDefault();
      pad.setPointerCapture(ev.pointerId);
      stroke = [at(ev)];
      this.strokes.push(stroke);
      this.redrawPad();
    });
    pad.addEventListener("pointermove", (ev) => {
      if (!stroke) return;
      stroke.push(at(ev));
      this.redrawPad();
    });
    const end = (ev) => {
      if (!stroke) return;
      stroke = null;
      this.encodePad(true, ev.timeStamp);
    };
    pad.addEventListener("pointerup", end);
    pad.addEventListener("pointercancel", end);
    this.q("clear").addEventListener("click", () => { this.strokes = []; this.redrawPad(); this.encodePad(true); });
    this.q("undo").addEventListener("click", () => { this.strokes.pop(); this.redrawPad(); this.encodePad(true); });
    this.redrawPad();
  }

  redrawPad() {
    const ctx = this.pad.getContext("2d");
    ctx.fillStyle = "#000";
    ctx.fillRect(0, 0, LP_PAD_SIDE, LP_PAD_SIDE);
    ctx.strokeStyle = ctx.fillStyle = "#fff";
    ctx.lineWidth = LP_PEN;
    ctx.lineCap = ctx.lineJoin = "round";
    for (const s of this.strokes) {
      ctx.beginPath();
      s.forEach(([x, y], i) => (i ? ctx.lineTo(x, y) : ctx.moveTo(x, y)));
      if (s.length === 1) { ctx.arc(s[0][0], s[0][1], LP_PEN / 2, 0, 2 * Math.PI); ctx.fill(); }
      else ctx.stroke();
    }
  }

  // Encodes the pad in the browser (the map and reconstruction never wait for the server), then tells Python. A
  // newer encoding supersedes one still running; the report to Python waits for the newest.
  async encodePad(report, eventTime = null) {
    // Kept before the model is there: a digit drawn while the model loads is encoded, and reported, once it has.
    this.padReport = this.padReport || report;
    if (!this.model) return;
    const token = ++this.padToken, model = this.model, spec = this.spec, klass = this.klass;
    const raw = this.pad.getContext("2d").getImageData(0, 0, LP_PAD_SIDE, LP_PAD_SIDE).data;
    const level = new Float32Array(LP_PAD_SIDE * LP_PAD_SIDE);
    for (let i = 0; i < level.length; i++) level[i] = raw[4 * i] / 255;
    const x = lpPadToInput(level, LP_PAD_SIDE);
    const recon = this.q("recon");
    let code = null, p = null;
    if (x) {
      try {
        code = await model.encode(x, klass);
        p = await model.decode(Float32Array.from(code.mu), 1, klass);
      } catch (err) {
        this.q("status").textContent = String(err.message || err);
        return;
      }
      if (token !== this.padToken) return;
    }
    this.drawnCode = code;
    if (code) {
      this.pad.dataset.mu = JSON.stringify(code.mu);
      lpPaintImage(recon, p, spec.image_shape);
    } else {
      delete this.pad.dataset.mu;
      recon.getContext("2d").clearRect(0, 0, recon.width, recon.height);
    }
    this.drawOverlay();
    if (code && eventTime != null) LP.padTimings.push(performance.now() - eventTime);
    if (this.padReport) {
      this.padReport = false;
      let bin = "";
      if (x) for (const v of x) bin += String.fromCharCode(Math.round(255 * v));
      this.api.setStateValue("drawn", x ? { pixels: btoa(bin), mu: code.mu, klass } : null);
    }
  }

  // --- controls in the component (no rerun) ----------------------------------------------------------------------
  buildToolbar() {
    const d = this.data, sel = this.q("klass");
    sel.parentElement.style.display = d.class_picker ? "" : "none";
    if (d.class_picker && sel.options.length !== d.classes.length) {
      sel.innerHTML = "";
      d.classes.forEach((name, i) => sel.add(new Option(name, String(i))));
      sel.onchange = () => {
        this.klass = +sel.value;
        this.decodeGrid();
        if (this.pointer) this.paintProbe(this.pointer, null);
        if (this.strokes.length) this.encodePad(true);
        this.api.setStateValue("klass", this.klass);
      };
    }
    if (d.class_picker) sel.value = String(this.klass);
    const n = this.q("grid-n");
    if (!this.gridInit) {
      n.value = String(d.grid_n);
      this.q("show-grid").checked = d.show_grid;
      this.gridInit = true;
    }
    n.oninput = () => { this.q("grid-n-text").textContent = n.value + " × " + n.value; this.decodeGrid(); };
    this.q("grid-n-text").textContent = n.value + " × " + n.value;
    this.q("show-grid").onchange = () => this.drawBase();
    this.q("reset").onclick = () => { this.resetView(); this.viewChanged(); };
    this.q("save-grid").onclick = () => {
      const link = document.createElement("a");
      link.download = (d.name || "grid") + "_grid_" + n.value + ".png";
      const out = document.createElement("canvas");
      out.width = this.gridCanvas.width; out.height = this.gridCanvas.height;
      const octx = out.getContext("2d");
      // a grey grid is drawn dark on the white plane; the saved grid is as the model draws it
      if (this.spec && this.spec.image_shape[0] === 1) octx.filter = "invert(1)";
      octx.drawImage(this.gridCanvas, 0, 0);
      link.href = out.toDataURL("image/png");
      link.click();
    };
    for (const tool of ["pan", "lasso", "box"]) {
      const b = this.q("tool-" + tool);
      b.classList.toggle("lp-on", this.tool === tool);
      b.onclick = () => { this.tool = tool; this.buildToolbar(); };
    }
    this.overlay.style.cursor = this.tool === "pan" ? "" : "cell";
    this.q("sel-clear").onclick = () => this.select(null, false);
  }

  // class chips, or the colour bar of the number the points are coloured by with its threshold
  buildLegend() {
    const legend = this.q("legend"), d = this.data, bar = this.q("bar");
    legend.innerHTML = "";
    bar.style.display = this.values ? "" : "none";
    if (this.values) {
      const cb = d.color_by, slider = this.q("above");
      this.q("bar-name").textContent = cb.label;
      this.q("bar-lo").textContent = cmNumber(cb.lo);
      this.q("bar-hi").textContent = cmNumber(cb.hi);
      slider.min = cb.lo; slider.max = cb.hi; slider.step = (cb.hi - cb.lo) / 200 || 1;
      slider.value = this.above ?? cb.lo;
      const show = () => {
        cmDrawBar(this.q("bar-ramp"), this.ramp, cb.lo, cb.hi, this.above);
        this.q("above-text").textContent = this.above == null ? "all shown" : "shown: ≥ " + cmNumber(this.above);
      };
      slider.oninput = () => {
        this.above = +slider.value <= cb.lo ? null : +slider.value;
        if (this.hover >= 0 && this.isHidden(this.hover)) { this.hover = -1; this.showTooltip(-1); }
        show();
        this.paint();
        this.viewChanged();
      };
      show();
      return;
    }
    if (!this.labels.length) return;
    d.classes.forEach((name, i) => {
      const item = document.createElement("span");
      item.className = "lp-chip";
      item.innerHTML = '<i style="background:' + d.colors[i % d.colors.length] + '"></i>';
      item.append(document.createTextNode(name));
      legend.append(item);
    });
  }
}

export default function (component) {
  const { data, parentElement, setStateValue, setTriggerValue } = component;
  const root = parentElement.querySelector(".lp-root");
  let plane = LP.states.get(root);
  if (!plane) {
    plane = new LatentPlane(root);
    LP.states.set(root, plane);
    root.__lp = plane; // for tests and the benchmarks: toScreen / toPlane, screenXY(), render(), the selection
  }
  plane.update(data, { setStateValue, setTriggerValue });
}
