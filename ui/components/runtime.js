// The live plane's model runtime: every model, ours or imported, is two ONNX files (encoder, decoder) run by
// onnxruntime-web, pinned in package.json and copied by ./run.sh to static/ort/ (served by Streamlit, no CDN).
// WebGPU where the browser offers a hardware adapter, WebAssembly otherwise, on one thread: the page is not
// cross-origin isolated, so it has no SharedArrayBuffer for more.
// Top-level declarations only: this file is prepended to the component's module and also loaded alone by the tests.

const LP_ORT_DIR = "app/static/ort/";
// shared by every plane on the page
const LP_RUNTIME = { ort: null, models: new Map(), bytes: new Map(), creating: Promise.resolve() };

function lpRuntime() {
  if (!LP_RUNTIME.ort) {
    LP_RUNTIME.ort = (async () => {
      const base = new URL(LP_ORT_DIR, document.baseURI).href;
      // globalThis.latentExplorerBackend = "wasm" | "webgpu" overrides the choice (tests; a way out of a bad driver).
      // A fallback adapter is software rendering (SwiftShader): far slower than WebAssembly, so not used unasked.
      const forced = globalThis.latentExplorerBackend;
      let gpu = false;
      if (forced !== "wasm" && navigator.gpu) {
        try {
          const adapter = await navigator.gpu.requestAdapter();
          gpu = !!adapter && (forced === "webgpu" || !(adapter.info && adapter.info.isFallbackAdapter));
        } catch (e) {
          gpu = false;
        }
      }
      // the bundles hold their WebAssembly loader; each needs its one .wasm file beside it
      const [bundle, wasm] = gpu ? ["ort.webgpu.bundle.min.mjs", "ort-wasm-simd-threaded.asyncify.wasm"]
        : ["ort.wasm.bundle.min.mjs", "ort-wasm-simd-threaded.wasm"];
      let ort;
      try {
        ort = await import(base + bundle);
      } catch (e) {
        throw new Error("the browser runtime is missing from static/ort/ (./run.sh installs it)");
      }
      ort.env.wasm.wasmPaths = { wasm: base + wasm };
      ort.env.wasm.numThreads = 1;
      ort.env.logLevel = "error";
      return { ort, providers: gpu ? ["webgpu", "wasm"] : ["wasm"], backend: gpu ? "webgpu" : "wasm" };
    })();
    LP_RUNTIME.ort.catch(() => { LP_RUNTIME.ort = null; });
  }
  return LP_RUNTIME.ort;
}

const LP_FILE_WAIT_MS = 300000; // how long a file the server is still writing (404 meanwhile) is waited for

// The bytes at a content-addressed URL: a stored copy never goes stale, so reloads and other pages skip the download.
// The server writes a new model's files in the background: until they are there, `waiting()` is called and the
// request repeated.
function lpBytes(url, waiting) {
  if (!LP_RUNTIME.bytes.has(url)) {
    const job = (async () => {
      let cache = null, resp = null;
      try {
        cache = await caches.open("latent-explorer-models");
        resp = await cache.match(url);
      } catch (e) {
        cache = null; // no Cache Storage outside a secure context
      }
      for (let pause = 250, since = performance.now(); !resp; pause = Math.min(2 * pause, 2000)) {
        resp = await fetch(url);
        if (resp.status === 404 && performance.now() - since < LP_FILE_WAIT_MS) {
          if (waiting) waiting();
          resp = null;
          await new Promise((resolve) => setTimeout(resolve, pause));
        } else if (!resp.ok) {
          throw new Error("the model could not be loaded (" + resp.status + ")");
        } else if (cache) {
          await cache.put(url, resp.clone());
        }
      }
      return new Uint8Array(await resp.arrayBuffer());
    })();
    LP_RUNTIME.bytes.set(url, job);
    job.catch(() => LP_RUNTIME.bytes.delete(url));
  }
  return LP_RUNTIME.bytes.get(url);
}

// A model as ui/latent_plane.py describes it (`payload`): {sha, encoder, decoder (URLs), spec}; the spec says
// image_shape [C, H, W], latent_dim, n_classes (a label input, 0 without), probabilistic, decoder_output
// ("logits" | "probs"), input_rank (4: the encoder takes (N, C, H, W), 2: their flattening), and per graph
// (encoder, decoder) the names of its inputs and outputs and its batch (null: any batch size; else the only one).
class LpModel {
  // `waiting()` is called while the server is still writing the files
  static load(payload, waiting) {
    if (!LP_RUNTIME.models.has(payload.sha)) {
      const job = (async () => {
        const [rt, enc, dec] = await Promise.all([
          lpRuntime(), lpBytes(payload.encoder, waiting), lpBytes(payload.decoder, waiting)]);
        const options = { executionProviders: rt.providers, graphOptimizationLevel: "all" };
        // one session made at a time, page-wide: the WebGPU provider refuses to make two at once
        const create = (bytes) => {
          const made = LP_RUNTIME.creating.then(() => rt.ort.InferenceSession.create(bytes, options));
          LP_RUNTIME.creating = made.catch(() => {});
          return made;
        };
        const [encoder, decoder] = await Promise.all([create(enc), create(dec)]);
        return new LpModel(payload.spec, rt, encoder, decoder);
      })();
      LP_RUNTIME.models.set(payload.sha, job);
      job.catch(() => LP_RUNTIME.models.delete(payload.sha));
    }
    return LP_RUNTIME.models.get(payload.sha);
  }

  constructor(spec, rt, encoder, decoder) {
    this.spec = spec;
    this.ort = rt.ort;
    this.backend = rt.backend;
    this.encoder = encoder;
    this.decoder = decoder;
    this.queue = Promise.resolve(); // one run at a time: the probe, the grid's slices and the pad take turns
  }

  // Runs `session` on `n` rows: `inputs` maps a name to [values (n × width, row-major), dims after the batch axis].
  // A graph with a fixed batch size (`batch`) gets chunks of that size, the last one padded with zeros.
  runRows(session, inputs, n, outputs, batch) {
    const task = async () => {
      const rows = batch || n, parts = outputs.map(() => []);
      for (let start = 0; start < n; start += rows) {
        const feeds = {};
        for (const [name, [values, dims]] of Object.entries(inputs)) {
          const width = dims.reduce((a, b) => a * b, 1);
          let chunk = values;
          if (values.length !== rows * width) { // a fixed batch: this chunk's rows, then zeros
            chunk = new Float32Array(rows * width);
            chunk.set(values.subarray(start * width, Math.min(n, start + rows) * width));
          }
          feeds[name] = new this.ort.Tensor("float32", chunk, [rows, ...dims]);
        }
        const result = await session.run(feeds);
        const m = Math.min(rows, n - start);
        outputs.forEach((name, k) => {
          const data = result[name].data;
          parts[k].push(data.subarray(0, data.length / rows * m));
        });
      }
      return parts.map((p) => {
        if (p.length === 1) return p[0];
        const out = new Float32Array(p.reduce((s, a) => s + a.length, 0));
        let o = 0;
        for (const a of p) { out.set(a, o); o += a.length; }
        return out;
      });
    };
    const run = this.queue.then(task, task);
    this.queue = run.catch(() => {});
    return run;
  }

  labelInput(io, n, label) {
    if (!this.spec.n_classes) return {};
    const y = new Float32Array(n * this.spec.n_classes);
    for (let i = 0; i < n; i++) y[i * this.spec.n_classes + label] = 1;
    return { [io.label]: [y, [this.spec.n_classes]] };
  }

  // Pixel means in [0, 1] of `n` latent vectors (zs: n × d), n × C·H·W: the sigmoid of logits, as decode_mean does.
  async decode(zs, n, label) {
    const io = this.spec.decoder, d = this.spec.latent_dim;
    const [out] = await this.runRows(this.decoder, { [io.input]: [zs, [d]], ...this.labelInput(io, n, label) }, n,
                                     [io.output], io.batch);
    const p = new Float32Array(out.length);
    if (this.spec.decoder_output === "probs") {
      for (let i = 0; i < p.length; i++) p[i] = Math.min(Math.max(out[i], 0), 1);
    } else {
      for (let i = 0; i < p.length; i++) p[i] = 1 / (1 + Math.exp(-out[i]));
    }
    return p;
  }

  // {mu, logvar} of one image (x: C·H·W values in [0, 1]); logvar is null for a model without a posterior.
  async encode(x, label) {
    const io = this.spec.encoder, shape = this.spec.image_shape;
    const dims = this.spec.input_rank === 2 ? [x.length] : shape;
    const out = await this.runRows(this.encoder, { [io.input]: [x, dims], ...this.labelInput(io, 1, label) }, 1,
                                   io.outputs, io.batch);
    return { mu: Array.from(out[0]), logvar: out.length > 1 ? Array.from(out[1]) : null };
  }
}
