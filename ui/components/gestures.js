// The plane's pointer events as intents, for a mouse, a pen and fingers alike (touch has no hover, so a finger down
// and moving is the pointer moving). The component decides what each intent does with its tool:
//   move(p, ev, pressed)      the pointer moved (a mouse hovering or pressed, a finger or pen down)
//   tap(p, ev)                pressed and released within GS_SLOP pixels, one pointer
//   dragStart / drag / dragEnd (p, ev)   one pointer pressed and moved beyond GS_SLOP
//   pinch(mid0, mid, ratio)   two fingers: their midpoint moved from mid0 to mid, their distance grew by 1 / ratio
//   pinchEnd()
//   cancel()                  a second finger came down while one was dragging: drop what that drag was doing
// p is [x, y] in the element's CSS pixels. Top-level definitions only: the component concatenates its files.

const GS_SLOP = 4;

class PlaneGestures {
  constructor(el, intents) {
    this.el = el;
    this.intents = intents;
    this.down = new Map(); // pointerId -> {p0, p, dragged}
    this.pinching = null; // {mid0, dist0} while two fingers are down
    this.spent = false; // a pinch happened: nothing more until every pointer is up
    this.raw = new Set(); // pointers that send pointerrawupdate, whose pointermoves are then ignored
    // Chrome holds pointermove back until the next frame (up to ~16 ms); pointerrawupdate comes as the input does
    // (secure contexts: https or localhost), so the probe is repainted within the frame the pointer moved in.
    if ("onpointerrawupdate" in window && window.isSecureContext) {
      el.addEventListener("pointerrawupdate", (ev) => { this.raw.add(ev.pointerId); this.moved(ev); });
    }
    el.addEventListener("pointermove", (ev) => { if (!this.raw.has(ev.pointerId)) this.moved(ev); });
    el.addEventListener("pointerdown", (ev) => this.pressed(ev));
    el.addEventListener("pointerup", (ev) => this.released(ev, true));
    el.addEventListener("pointercancel", (ev) => this.released(ev, false));
  }

  local(ev) {
    const r = this.el.getBoundingClientRect();
    return [ev.clientX - r.left, ev.clientY - r.top];
  }

  pressed(ev) {
    if (ev.pointerType === "mouse" && ev.button !== 0) return;
    const p = this.local(ev);
    this.down.set(ev.pointerId, { p0: p, p, dragged: false });
    this.el.setPointerCapture(ev.pointerId);
    if (this.down.size === 2 && ev.pointerType === "touch") {
      if ([...this.down.values()].some((s) => s.dragged)) this.intents.cancel();
      this.pinching = this.pair();
      this.spent = true;
    } else if (this.down.size === 1) {
      this.spent = false;
      this.intents.move(p, ev, true);
    }
  }

  pair() {
    const [a, b] = [...this.down.values()].map((s) => s.p);
    return { mid: [(a[0] + b[0]) / 2, (a[1] + b[1]) / 2], dist: Math.max(Math.hypot(a[0] - b[0], a[1] - b[1]), 1) };
  }

  moved(ev) {
    const p = this.local(ev), s = this.down.get(ev.pointerId);
    if (!s) {
      if (ev.pointerType === "mouse") this.intents.move(p, ev, false);
      return;
    }
    s.p = p;
    if (this.pinching) {
      if (this.down.size === 2) {
        const now = this.pair();
        this.intents.pinch(this.pinching.mid, now.mid, this.pinching.dist / now.dist);
      }
      return;
    }
    if (this.spent) return;
    if (!s.dragged && Math.hypot(p[0] - s.p0[0], p[1] - s.p0[1]) > GS_SLOP) {
      s.dragged = true;
      this.intents.dragStart(s.p0, ev);
    }
    this.intents.move(p, ev, true);
    if (s.dragged) this.intents.drag(p, ev);
  }

  released(ev, up) {
    const s = this.down.get(ev.pointerId);
    if (!s) return;
    this.down.delete(ev.pointerId);
    if (this.pinching) {
      this.pinching = null;
      this.intents.pinchEnd();
      return;
    }
    if (this.spent) return;
    const p = this.local(ev);
    if (s.dragged) this.intents.dragEnd(p, ev);
    else if (up) this.intents.tap(p, ev);
  }
}
