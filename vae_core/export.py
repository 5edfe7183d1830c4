"""A model as the browser runs it: its encoder and decoder as ONNX files (`vae_core.onnx_export`) and what they mean.

The app's live plane runs both with onnxruntime-web (`ui/components/runtime.js`), so decoding under the pointer
needs no round trip. An imported model (two ONNX files of the user's) is described the same way: the spec says what
the graphs take and give, so the browser never asks which kind of model it runs.
"""
from __future__ import annotations

import copy
import hashlib
import json
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from .models import ImportedModel, LatentModel
from .onnx_export import export_model

# Part of every fingerprint: changing how models are exported must give their files new names.
EXPORT_VERSION = 2  # 2: torch.onnx's TorchScript exporter (vae_core.onnx_export), no longer torch.export's


@dataclass(frozen=True)
class BrowserModel:
    spec: dict[str, Any]  # see `browser_model`
    sha: str  # names the files: a browser keeps what it fetched under this name for good
    onnx: Callable[[], tuple[bytes, bytes]]  # the encoder's and decoder's ONNX bytes, made when first asked for


def _fingerprint(model: LatentModel, spec: dict[str, Any]) -> str:
    """A hash of what the exported graphs compute: the spec, the configuration and every weight (cheap: no export)."""
    h = hashlib.sha256(json.dumps([EXPORT_VERSION, spec, model.config.to_dict()], sort_keys=True, default=str).encode())
    for name, tensor in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(np.ascontiguousarray(tensor.detach().to("cpu").numpy()).tobytes())
    return h.hexdigest()[:20]


def browser_model(model: LatentModel) -> BrowserModel:
    """`model` for the browser. The spec: image_shape [C, H, W], latent_dim, n_classes (the label input's width, 0 when
    there is none), probabilistic (the encoder also gives log σ²), decoder_output ("logits": the browser takes their
    sigmoid, as `decode_mean` does; "probs": pixel means as they are), input_rank (4: the encoder takes (N, C, H, W);
    2: their flattening), and per graph its input and output names and batch (None: any batch size; else the only one
    the graph takes). An imported model is described from its checked graphs and run from its own two files."""
    config = model.config
    if isinstance(model, ImportedModel):
        enc, dec = model.encoder.graph, model.decoder.graph
        spec = _spec(model, decoder_output=config.decoder_output, input_rank=config.input_rank,
                     encoder={"input": enc.input_name, "label": None, "outputs": list(enc.outputs), "batch": enc.batch},
                     decoder={"input": dec.input_name, "label": None, "output": dec.outputs[0], "batch": dec.batch})
        files = model.onnx_files
        h = hashlib.sha256(json.dumps([EXPORT_VERSION, spec], sort_keys=True).encode())
        for blob in files:
            h.update(hashlib.sha256(blob).digest())
        return BrowserModel(spec=spec, sha=h.hexdigest()[:20], onnx=lambda: files)
    label = "y" if model.conditional else None
    spec = _spec(model, decoder_output="logits", input_rank=4,
                 encoder={"input": "x", "label": label, "outputs": ["mu", "logvar"] if model.probabilistic else ["mu"],
                          "batch": None},
                 decoder={"input": "z", "label": label, "output": "logits", "batch": None})
    # The export may run in another thread while the app keeps using `model`, and it switches the module to eval mode
    # and back while it traces, so it is given a copy.
    snapshot = copy.deepcopy(model)
    return BrowserModel(spec=spec, sha=_fingerprint(model, spec), onnx=lambda: export_model(snapshot))


def _spec(model: LatentModel, **graphs: Any) -> dict[str, Any]:
    config = model.config
    return {"image_shape": list(config.image_shape), "latent_dim": config.latent_dim,
            "n_classes": config.n_classes if model.conditional else 0, "probabilistic": model.probabilistic, **graphs}
