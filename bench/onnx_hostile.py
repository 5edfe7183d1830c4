"""The hostile ONNX files of issue 15 through `python -m vae_core import`, in this one process: what each refusal says,
how long it took, and this process's peak resident memory (VmHWM) after each, against the 1.5 GB a server may reach.

Each case writes an encoder and a decoder (tests/onnx_files.py builds them with onnx.helper) and runs the CLI's
import on them in-process, as the app's upload would; every one must exit 2 with one line naming the file. A valid
pair is imported last, to show the process still works. `--large` also checks (without importing) a valid pair whose
decoder is just under the 100 MB file limit, the most memory a file that passes can make the checks use.

Usage: python bench/onnx_hostile.py [--large]    (last line: JSON with every case and the peaks)
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

import numpy as np  # noqa: E402
import onnx_files  # noqa: E402
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from vae_core.cli import main  # noqa: E402
from vae_core.onnx_check import check_pair  # noqa: E402

PEAK_LIMIT_MB = 1500


def peak_mb() -> float:
    """This process's peak resident memory so far (VmHWM: getrusage's ru_maxrss is the same here, but not in a child)."""
    return next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM")) / 1024


def large_decoder(hidden: int = 30_000) -> bytes:
    """A valid decoder z (N, 2) -> (N, 784) probabilities with a 784 × `hidden` layer: 94 MB at the default."""
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.normal(0, 0.1, (2, hidden)).astype(np.float32), "v1"),
             numpy_helper.from_array(rng.normal(0, 0.01, (hidden, 784)).astype(np.float32), "v2")]
    nodes = [helper.make_node("MatMul", ["z", "v1"], ["g"]), helper.make_node("MatMul", ["g", "v2"], ["l"]),
             helper.make_node("Sigmoid", ["l"], ["img"])]
    graph = helper.make_graph(nodes, "large", [helper.make_tensor_value_info("z", TensorProto.FLOAT, ["N", 2])],
                              [helper.make_tensor_value_info("img", TensorProto.FLOAT, ["N", 784])], inits)
    return helper.make_model(graph, opset_imports=onnx_files.OPSET).SerializeToString()


def run_import(folder: Path, encoder: bytes, decoder: bytes) -> tuple[int, list[str], float]:
    (folder / "E.onnx").write_bytes(encoder)
    (folder / "D.onnx").write_bytes(decoder)
    err = io.StringIO()
    start = time.perf_counter()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(["import", "--encoder", str(folder / "E.onnx"), "--decoder", str(folder / "D.onnx"),
                     "--dataset", "mnist-sample", "--out", str(folder / "imported.pt")])
    return code, err.getvalue().strip().splitlines(), time.perf_counter() - start


def main_bench() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--large", action="store_true")
    parser.add_argument("--write-large", help=argparse.SUPPRESS)  # the child that builds the large file
    args = parser.parse_args()
    if args.write_large:
        Path(args.write_large).write_bytes(large_decoder())
        return
    baseline = peak_mb()
    cases = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for name, (encoder, decoder, _, _) in onnx_files.hostile_files().items():
            code, lines, seconds = run_import(folder, encoder, decoder)
            cases.append({"case": name, "exit": code, "lines": lines, "seconds": round(seconds, 3),
                          "peak_mb": round(peak_mb(), 1), "written": (folder / "imported.pt").exists()})
            print(f"{name:34s} exit {code}  {seconds:5.2f} s  peak {peak_mb():6.1f} MB  {' | '.join(lines)}", flush=True)
        code, lines, seconds = run_import(folder, onnx_files.encoder(), onnx_files.decoder())
        valid = {"exit": code, "seconds": round(seconds, 3), "written": (folder / "imported.pt").exists()}
        print(f"{'valid pair (control)':34s} exit {code}  {seconds:5.2f} s  peak {peak_mb():6.1f} MB", flush=True)
    large = None
    if args.large:
        with tempfile.TemporaryDirectory() as tmp:  # built in a child: making it costs more memory than checking it
            subprocess.run([sys.executable, __file__, "--write-large", f"{tmp}/D.onnx"], check=True)
            decoder = Path(tmp, "D.onnx").read_bytes()
        start = time.perf_counter()
        pair = check_pair(onnx_files.encoder(), decoder, onnx_files.IMAGE, "probs")
        large = {"decoder_mb": round(len(decoder) / 1e6, 1), "seconds": round(time.perf_counter() - start, 2),
                 "probe_peak_mb": round(pair.probe_rss_bytes / 2**20, 1), "peak_mb": round(peak_mb(), 1)}
        print(f"{'large valid pair, checked':34s} decoder {large['decoder_mb']} MB  {large['seconds']:5.2f} s  "
              f"probe child peak {large['probe_peak_mb']} MB  peak {peak_mb():6.1f} MB", flush=True)
    print(f"baseline after imports {baseline:.1f} MB, peak {peak_mb():.1f} MB (limit {PEAK_LIMIT_MB} MB)")
    print(json.dumps({"baseline_mb": round(baseline, 1), "peak_mb": round(peak_mb(), 1), "cases": cases,
                      "valid": valid, "large": large}))


if __name__ == "__main__":
    main_bench()
