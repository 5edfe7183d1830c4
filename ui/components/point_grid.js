// The plane's points sorted into a coarse grid of cells over their bounding box (a counting sort, O(n)): a view
// finds the points it can see as a few contiguous runs (the GL layer draws only those), and a hit test or a lasso
// looks only at the cells it touches. Top-level definitions only: the component concatenates its files.

const PG_PER_CELL = 48; // points per cell on average: a hit test reads a few cells of about this many

function pgPointInPolygon(x, y, poly) {
  // even-odd rule, the same one matplotlib.path.Path.contains_points uses for a simple polygon
  let inside = false;
  for (let i = 0, j = poly.length - 1; i < poly.length; j = i++) {
    const [xi, yi] = poly[i], [xj, yj] = poly[j];
    if ((yi > y) !== (yj > y) && x < ((xj - xi) * (y - yi)) / (yj - yi) + xi) inside = !inside;
  }
  return inside;
}

class PointGrid {
  // xy: Float32Array of 2n plane coordinates, in the points' own order
  constructor(xy) {
    const n = xy.length / 2;
    let x0 = Infinity, y0 = Infinity, x1 = -Infinity, y1 = -Infinity;
    for (let i = 0; i < n; i++) {
      const x = xy[2 * i], y = xy[2 * i + 1];
      if (x < x0) x0 = x; if (x > x1) x1 = x;
      if (y < y0) y0 = y; if (y > y1) y1 = y;
    }
    if (!n) x0 = y0 = 0, x1 = y1 = 1;
    const g = Math.max(1, Math.min(1024, Math.round(Math.sqrt(n / PG_PER_CELL))));
    this.n = n;
    this.g = g;
    this.x0 = x0; this.y0 = y0;
    this.cw = Math.max((x1 - x0) / g, 1e-12);
    this.ch = Math.max((y1 - y0) / g, 1e-12);
    const cell = new Uint32Array(n), start = new Uint32Array(g * g + 1);
    for (let i = 0; i < n; i++) {
      cell[i] = this.row(xy[2 * i + 1]) * g + this.col(xy[2 * i]);
      start[cell[i] + 1]++;
    }
    for (let c = 0; c < g * g; c++) start[c + 1] += start[c];
    const fill = start.slice(0, g * g), order = new Uint32Array(n), rank = new Uint32Array(n);
    const sorted = new Float32Array(2 * n);
    for (let i = 0; i < n; i++) {
      const s = fill[cell[i]]++;
      order[s] = i;
      rank[i] = s;
      sorted[2 * s] = xy[2 * i];
      sorted[2 * s + 1] = xy[2 * i + 1];
    }
    this.start = start; // points of cell c are sorted[start[c]] .. sorted[start[c + 1] - 1]
    this.order = order; // sorted position -> the point's own index
    this.rank = rank; // the point's own index -> sorted position
    this.xy = sorted;
  }

  col(x) { return Math.min(this.g - 1, Math.max(0, Math.floor((x - this.x0) / this.cw))); }

  row(y) { return Math.min(this.g - 1, Math.max(0, Math.floor((y - this.y0) / this.ch))); }

  // [first, count] runs of sorted positions covering every point in the box (and some just outside it); rows of
  // cells that are whole are merged into one run
  runs(x0, x1, y0, y1) {
    const out = [];
    if (!this.n) return out;
    const c0 = this.col(x0), c1 = this.col(x1), r0 = this.row(y0), r1 = this.row(y1), g = this.g;
    for (let r = r0; r <= r1; r++) {
      const first = this.start[r * g + c0], end = this.start[r * g + c1 + 1];
      if (end <= first) continue;
      const last = out[out.length - 1];
      if (last && last[0] + last[1] === first) last[1] += end - first;
      else out.push([first, end - first]);
    }
    return out;
  }

  // the point (own index) nearest (x, y) within distance r, skipping those `skip` rejects; -1 if none
  nearest(x, y, r, skip) {
    if (!this.n) return -1;
    let best = -1, bestD = r * r;
    for (const [first, count] of this.runs(x - r, x + r, y - r, y + r)) {
      for (let s = first; s < first + count; s++) {
        const dx = this.xy[2 * s] - x, dy = this.xy[2 * s + 1] - y, dd = dx * dx + dy * dy;
        if (dd <= bestD && !(skip && skip(this.order[s]))) { bestD = dd; best = this.order[s]; }
      }
    }
    return best;
  }

  // sets mask[i] = 1 for each point i inside `poly` ([[x, y], ...], plane coordinates); returns how many it set
  markInside(poly, mask) {
    if (poly.length < 3) return 0;
    let x0 = Infinity, y0 = Infinity, x1 = -Infinity, y1 = -Infinity;
    for (const [x, y] of poly) {
      if (x < x0) x0 = x; if (x > x1) x1 = x;
      if (y < y0) y0 = y; if (y > y1) y1 = y;
    }
    let added = 0;
    for (const [first, count] of this.runs(x0, x1, y0, y1)) {
      for (let s = first; s < first + count; s++) {
        const x = this.xy[2 * s], y = this.xy[2 * s + 1];
        if (x < x0 || x > x1 || y < y0 || y > y1 || mask[this.order[s]]) continue;
        if (pgPointInPolygon(x, y, poly)) { mask[this.order[s]] = 1; added++; }
      }
    }
    return added;
  }
}
