// The plane's points in WebGL: one buffer of plane coordinates (in PointGrid's order, so a zoomed-in view draws only
// the runs of cells it sees), one RGBA colour per point (alpha 0 hides it), one shader. Where more points are in view
// than PL_BUDGET, their density is drawn instead: binned on the CPU into one texture of the plot's size, each bin the
// mean colour of its points, opaquer where more overlap. Without WebGL the density image is drawn with a 2-D canvas.
// Top-level definitions only: the component concatenates its files.

const PL_BUDGET = 100_000; // points drawn one by one per frame; SwiftShader (software WebGL) takes ~60 ms for 70,000
const PL_BIN = 2; // density bin side in device pixels

const PL_POINT_VS = `
attribute vec2 a_xy;
attribute vec4 a_color;
uniform vec4 u_t;  // plane -> clip space: x * u_t.x + u_t.z, y * u_t.y + u_t.w
uniform float u_size;
varying vec4 v_color;
void main() {
  if (a_color.a == 0.0) { gl_Position = vec4(2.0, 2.0, 2.0, 1.0); gl_PointSize = 0.0; return; }
  gl_Position = vec4(a_xy * u_t.xy + u_t.zw, 0.0, 1.0);
  gl_PointSize = u_size;
  v_color = vec4(a_color.rgb * a_color.a, a_color.a);  // premultiplied, as the page composites the canvas
}`;

const PL_POINT_FS = `
precision mediump float;
varying vec4 v_color;
void main() {
  vec2 c = gl_PointCoord - 0.5;
  if (dot(c, c) > 0.25) discard;
  gl_FragColor = v_color;
}`;

const PL_QUAD_VS = `
attribute vec2 a_corner;
uniform vec4 u_box;  // the plot area in clip space: x0, y0, x1, y1
varying vec2 v_uv;
void main() {
  v_uv = vec2(a_corner.x, 1.0 - a_corner.y);
  gl_Position = vec4(mix(u_box.xy, u_box.zw, a_corner), 0.0, 1.0);
}`;

const PL_QUAD_FS = `
precision mediump float;
uniform sampler2D u_tex;
varying vec2 v_uv;
void main() { gl_FragColor = texture2D(u_tex, v_uv); }`;

function plProgram(gl, vs, fs) {
  const prog = gl.createProgram();
  for (const [type, src] of [[gl.VERTEX_SHADER, vs], [gl.FRAGMENT_SHADER, fs]]) {
    const s = gl.createShader(type);
    gl.shaderSource(s, src);
    gl.compileShader(s);
    if (!gl.getShaderParameter(s, gl.COMPILE_STATUS)) throw new Error(gl.getShaderInfoLog(s));
    gl.attachShader(prog, s);
  }
  gl.linkProgram(prog);
  if (!gl.getProgramParameter(prog, gl.LINK_STATUS)) throw new Error(gl.getProgramInfoLog(prog));
  return prog;
}

class PointsLayer {
  constructor(canvas) {
    this.canvas = canvas;
    this.grid = null;
    this.colors = new Uint8Array(0);
    this.mode = "points"; // what the last frame drew: "points" or "density" (read by tests and the benchmark)
    canvas.addEventListener("webglcontextlost", (ev) => { ev.preventDefault(); this.gl = null; });
    canvas.addEventListener("webglcontextrestored", () => this.init());
    this.init();
  }

  init() {
    let gl = null;
    try {
      gl = this.canvas.getContext("webgl", { antialias: false, depth: false, stencil: false });
    } catch (e) { gl = null; }
    this.gl = gl;
    if (!gl) { this.ctx = this.canvas.getContext("2d"); return; }
    this.points = plProgram(gl, PL_POINT_VS, PL_POINT_FS);
    this.quad = plProgram(gl, PL_QUAD_VS, PL_QUAD_FS);
    this.xyBuf = gl.createBuffer();
    this.colorBuf = gl.createBuffer();
    this.cornerBuf = gl.createBuffer();
    gl.bindBuffer(gl.ARRAY_BUFFER, this.cornerBuf);
    gl.bufferData(gl.ARRAY_BUFFER, new Float32Array([0, 0, 1, 0, 0, 1, 1, 1]), gl.STATIC_DRAW);
    this.tex = gl.createTexture();
    gl.bindTexture(gl.TEXTURE_2D, this.tex);
    for (const p of [gl.TEXTURE_MIN_FILTER, gl.TEXTURE_MAG_FILTER]) gl.texParameteri(gl.TEXTURE_2D, p, gl.NEAREST);
    for (const p of [gl.TEXTURE_WRAP_S, gl.TEXTURE_WRAP_T]) gl.texParameteri(gl.TEXTURE_2D, p, gl.CLAMP_TO_EDGE);
    if (this.grid) this.upload();
  }

  // grid: a PointGrid; colors: RGBA per point in the grid's sorted order
  setPoints(grid, colors) {
    this.grid = grid;
    this.colors = colors;
    this.upload();
  }

  setColors(colors) {
    this.colors = colors;
    const gl = this.gl;
    if (!gl) return;
    gl.bindBuffer(gl.ARRAY_BUFFER, this.colorBuf);
    gl.bufferData(gl.ARRAY_BUFFER, colors, gl.DYNAMIC_DRAW);
  }

  upload() {
    const gl = this.gl;
    if (!gl || !this.grid) return;
    gl.bindBuffer(gl.ARRAY_BUFFER, this.xyBuf);
    gl.bufferData(gl.ARRAY_BUFFER, this.grid.xy, gl.STATIC_DRAW);
    this.setColors(this.colors);
  }

  // f: {view {cx, cy, span}, area {x, y, w, h}, size} in CSS pixels, dpr, radius: marker radius in CSS pixels
  draw(f) {
    const { view: v, area: a, size, dpr } = f;
    const px = Math.round(size * dpr);
    if (this.canvas.width !== px) this.canvas.width = this.canvas.height = px;
    const half = v.span / 2, runs = this.grid ? this.grid.runs(v.cx - half, v.cx + half, v.cy - half, v.cy + half) : [];
    const visible = runs.reduce((s, r) => s + r[1], 0);
    this.mode = visible > PL_BUDGET || !this.gl ? "density" : "points";
    if (!this.gl) return this.drawDensity2d(f, runs);
    const gl = this.gl;
    gl.viewport(0, 0, px, px);
    gl.disable(gl.SCISSOR_TEST);
    gl.clearColor(0, 0, 0, 0);
    gl.clear(gl.COLOR_BUFFER_BIT);
    if (!visible) return;
    gl.enable(gl.SCISSOR_TEST);
    gl.scissor(Math.round(a.x * dpr), Math.round((size - a.y - a.h) * dpr), Math.round(a.w * dpr), Math.round(a.h * dpr));
    gl.enable(gl.BLEND);
    gl.blendFunc(gl.ONE, gl.ONE_MINUS_SRC_ALPHA);
    if (this.mode === "points") this.drawPoints(f, runs);
    else this.drawDensity(f, runs);
  }

  drawPoints(f, runs) {
    const gl = this.gl, { view: v, area: a, size } = f;
    gl.useProgram(this.points);
    const kx = a.w / v.span / size * 2, ky = a.h / v.span / size * 2;
    gl.uniform4f(gl.getUniformLocation(this.points, "u_t"), kx, ky,
                 (a.x + (0.5 - v.cx / v.span) * a.w) / size * 2 - 1, 1 - (a.y + (0.5 + v.cy / v.span) * a.h) / size * 2);
    gl.uniform1f(gl.getUniformLocation(this.points, "u_size"), 2 * f.radius * f.dpr);
    this.attribute(this.points, "a_xy", this.xyBuf, 2, gl.FLOAT, false);
    this.attribute(this.points, "a_color", this.colorBuf, 4, gl.UNSIGNED_BYTE, true);
    for (const [first, count] of runs) gl.drawArrays(gl.POINTS, first, count);
  }

  attribute(prog, name, buf, size, type, normalized) {
    const gl = this.gl, loc = gl.getAttribLocation(prog, name);
    gl.bindBuffer(gl.ARRAY_BUFFER, buf);
    gl.enableVertexAttribArray(loc);
    gl.vertexAttribPointer(loc, size, type, normalized, 0, 0);
  }

  // The visible points binned into PL_BIN-pixel cells of the plot area: RGBA8, mean colour, alpha rising with the
  // log of the count (a lone point still shows).
  bin(f, runs) {
    const { view: v, area: a, dpr } = f;
    const bw = Math.max(1, Math.ceil(a.w * dpr / PL_BIN)), bh = Math.max(1, Math.ceil(a.h * dpr / PL_BIN));
    const n = bw * bh, w = new Float32Array(n), r = new Float32Array(n), g = new Float32Array(n), b = new Float32Array(n);
    const xy = this.grid.xy, c = this.colors, sx = bw / v.span, sy = bh / v.span;
    const ox = v.cx - v.span / 2, oy = v.cy + v.span / 2;
    for (const [first, count] of runs) {
      for (let s = first; s < first + count; s++) {
        const alpha = c[4 * s + 3];
        if (!alpha) continue;
        const i = Math.floor((xy[2 * s] - ox) * sx), j = Math.floor((oy - xy[2 * s + 1]) * sy);
        if (i < 0 || i >= bw || j < 0 || j >= bh) continue;
        const k = j * bw + i, wt = alpha / 255;
        w[k] += wt; r[k] += wt * c[4 * s]; g[k] += wt * c[4 * s + 1]; b[k] += wt * c[4 * s + 2];
      }
    }
    let most = 0;
    for (let k = 0; k < n; k++) if (w[k] > most) most = w[k];
    const img = new Uint8Array(4 * n), scale = 1 / Math.log1p(Math.max(most, 1));
    for (let k = 0; k < n; k++) {
      if (!w[k]) continue;
      const alpha = Math.min(1, 0.45 + 0.55 * Math.log1p(w[k]) * scale);
      img[4 * k] = r[k] / w[k] * alpha; img[4 * k + 1] = g[k] / w[k] * alpha; img[4 * k + 2] = b[k] / w[k] * alpha;
      img[4 * k + 3] = 255 * alpha;
    }
    return { img, bw, bh };
  }

  drawDensity(f, runs) {
    const gl = this.gl, { area: a, size } = f, { img, bw, bh } = this.bin(f, runs);
    gl.bindTexture(gl.TEXTURE_2D, this.tex);
    gl.pixelStorei(gl.UNPACK_ALIGNMENT, 1);
    gl.texImage2D(gl.TEXTURE_2D, 0, gl.RGBA, bw, bh, 0, gl.RGBA, gl.UNSIGNED_BYTE, img);
    gl.useProgram(this.quad);
    // bins cover a little more than the area (whole bins); the quad covers them, the scissor cuts the excess
    const x1 = a.x + bw * PL_BIN / f.dpr, y1 = a.y + bh * PL_BIN / f.dpr;
    gl.uniform4f(gl.getUniformLocation(this.quad, "u_box"), a.x / size * 2 - 1, 1 - y1 / size * 2,
                 x1 / size * 2 - 1, 1 - a.y / size * 2);
    gl.uniform1i(gl.getUniformLocation(this.quad, "u_tex"), 0);
    this.attribute(this.quad, "a_corner", this.cornerBuf, 2, gl.FLOAT, false);
    gl.drawArrays(gl.TRIANGLE_STRIP, 0, 4);
  }

  drawDensity2d(f, runs) {
    const ctx = this.ctx, { area: a, dpr } = f;
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.clearRect(0, 0, this.canvas.width, this.canvas.height);
    if (!this.grid) return;
    const { img, bw, bh } = this.bin(f, runs);
    const bins = new ImageData(bw, bh);
    for (let k = 0; k < bw * bh; k++) {  // ImageData is not premultiplied
      const al = img[4 * k + 3];
      if (!al) continue;
      for (let ch = 0; ch < 3; ch++) bins.data[4 * k + ch] = img[4 * k + ch] * 255 / al;
      bins.data[4 * k + 3] = al;
    }
    const tmp = document.createElement("canvas");
    tmp.width = bw; tmp.height = bh;
    tmp.getContext("2d").putImageData(bins, 0, 0);
    ctx.save();
    ctx.imageSmoothingEnabled = false;
    ctx.beginPath();
    ctx.rect(a.x * dpr, a.y * dpr, a.w * dpr, a.h * dpr);
    ctx.clip();
    ctx.drawImage(tmp, a.x * dpr, a.y * dpr, bw * PL_BIN, bh * PL_BIN);
    ctx.restore();
  }
}
