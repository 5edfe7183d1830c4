"""The first run of an imported encoder and decoder, in a child process whose address space is capped.

Started by `vae_core.onnx_check.probe` as `python -I onnx_probe.py LIMIT_BYTES FOLDER`, FOLDER holding encoder.onnx,
decoder.onnx and the images x.npy; prints one JSON line on stdout. The cap is set
before onnxruntime is imported, so a graph that asks for more memory than it may fails here (an allocation error or
the process killed) and the server never makes a session of it. It imports nothing of vae_core (a script run by path
has no package), and so needs only numpy and onnxruntime. Where there is no `resource` module (Windows) the run
is not capped, only kept out of the server's process.
"""
import json
import os
import sys

try:
    import resource
except ImportError:
    resource = None


def main() -> None:
    limit, folder = int(sys.argv[1]), sys.argv[2]
    if resource is not None:
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    import numpy as np
    import onnxruntime as ort

    x = np.load(os.path.join(folder, "x.npy"))
    report = {}
    stage = "encoder"
    try:
        options = ort.SessionOptions()
        options.intra_op_num_threads = options.inter_op_num_threads = 1
        options.enable_cpu_mem_arena = False
        encoder = ort.InferenceSession(os.path.join(folder, "encoder.onnx"), options, providers=["CPUExecutionProvider"])
        codes = encoder.run(None, {encoder.get_inputs()[0].name: x})
        report["encoder"] = [_summary(c) for c in codes]
        stage = "decoder"
        decoder = ort.InferenceSession(os.path.join(folder, "decoder.onnx"), options, providers=["CPUExecutionProvider"])
        images = decoder.run(None, {decoder.get_inputs()[0].name: np.asarray(codes[0], np.float32)})
        report["decoder"] = [_summary(i) for i in images]
    except BaseException as exc:  # noqa: BLE001 - whatever onnxruntime raises is reported, as one line, by the parent
        report["error"] = {"stage": stage, "type": type(exc).__name__, "message": str(exc).strip()[:300]}
    report["max_rss_kb"] = _peak_kb()
    print(json.dumps(report))


def _peak_kb() -> int:
    """This process's peak resident memory: VmHWM, not getrusage's ru_maxrss, which keeps the parent's peak (the fork
    before exec copied it); 0 where /proc is not there."""
    try:
        with open("/proc/self/status") as status:
            return next(int(line.split()[1]) for line in status if line.startswith("VmHWM"))
    except (OSError, StopIteration):
        return 0


def _summary(a) -> dict:
    import numpy as np

    a = np.asarray(a)
    numeric = a.dtype.kind in "fiub"
    finite = bool(np.isfinite(a).all()) if numeric and a.size else numeric
    return {"shape": list(a.shape), "dtype": str(a.dtype), "finite": finite,
            "min": float(a.min()) if finite and a.size else None, "max": float(a.max()) if finite and a.size else None}


if __name__ == "__main__":
    main()
