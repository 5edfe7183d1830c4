"""A model's encoder and decoder as a flat list of layer ops plus one float32 blob, for a forward pass elsewhere.

The app's latent plane runs this in the browser (`ui/components/forward.js`) so that decoding under the pointer
needs no round trip. Only the layer types our networks use are exported; anything else is refused by name, so a
new kind of layer cannot silently be dropped.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from .models import LatentModel
from .models.nets import ConvDecoder, ConvEncoder, MLPEncoder

Op = dict[str, Any]


class UnsupportedLayer(ValueError):
    """The network holds a layer the exported forward pass does not implement."""


@dataclass(frozen=True)
class BrowserModel:
    spec: dict[str, Any]  # ops for "encoder" and "decoder", with offsets (in floats) into `weights`
    weights: bytes  # little-endian float32
    sha: str  # of spec and weights: names the blob, so a browser can keep it for good

    @property
    def n_floats(self) -> int:
        return len(self.weights) // 4


class _Blob:
    def __init__(self) -> None:
        self.parts: list[np.ndarray] = []
        self.size = 0

    def add(self, t: torch.Tensor) -> int:
        a = t.detach().to("cpu", torch.float32).contiguous().numpy().ravel()
        offset = self.size
        self.parts.append(a)
        self.size += a.size
        return offset


def _sequence(modules: nn.Sequential | list[nn.Module], blob: _Blob) -> list[Op]:
    ops: list[Op] = []
    for m in modules:
        if isinstance(m, nn.Sequential):
            ops += _sequence(m, blob)
        elif isinstance(m, nn.Linear):
            ops.append({"op": "linear", "in": m.in_features, "out": m.out_features,
                        "w": blob.add(m.weight), "b": blob.add(m.bias)})
        elif isinstance(m, nn.ReLU):
            ops.append({"op": "relu"})
        elif isinstance(m, nn.Flatten):
            ops.append({"op": "flatten"})
        elif isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            if m.groups != 1 or m.dilation != (1, 1) or m.kernel_size[0] != m.kernel_size[1]:
                raise UnsupportedLayer(f"{m} is not exported (groups, dilation or a non-square kernel)")
            ops.append({"op": "conv" if isinstance(m, nn.Conv2d) else "convT", "cin": m.in_channels,
                        "cout": m.out_channels, "k": m.kernel_size[0], "stride": m.stride[0], "pad": m.padding[0],
                        "w": blob.add(m.weight), "b": blob.add(m.bias)})
        else:
            raise UnsupportedLayer(f"{type(m).__name__} is not exported to the browser")
    return ops


def _condition() -> Op:
    return {"op": "concat_condition"}


def _encoder_ops(encoder: nn.Module, blob: _Blob) -> list[Op]:
    if isinstance(encoder, MLPEncoder):
        return [{"op": "flatten"}, _condition(), *_sequence(encoder[1], blob)]
    if isinstance(encoder, ConvEncoder):
        return [*_sequence(encoder.features, blob), _condition(), *_sequence(encoder.head, blob)]
    raise UnsupportedLayer(f"encoder {type(encoder).__name__} is not exported to the browser")


def _decoder_ops(decoder: nn.Module, blob: _Blob, image_shape: tuple[int, int, int]) -> list[Op]:
    if isinstance(decoder, ConvDecoder):
        return [_condition(), *_sequence(decoder.body, blob), {"op": "reshape", "shape": list(decoder.map_shape)},
                *_sequence(decoder.deconv, blob)]
    if isinstance(decoder, nn.Sequential):
        return [_condition(), *_sequence(decoder, blob), {"op": "reshape", "shape": list(image_shape)}]
    raise UnsupportedLayer(f"decoder {type(decoder).__name__} is not exported to the browser")


def browser_model(model: LatentModel) -> BrowserModel:
    """The ops and weights of `model`: the encoder's output is μ (and log σ² after it, for a probabilistic model),
    the decoder's is logits shaped like an image; the browser applies the sigmoid, as `decode_mean` does."""
    if not model.logit_decoder:
        raise UnsupportedLayer(f"a {model.title}'s decode() adds a step to its network's output, which the browser's "
                               "forward pass would not")
    config = model.config
    blob = _Blob()
    spec: dict[str, Any] = {
        "kind": config.kind, "latent_dim": config.latent_dim, "image_shape": list(config.image_shape),
        "n_classes": config.n_classes if model.conditional else 0, "probabilistic": model.probabilistic,
        "encoder": _encoder_ops(model.encoder, blob),
        "decoder": _decoder_ops(model.decoder, blob, config.image_shape),
    }
    weights = (np.concatenate(blob.parts) if blob.parts else np.zeros(0, np.float32)).astype("<f4").tobytes()
    spec["n_floats"] = blob.size
    digest = hashlib.sha256(json.dumps(spec, sort_keys=True).encode() + weights).hexdigest()[:20]
    return BrowserModel(spec=spec, weights=weights, sha=digest)
