"""An imported encoder and decoder checked before any session is made, then run once on two images in a child
process whose memory is capped.

Nothing in an ONNX file is code, but onnxruntime does whatever its graph asks: a `ConstantOfShape` of 10 GB, weights in
a file elsewhere on disk, a custom operator. So a file is first read as data only (protobuf, no external data), its
operators must all be standard ones, every stored tensor must hold what it declares and be finite, and shape inference
(with the input fixed at PROBE_BATCH images of the dataset's shape) must give the contract's shapes and the size of
every tensor the graph makes, none beyond MAX_TENSOR_BYTES (a size that depends on the values given, not on the
input's shape, is refused: it could not be bounded). Only then does a child process (`onnx_probe.py`, address space
capped at PROBE_MEMORY_BYTES) make sessions and run the pair, so that whatever onnxruntime itself allocates beyond
that fails there and not in the server. Every refusal is one OnnxError line naming the file.

The contract (also in `vae_core.onnx_export`): the encoder takes x, float32 in [0, 1], (N, C, H, W) or (N, C·H·W), and
outputs μ, or μ and log σ², each (N, d); the decoder takes z (N, d) and outputs (N, C, H, W) or (N, C·H·W).
"""
from __future__ import annotations

import hashlib
import json
import math
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, numpy_helper

from .checkpoint import CheckpointError
from .config import MAX_LATENT_DIM
from .models.onnx_model import DECODER_OUTPUTS

MAX_ONNX_BYTES = 100_000_000  # per file; our largest network is 9 MB, the PyTorch example's decoder 1.3 MB
MAX_TENSOR_BYTES = 250_000_000  # any one tensor a graph holds or makes for PROBE_BATCH images
KEEP_FOR_INFERENCE_BYTES = 4096  # initialisers up to this size (shapes, axes, scales) are kept for shape inference
FINITE_CHECK_CHUNK = 1 << 20  # values per isfinite() pass over a stored tensor
PROBE_BATCH = 2
PROBE_MEMORY_BYTES = 1_000_000_000  # the child's address space; onnxruntime and numpy take 0.2 GB of it first
PROBE_TIMEOUT_S = 60
PROBE_SCRIPT = Path(__file__).with_name("onnx_probe.py")
STANDARD_DOMAINS = ("", "ai.onnx", "ai.onnx.ml")
PASSED_KEPT = 64  # pairs remembered as checked (by content hash), oldest forgotten first
# What a stored tensor may hold: numbers whose size is whole bytes (onnx packs 4-bit types two to a byte).
_TENSOR_TYPES = (TensorProto.FLOAT, TensorProto.DOUBLE, TensorProto.FLOAT16, TensorProto.BFLOAT16, TensorProto.INT8,
                 TensorProto.UINT8, TensorProto.INT16, TensorProto.UINT16, TensorProto.INT32, TensorProto.UINT32,
                 TensorProto.INT64, TensorProto.UINT64, TensorProto.BOOL)
_FLOAT_TYPES = (TensorProto.FLOAT, TensorProto.DOUBLE, TensorProto.FLOAT16, TensorProto.BFLOAT16)
# Operators whose output size is read from a constant input (its index): checked before shape inference, by name.
_SHAPED_BY_INPUT = {"ConstantOfShape": 0, "Expand": 1, "Tile": 1, "Reshape": 1, "Resize": 3}


class OnnxError(CheckpointError):
    """The file is not an encoder or decoder Latent Explorer will run; the message is one line naming it. A kind of
    CheckpointError: whatever lists or loads models skips or reports it the same way."""


@dataclass(frozen=True)
class Graph:
    """What a checked encoder or decoder is, by the contract."""

    input_name: str
    input_rank: int  # an encoder's 4 (N, C, H, W) or 2 (N, C·H·W); a decoder's 2 (N, d)
    batch: int | None  # a batch size fixed in the file, or None when the batch axis is dynamic
    outputs: tuple[str, ...]
    width: int  # d: what the encoder puts out per code, or the decoder takes
    sample_bytes: int  # the largest tensor shape inference found, per input row: sizes the chunks run at once

    def rows_per_run(self, budget_bytes: int) -> int:
        """How many inputs one run may take so that no tensor of it exceeds `budget_bytes`."""
        return self.batch or max(1, min(4096, budget_bytes // max(self.sample_bytes, 1)))


@dataclass(frozen=True)
class Pair:
    encoder: Graph
    decoder: Graph
    probe_rss_bytes: int  # the child's peak resident memory while it made both sessions and ran them

    @property
    def latent_dim(self) -> int:
        return self.encoder.width

    @property
    def probabilistic(self) -> bool:
        """The encoder gives log σ² beside μ."""
        return len(self.encoder.outputs) == 2


_passed: dict[tuple[str, str, tuple[int, ...], str], Pair] = {}


def _shown(text: str, limit: int = 60) -> str:
    return repr(text if len(text) <= limit else text[:limit - 3] + "...")


def _size(n_bytes: float) -> str:
    return f"{n_bytes / 1e9:.1f} GB" if n_bytes >= 1e9 else f"{n_bytes / 1e6:.1f} MB"


def _node(node: onnx.NodeProto) -> str:
    article = "an" if node.op_type[:1] in tuple("AEIOU") else "a"
    return f"{node.op_type} node {_shown(node.name, 30)}" if node.name else f"{article} {node.op_type} node"


def _refuse(name: str, reason: str) -> OnnxError:
    return OnnxError(f"{name}: refused: {reason}")


def check_pair(encoder: bytes, decoder: bytes, image_shape: tuple[int, int, int], decoder_output: str, *,
               encoder_name: str = "encoder.onnx", decoder_name: str = "decoder.onnx") -> Pair:
    """Both files checked, each on its own and against the other, then run once in the capped child process.

    A pair that passed is remembered by the sha256 of its bytes (and the shape and output it was checked for), so
    listing a model and then loading it runs the child once; bytes that differ in any way are checked afresh."""
    if decoder_output not in DECODER_OUTPUTS:
        raise ValueError(f"decoder output must be one of {', '.join(DECODER_OUTPUTS)}, got {decoder_output!r}")
    key = (hashlib.sha256(encoder).hexdigest(), hashlib.sha256(decoder).hexdigest(), tuple(image_shape), decoder_output)
    if key in _passed:
        return _passed[key]
    enc = check_graph(encoder, encoder_name, "encoder", image_shape)
    dec = check_graph(decoder, decoder_name, "decoder", image_shape, latent_dim=enc.width)
    rss = probe(encoder, decoder, enc, dec, image_shape, decoder_output, encoder_name, decoder_name)
    _passed[key] = Pair(encoder=enc, decoder=dec, probe_rss_bytes=rss)
    while len(_passed) > PASSED_KEPT:
        _passed.pop(next(iter(_passed)))
    return _passed[key]


def check_graph(data: bytes, name: str, role: str, image_shape: tuple[int, int, int],
                latent_dim: int | None = None) -> Graph:
    """One file, without running it: OnnxError naming `name` unless it is an encoder (role "encoder") or a decoder
    of images `image_shape` by the contract; a decoder must take `latent_dim` numbers when that is given."""
    if len(data) > MAX_ONNX_BYTES:
        raise _refuse(name, f"it is {_size(len(data))}, more than the {_size(MAX_ONNX_BYTES)} an imported {role} may be")
    model = _parse(data, name)
    graph = model.graph
    for tensor in _stored_tensors(graph):
        if tensor.data_location == TensorProto.EXTERNAL or len(tensor.external_data):
            where = next((e.value for e in tensor.external_data if e.key == "location"), "another file")
            raise _refuse(name, f"tensor {_shown(tensor.name)} keeps its data in {_shown(where)}; only self-contained "
                                "ONNX files are read (export with every tensor inside the file)")
    _check_operators(model, name)
    for tensor in _stored_tensors(graph):
        _check_tensor(tensor, name)
    weights = {t.name for t in graph.initializer}
    inputs = [i for i in graph.input if i.name not in weights]
    if len(inputs) != 1:
        shown = ", ".join(_shown(i.name, 20) for i in inputs[:4])
        raise _refuse(name, f"an imported {role} takes one input, this one takes {len(inputs)} ({shown})"
                            + ("; conditional models are not imported" if len(inputs) == 2 else ""))
    _check_constant_shapes(graph, name)
    c, h, w = image_shape
    if role == "encoder":
        rank = _rank(inputs[0], name, "input")
        if rank not in (2, 4):
            raise _refuse(name, f"an encoder takes images (N, C, H, W) or their flattening (N, C·H·W); its input has "
                                f"rank {rank}")
        wanted = (c, h, w) if rank == 4 else (c * h * w,)
        meaning = f"the dataset's images{' flattened' if rank == 2 else ''} are {['N', *wanted]}"
    else:
        wanted = (latent_dim,)
        meaning = f"the encoder's codes are {['N', latent_dim]}"
    batch = _pin_input(inputs[0], wanted, name, role, meaning)
    _drop_large_initializers(graph)
    try:
        onnx.checker.check_model(model)
        inferred = onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True, data_prop=True)
    except Exception as exc:  # ValidationError, InferenceError, and whatever else a malformed graph makes them raise
        raise _refuse(name, f"not a valid ONNX graph: {_first_line(exc)}") from exc
    largest = _check_sizes(inferred.graph, name, batch or PROBE_BATCH)
    outputs = list(inferred.graph.output)
    if role == "encoder":
        width = _check_codes(outputs, name)
    else:
        width = _static_dims(inputs[0], name, "input")[1]
        if width is None or not 1 <= width <= MAX_LATENT_DIM:
            raise _refuse(name, f"its input z has {width or 'an open number of'} dimensions; a decoder takes z (N, d) with "
                                f"1 ≤ d ≤ {MAX_LATENT_DIM}")
        _check_images(outputs, name, image_shape)
    return Graph(input_name=inputs[0].name, input_rank=len(wanted) + 1, batch=batch,
                 outputs=tuple(o.name for o in outputs), width=width,
                 sample_bytes=math.ceil(largest / (batch or PROBE_BATCH)))


def _parse(data: bytes, name: str) -> onnx.ModelProto:
    model = onnx.ModelProto()
    try:
        model.ParseFromString(data)  # protobuf only: external data would need onnx.load, which is never called
    except Exception as exc:  # protobuf raises DecodeError, RuntimeError or ValueError depending on the damage
        raise _refuse(name, "not an ONNX model (truncated, corrupted or another kind of file)") from exc
    if not model.ir_version or not model.HasField("graph") or not model.graph.node:
        raise _refuse(name, "not an ONNX model (no graph in it: truncated, corrupted or another kind of file)")
    return model


def _first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    text = lines[0] if lines else type(exc).__name__
    return text if len(text) <= 160 else text[:157] + "..."


def _stored_tensors(graph: onnx.GraphProto):
    """Every tensor a graph stores: initialisers (sparse ones too) and node attributes, subgraphs included."""
    yield from graph.initializer
    for sparse in graph.sparse_initializer:
        yield sparse.values
        yield sparse.indices
    for node in graph.node:
        for attr in node.attribute:
            if attr.HasField("t"):
                yield attr.t
            yield from attr.tensors
            for sparse in ([attr.sparse_tensor] if attr.HasField("sparse_tensor") else []) + list(attr.sparse_tensors):
                yield sparse.values
                yield sparse.indices
            for sub in ([attr.g] if attr.HasField("g") else []) + list(attr.graphs):
                yield from _stored_tensors(sub)


def _check_operators(model: onnx.ModelProto, name: str) -> None:
    for opset in model.opset_import:
        if opset.domain not in STANDARD_DOMAINS:
            raise _refuse(name, f"it uses operators of the custom domain {_shown(opset.domain)}; only standard ONNX "
                                "operators are run")
    if model.functions:
        raise _refuse(name, f"it defines its own functions ({_shown(model.functions[0].name)}); only standard ONNX "
                            "operators are run")
    for node in model.graph.node:
        if node.domain not in STANDARD_DOMAINS:
            raise _refuse(name, f"{_node(node)} is of the custom domain {_shown(node.domain)}; only standard ONNX "
                                "operators are run")
        if any(a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS) for a in node.attribute):
            raise _refuse(name, f"{_node(node)} runs a subgraph; control flow (If, Loop, Scan) is not imported, since "
                                "what it costs cannot be checked before it runs")


def _check_tensor(tensor: TensorProto, name: str) -> None:
    """A stored tensor holds exactly what its shape declares, within MAX_TENSOR_BYTES, and is finite."""
    label = _shown(tensor.name or "(unnamed)")
    if tensor.data_type not in _TENSOR_TYPES:
        raise _refuse(name, f"tensor {label} is of type {TensorProto.DataType.Name(tensor.data_type)}, which a model's "
                            "weights never are")
    dims = list(tensor.dims)
    dtype = onnx.helper.tensor_dtype_to_np_dtype(tensor.data_type)
    itemsize = dtype.itemsize
    if any(d < 0 for d in dims) or math.prod(dims) * itemsize > MAX_TENSOR_BYTES:
        raise _refuse(name, f"tensor {label} declares the shape {dims[:6]}, beyond the {_size(MAX_TENSOR_BYTES)} a "
                            "tensor may be")
    n = math.prod(dims)
    raw = tensor.raw_data  # protobuf hands out a fresh copy at every read: read it once
    stored = len(raw) / itemsize if raw else len(getattr(tensor, onnx.helper.tensor_dtype_to_field(tensor.data_type)))
    if stored != n:
        raise _refuse(name, f"tensor {label} declares {n:,} values and holds {stored:,g} (a damaged file)")
    if tensor.data_type not in _FLOAT_TYPES or not n:
        return
    values = np.frombuffer(raw, dtype.newbyteorder("<")) if raw else numpy_helper.to_array(tensor)
    for start in range(0, n, FINITE_CHECK_CHUNK):
        if not np.isfinite(values[start:start + FINITE_CHECK_CHUNK].astype(np.float32, copy=False)).all():
            raise _refuse(name, f"its weights hold NaN or infinite values ({label}); the model is unusable")


def _constant_values(graph: onnx.GraphProto) -> dict[str, np.ndarray]:
    """The values of the small constants a graph holds (initialisers and Constant nodes), by name."""
    values = {t.name: t for t in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant" and node.domain in STANDARD_DOMAINS:
            for attr in node.attribute:
                if attr.name == "value" and attr.HasField("t"):
                    values[node.output[0]] = attr.t
    return {k: numpy_helper.to_array(t) for k, t in values.items()
            if math.prod(t.dims) * 8 <= KEEP_FOR_INFERENCE_BYTES and t.data_type in _TENSOR_TYPES}


def _check_constant_shapes(graph: onnx.GraphProto, name: str) -> None:
    """ConstantOfShape, Expand, Tile, Reshape and Resize whose output size comes from a constant: that size bounded,
    whatever shape inference later makes of it."""
    constants = _constant_values(graph)
    for node in graph.node:
        index = _SHAPED_BY_INPUT.get(node.op_type)
        if index is None or len(node.input) <= index or node.input[index] not in constants:
            continue
        values = np.asarray(constants[node.input[index]], np.float64).ravel()
        elements = math.prod(max(1.0, float(v)) for v in values) if values.size else 1.0
        if elements * 4 > MAX_TENSOR_BYTES:
            raise _refuse(name, f"{_node(node)} asks for a tensor of {_size(elements * 4)} or more, beyond the "
                                f"{_size(MAX_TENSOR_BYTES)} a tensor may be")


def _rank(value: onnx.ValueInfoProto, name: str, what: str) -> int:
    kind = value.type.WhichOneof("value")
    if kind != "tensor_type" or value.type.tensor_type.elem_type != TensorProto.FLOAT:
        elem = TensorProto.DataType.Name(value.type.tensor_type.elem_type) if kind == "tensor_type" else kind
        raise _refuse(name, f"its {what} {_shown(value.name, 30)} is {elem}, not a float32 tensor")
    if not value.type.tensor_type.HasField("shape"):
        raise _refuse(name, f"its {what} {_shown(value.name, 30)} has no declared shape")
    return len(value.type.tensor_type.shape.dim)


def _static_dims(value: onnx.ValueInfoProto, name: str, what: str) -> list[int | None]:
    _rank(value, name, what)
    return [d.dim_value if d.HasField("dim_value") else None for d in value.type.tensor_type.shape.dim]


def _pin_input(value: onnx.ValueInfoProto, wanted: tuple[int | None, ...], name: str, role: str,
               meaning: str) -> int | None:
    """Check the input's declared sizes against `wanted` (after the batch axis) and fix the open ones, the batch at
    PROBE_BATCH, so shape inference works out every size the probe will meet; returns a batch size fixed in the file."""
    dims = value.type.tensor_type.shape.dim
    declared = _static_dims(value, name, "input")
    if len(declared) != len(wanted) + 1:
        expected = "(N, d)" if role == "decoder" else "(N, C, H, W) or (N, C·H·W)"
        raise _refuse(name, f"a {role} takes {expected}; its input has rank {len(declared)}")
    for i, (have, want) in enumerate(zip(declared[1:], wanted), start=1):
        if have is not None and want is not None and have != want:
            shown = [d if d is not None else "N" for d in declared]
            raise _refuse(name, f"its input is {shown}; {meaning}")
        if have is None and want is not None:
            dims[i].dim_value = want
    if declared[0] is None:
        dims[0].dim_value = PROBE_BATCH
    return declared[0]


def _drop_large_initializers(graph: onnx.GraphProto) -> None:
    """Turn the large initialisers into typed graph inputs: shape inference needs their shapes, not their values,
    and copies the model it is given (a 100 MB file would cost the server several hundred MB more)."""
    listed = {i.name for i in graph.input}
    kept = []
    for tensor in graph.initializer:
        if math.prod(tensor.dims) * 8 <= KEEP_FOR_INFERENCE_BYTES:
            kept.append(tensor)
        elif tensor.name not in listed:
            graph.input.append(onnx.helper.make_tensor_value_info(tensor.name, tensor.data_type, list(tensor.dims)))
    del graph.initializer[:]
    graph.initializer.extend(kept)


def _check_sizes(graph: onnx.GraphProto, name: str, batch: int) -> int:
    """Every tensor a node makes sized by shape inference (for `batch` inputs: its size follows from the input's
    shape, not from the values it is given) and within MAX_TENSOR_BYTES; returns the largest's bytes."""
    sized = {}
    for value in [*graph.value_info, *graph.output]:
        tensor_type = value.type.tensor_type
        if value.type.WhichOneof("value") == "tensor_type" and tensor_type.HasField("shape"):
            dims = [d.dim_value if d.HasField("dim_value") else None for d in tensor_type.shape.dim]
            sized[value.name] = (dims, tensor_type.elem_type)
    largest = 0
    for node in graph.node:
        for out in filter(None, node.output):  # an empty name is an optional output left out
            dims, elem_type = sized.get(out, ([None], None))
            if None in dims or elem_type not in _TENSOR_TYPES:
                raise _refuse(name, f"the size of tensor {_shown(out, 30)} (made by {_node(node)}) depends on the "
                                    "values the graph is given, not on its input's shape, so what it costs cannot be "
                                    "checked before it runs")
            n_bytes = math.prod(dims) * onnx.helper.tensor_dtype_to_np_dtype(elem_type).itemsize
            if n_bytes > MAX_TENSOR_BYTES:
                raise _refuse(name, f"tensor {_shown(out, 30)} (made by {_node(node)}) would be {_size(n_bytes)} for "
                                    f"{batch} images, beyond the {_size(MAX_TENSOR_BYTES)} a tensor may be")
            largest = max(largest, n_bytes)
    return largest


def _check_codes(outputs: list[onnx.ValueInfoProto], name: str) -> int:
    """An encoder's outputs: μ, or μ and log σ², each (N, d) with d within the limits; returns d."""
    if len(outputs) not in (1, 2):
        raise _refuse(name, f"an encoder outputs μ, or μ and log σ²; this one has {len(outputs)} outputs")
    widths = []
    for value in outputs:
        dims = _static_dims(value, name, "output")
        if len(dims) != 2:
            raise _refuse(name, f"its output {_shown(value.name, 30)} has rank {len(dims)}; μ and log σ² are (N, d)")
        widths.append(dims[1])
    if widths[0] is None or any(w != widths[0] for w in widths):
        raise _refuse(name, f"its outputs' widths {widths} are not one fixed latent size d")
    if not 1 <= widths[0] <= MAX_LATENT_DIM:
        raise _refuse(name, f"its latent size d = {widths[0]} is beyond the limits (1 to {MAX_LATENT_DIM})")
    return widths[0]


def _check_images(outputs: list[onnx.ValueInfoProto], name: str, image_shape: tuple[int, int, int]) -> None:
    if len(outputs) != 1:
        raise _refuse(name, f"a decoder outputs the images alone; this one has {len(outputs)} outputs")
    dims = _static_dims(outputs[0], name, "output")[1:]
    flat = [math.prod(image_shape)]
    if dims not in (list(image_shape), flat):
        shown = [d if d is not None else "?" for d in dims]
        raise _refuse(name, f"its output is (N, {', '.join(map(str, shown))}); the dataset's images are "
                            f"(N, {', '.join(map(str, image_shape))}) or flattened (N, {flat[0]})")


def probe(encoder: bytes, decoder: bytes, enc: Graph, dec: Graph, image_shape: tuple[int, int, int],
          decoder_output: str, encoder_name: str, decoder_name: str) -> int:
    """Run the pair once on PROBE_BATCH images (their batch, if the file fixes one) in a child process capped at
    PROBE_MEMORY_BYTES; OnnxError naming the file at fault unless its outputs are the contract's and finite (and
    probabilities, for `decoder_output` "probs"). Returns the child's peak resident memory in bytes."""
    batch = enc.batch or PROBE_BATCH
    x = np.random.default_rng(0).random((batch, *image_shape), dtype=np.float32)
    names = {"encoder": encoder_name, "decoder": decoder_name}
    limit = f"the {_size(PROBE_MEMORY_BYTES)} a first run may use"
    with tempfile.TemporaryDirectory(prefix="vae_core-probe-") as folder:  # files, not a pipe: no copies in the server
        Path(folder, "encoder.onnx").write_bytes(encoder)
        Path(folder, "decoder.onnx").write_bytes(decoder)
        np.save(Path(folder, "x.npy"), x.reshape(batch, -1) if enc.input_rank == 2 else x)
        try:
            done = subprocess.run([sys.executable, "-I", str(PROBE_SCRIPT), str(PROBE_MEMORY_BYTES), folder],
                                  stdin=subprocess.DEVNULL, capture_output=True, timeout=PROBE_TIMEOUT_S)
        except subprocess.TimeoutExpired as exc:
            raise _refuse(f"{encoder_name} + {decoder_name}", f"the pair ran longer than {PROBE_TIMEOUT_S} s on "
                                                              f"{batch} images") from exc
    try:
        report = json.loads(done.stdout.decode().strip().splitlines()[-1])
    except (ValueError, IndexError) as exc:
        raise _refuse(f"{encoder_name} + {decoder_name}", f"onnxruntime ended without an answer (exit code "
                                                          f"{done.returncode}) on {batch} images: it crashed or needed "
                                                          f"more than {limit}") from exc
    error = report.get("error")
    if error:
        at = names[error["stage"]]
        if error["type"] == "MemoryError" or "alloc" in error["message"].lower():
            raise _refuse(at, f"running it on {batch} images needed more than {limit}")
        raise _refuse(at, f"onnxruntime could not run it on {batch} images: {_first_line(error['message'])}")
    for stage, graph, wanted in (("encoder", enc, [[batch, enc.width]] * len(enc.outputs)),
                                 ("decoder", dec, None)):
        for value, out_name in zip(report[stage], graph.outputs):
            if value["dtype"] != "float32" or not value["finite"]:
                raise _refuse(names[stage], f"its output {_shown(out_name, 30)} is not finite float32 on {batch} images")
        shapes = [v["shape"] for v in report[stage]]
        if wanted is not None and shapes != wanted:
            raise _refuse(names[stage], f"it put out shapes {shapes} for {batch} images, not {wanted}")
    shape = report["decoder"][0]["shape"]
    if shape not in ([batch, *image_shape], [batch, math.prod(image_shape)]):
        raise _refuse(decoder_name, f"it put out the shape {shape} for {batch} codes, not images {list(image_shape)}")
    low, high = report["decoder"][0]["min"], report["decoder"][0]["max"]
    if decoder_output == "probs" and not (0.0 <= low and high <= 1.0):
        raise _refuse(decoder_name, f"its outputs range over [{low:.3g}, {high:.3g}], so they are not probabilities: "
                                    "import it with the decoder output logits")
    return int(report["max_rss_kb"]) * 1024
