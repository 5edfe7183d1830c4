// Drawing a selection on the plane: a lasso (the pointer's path, closed) or a box (two corners), in plane coordinates.
// A finished shape is {kind: "lasso" | "box", points: [[x, y], ...]}, a polygon either way, so Python (which recounts
// a selection from its shapes, vae_core.selection) and PointGrid.markInside treat both alike.
// Top-level definitions only: the component concatenates its files.

const LS_STEP_PX = 3; // a lasso keeps a pointer position at least this far (screen pixels) from the last one kept
const LS_MAX_POINTS = 400; // vae_core.selection refuses longer polygons; a long lasso is thinned to this

class ShapeDraw {
  constructor(kind, at, screen) {
    this.kind = kind;
    this.path = [at];
    this.screen = [screen];
  }

  add(at, screen) {
    const last = this.screen[this.screen.length - 1];
    if (this.kind === "box") {
      this.path[1] = at;
      this.screen[1] = screen;
    } else if (Math.hypot(screen[0] - last[0], screen[1] - last[1]) >= LS_STEP_PX) {
      this.path.push(at);
      this.screen.push(screen);
    }
  }

  // the polygon in plane coordinates, or null when it encloses nothing (a click, a line)
  shape() {
    let points = this.path;
    if (this.kind === "box") {
      if (points.length < 2) return null;
      const [[x0, y0], [x1, y1]] = points;
      if (x0 === x1 || y0 === y1) return null;
      points = [[x0, y0], [x1, y0], [x1, y1], [x0, y1]];
    } else if (points.length > LS_MAX_POINTS) {
      const k = points.length / LS_MAX_POINTS;
      points = Array.from({ length: LS_MAX_POINTS }, (_, i) => points[Math.floor(i * k)]);
    }
    if (points.length < 3) return null;
    return { kind: this.kind, points: points.map(([x, y]) => [+x.toPrecision(7), +y.toPrecision(7)]) };
  }

  // the shape being drawn, on the overlay (screen coordinates from `toScreen`)
  draw(ctx, toScreen) {
    const s = this.shape() || { points: this.path };
    ctx.save();
    ctx.strokeStyle = "#222";
    ctx.fillStyle = "rgba(255, 75, 75, 0.12)";
    ctx.setLineDash([5, 3]);
    ctx.lineWidth = 1.5;
    ctx.beginPath();
    s.points.forEach(([x, y], i) => { const [sx, sy] = toScreen(x, y); i ? ctx.lineTo(sx, sy) : ctx.moveTo(sx, sy); });
    ctx.closePath();
    ctx.fill();
    ctx.stroke();
    ctx.restore();
  }
}
