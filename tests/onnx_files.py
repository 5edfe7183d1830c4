"""ONNX encoders and decoders made with onnx.helper for the import tests and bench/onnx_hostile.py: a small valid
pair (an MLP over MNIST-shaped images) and every hostile file of issue 15, each built the way an attacker would."""
from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

IMAGE = (1, 28, 28)
PIXELS = 784
OPSET = [helper.make_opsetid("", 17)]
TEN_GB = (50_000, 50_000)  # float32: 10 GB


def _weight(name: str, shape: tuple[int, ...], seed: int, scale: float = 0.05) -> TensorProto:
    return numpy_helper.from_array(np.random.default_rng(seed).normal(0, scale, shape).astype(np.float32), name)


def _model(nodes, inputs, outputs, initializers, opsets=OPSET) -> bytes:
    graph = helper.make_graph(nodes, "g", inputs, outputs, initializers)
    return helper.make_model(graph, opset_imports=opsets).SerializeToString()


def encoder(d: int = 2, *, flat: bool = False, outputs: int = 2, nan: bool = False, out_rank: int = 2,
            external: str | None = None) -> bytes:
    """x (N, 1, 28, 28), or (N, 784) with `flat`, -> μ [, log σ²] (N, d) through one hidden layer of 32."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", PIXELS] if flat else ["N", *IMAGE])
    w1 = _weight("w1", (PIXELS, 32), 1)
    if nan:
        w1 = numpy_helper.from_array(np.where(np.arange(PIXELS * 32).reshape(PIXELS, 32) == 7, np.nan,
                                              numpy_helper.to_array(w1)).astype(np.float32), "w1")
    if external:
        w1.ClearField("raw_data")
        w1.data_location = TensorProto.EXTERNAL
        w1.external_data.extend([onnx.StringStringEntryProto(key="location", value=external),
                                 onnx.StringStringEntryProto(key="length", value=str(PIXELS * 32 * 4))])
    nodes = [helper.make_node("Flatten", ["x"], ["flat"]), helper.make_node("MatMul", ["flat", "w1"], ["h0"]),
             helper.make_node("Relu", ["h0"], ["h"])]
    inits = [w1]
    names = ["mu", "logvar"][:outputs] + [f"extra{i}" for i in range(outputs - 2)]
    shape = ["N", d] if out_rank == 2 else ["N", 1, d]
    for i, name in enumerate(names):
        inits.append(_weight(f"w_{name}", (32, d), 2 + i))
        target = name if out_rank == 2 else f"{name}_2d"
        nodes.append(helper.make_node("MatMul", ["h", f"w_{name}"], [target]))
        if out_rank != 2:
            inits.append(numpy_helper.from_array(np.array([-1, 1, d], np.int64), f"shape_{name}"))
            nodes.append(helper.make_node("Reshape", [target, f"shape_{name}"], [name]))
    outs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, shape) for n in names]
    return _model(nodes, [x], outs, inits)


def decoder(d: int = 2, *, flat: bool = False, probs: bool = True, extra_nodes=(), extra_inits=(),
            opsets=OPSET, out: str = "img") -> bytes:
    """z (N, d) -> (N, 1, 28, 28), or (N, 784) with `flat`, sigmoid probabilities or (with probs False) logits;
    `extra_nodes` may add to "img_pre" (the last tensor before the output) through "extra"."""
    z = helper.make_tensor_value_info("z", TensorProto.FLOAT, ["N", d])
    inits = [_weight("v1", (d, 32), 5, 0.5), _weight("v2", (32, PIXELS), 6, 0.5), *extra_inits,
             numpy_helper.from_array(np.array([-1, *IMAGE], np.int64), "image_shape")]
    nodes = [helper.make_node("MatMul", ["z", "v1"], ["g0"]), helper.make_node("Relu", ["g0"], ["g"]),
             helper.make_node("MatMul", ["g", "v2"], ["logits"])]
    last = "logits"
    if extra_nodes:
        nodes += list(extra_nodes)
        nodes.append(helper.make_node("Add", ["logits", "extra"], ["logits_plus"]))
        last = "logits_plus"
    if probs:
        nodes.append(helper.make_node("Sigmoid", [last], ["probs"]))
        last = "probs"
    if not flat:
        nodes.append(helper.make_node("Reshape", [last, "image_shape"], [out]))
    else:
        nodes.append(helper.make_node("Identity", [last], [out]))
    shape = ["N", PIXELS] if flat else ["N", *IMAGE]
    return _model(nodes, [z], [helper.make_tensor_value_info(out, TensorProto.FLOAT, shape)], inits, opsets)


def _scalar_from(tensor: str) -> list:
    """Nodes that reduce `tensor` to the scalar "extra" (0 times its sum), so a huge tensor is wired into the output."""
    return [helper.make_node("ReduceSum", [tensor], ["big_sum"], keepdims=0),
            helper.make_node("Mul", ["big_sum", "zero"], ["extra"])]


def _zero() -> TensorProto:
    return numpy_helper.from_array(np.array(0.0, np.float32), "zero")


def constant_of_shape_bomb() -> bytes:
    """A decoder whose ConstantOfShape asks for a 10 GB float32 tensor from a constant shape."""
    shape = numpy_helper.from_array(np.array(TEN_GB, np.int64), "big_shape")
    nodes = [helper.make_node("ConstantOfShape", ["big_shape"], ["big"],
                              value=numpy_helper.from_array(np.array([1.0], np.float32))), *_scalar_from("big")]
    return decoder(extra_nodes=nodes, extra_inits=[shape, _zero()])


def expand_bomb() -> bytes:
    """A decoder that Expands one number to a 10 GB tensor, its target shape made by a Constant node."""
    nodes = [helper.make_node("Constant", [], ["big_shape"], value=numpy_helper.from_array(np.array(TEN_GB, np.int64))),
             helper.make_node("Expand", ["zero", "big_shape"], ["big"]), *_scalar_from("big")]
    return decoder(extra_nodes=nodes, extra_inits=[_zero()])


def runtime_bomb() -> bytes:
    """A decoder whose ConstantOfShape size is computed from the values of its input (max(z)² · 10¹⁰ elements)."""
    nodes = [helper.make_node("ReduceMax", ["z"], ["zmax"], keepdims=0), helper.make_node("Mul", ["zmax", "zmax"], ["z2"]),
             helper.make_node("Add", ["z2", "one"], ["z2p"]), helper.make_node("Mul", ["z2p", "scale"], ["n"]),
             helper.make_node("Cast", ["n"], ["n64"], to=TensorProto.INT64),
             helper.make_node("Unsqueeze", ["n64", "axes"], ["big_shape"]),
             helper.make_node("ConstantOfShape", ["big_shape"], ["big"]), *_scalar_from("big")]
    inits = [numpy_helper.from_array(np.array(1.0, np.float32), "one"),
             numpy_helper.from_array(np.array(1e10, np.float32), "scale"),
             numpy_helper.from_array(np.array([0], np.int64), "axes"), _zero()]
    return decoder(extra_nodes=nodes, extra_inits=inits)


def many_tensors_bomb(k: int = 6) -> bytes:
    """A decoder that sums `k` Expands of 200 MB each: every tensor within the 250 MB a tensor may be, all of them
    at once beyond the 1 GB of the first run, so only running it shows what it costs."""
    nodes = []
    for i in range(k):
        nodes += [helper.make_node("Constant", [], [f"shape{i}"],
                                   value=numpy_helper.from_array(np.array([50_000_000], np.int64))),
                  helper.make_node("Add", ["zero", f"offset{i}"], [f"val{i}"]),
                  helper.make_node("Expand", [f"val{i}", f"shape{i}"], [f"big{i}"])]
    nodes += [helper.make_node("Sum", [f"big{i}" for i in range(k)], ["big"]), *_scalar_from("big")]
    offsets = [numpy_helper.from_array(np.array(float(i), np.float32), f"offset{i}") for i in range(k)]
    return decoder(extra_nodes=nodes, extra_inits=[_zero(), *offsets])


def resize_bomb() -> bytes:
    """A decoder that upsamples its 28×28 output a thousandfold each way (3.1 GB an image): sized by shape
    inference, since the scales are not a target shape."""
    scales = numpy_helper.from_array(np.array([1, 1, 1000, 1000], np.float32), "scales")
    nodes = [helper.make_node("Reshape", ["logits", "image_shape"], ["small"]),
             helper.make_node("Resize", ["small", "", "scales"], ["big"]), *_scalar_from("big")]
    return decoder(extra_nodes=nodes, extra_inits=[scales, _zero()])


def custom_domain() -> bytes:
    """A decoder with an operator of a custom domain (what would load a shared library's code)."""
    nodes = [helper.make_node("Exfiltrate", ["logits"], ["extra"], domain="com.example.evil")]
    return decoder(extra_nodes=nodes, opsets=[*OPSET, helper.make_opsetid("com.example.evil", 1)])


def random_bytes(n: int = 4096) -> bytes:
    return np.random.default_rng(0).bytes(n)


def hostile_files() -> dict[str, tuple[bytes, bytes, str, str]]:
    """name -> (encoder, decoder, the file refused ("encoder", "decoder" or "pair"), what its one line says)."""
    enc, dec = encoder(), decoder()
    return {
        "random bytes": (random_bytes(), dec, "encoder", "not an ONNX model"),
        "truncated file": (enc, dec[: len(dec) // 2], "decoder", "not an ONNX model"),
        "custom-domain op": (enc, custom_domain(), "decoder", "custom domain 'com.example.evil'"),
        "external data": (encoder(external="../secrets.bin"), dec, "encoder", "keeps its data in '../secrets.bin'"),
        "ConstantOfShape 10 GB": (enc, constant_of_shape_bomb(), "decoder", "a ConstantOfShape node asks for a tensor of 10.0 GB"),
        "Expand 10 GB": (enc, expand_bomb(), "decoder", "an Expand node asks for a tensor of 10.0 GB"),
        "Resize to 3 GB (inferred)": (enc, resize_bomb(), "decoder", "(made by a Resize node) would be 6.3 GB"),
        "wrong output rank": (encoder(out_rank=3), dec, "encoder", "has rank 3"),
        "d beyond the limits": (encoder(65), decoder(65), "encoder", "latent size d = 65 is beyond the limits"),
        "NaN weights": (encoder(nan=True), dec, "encoder", "NaN or infinite values ('w1')"),
        "d disagree": (enc, decoder(3), "decoder", "its input is ['N', 3]"),
        "size computed from the data": (enc, runtime_bomb(), "decoder", "'big' (made by a ConstantOfShape node) "
                                                                         "depends on the values"),
        "1.2 GB in 200 MB tensors": (enc, many_tensors_bomb(), "decoder", "needed more than the 1.0 GB a first run"),
    }
