"""Every image's figures under a model, for a whole split at once: what the Latent Map colours its points by and what
a selection's panel sums up. Computed once per model and split (the app caches them with the encodings)."""
from __future__ import annotations

import numpy as np
import torch

from .classifier import Classifier, probabilities
from .data import as_model_input
from .evaluate import device_of, eval_mode
from .loss import gaussian_kl
from .models import LatentModel
from .typicality import DEFAULT_SAMPLES, shared_draws

# name -> what a colour bar calls it; a model has the ones `figure_names` lists
FIGURES = {
    "nelbo": "−ELBO (nats)",
    "recon": "reconstruction error (nats)",
    "kl": "KL (nats)",
    "sigma": "σ, mean over dims",
    "confidence": "classifier's confidence",
}


def figure_names(model: LatentModel, judged: bool) -> tuple[str, ...]:
    """The figures `per_image_figures` gives for this model: KL and σ only with a posterior, the classifier's
    confidence only for images it can judge."""
    return tuple(n for n in FIGURES if (model.probabilistic or n not in ("kl", "sigma"))
                 and (judged or n != "confidence"))


def classifier_confidence(judge: Classifier, images: np.ndarray | torch.Tensor, batch_size: int = 500) -> np.ndarray:
    """float64 (N,): the top class probability the classifier gives each image (NCHW or display layout, of the
    classifier's image shape); the same for every model of a dataset."""
    images = images if isinstance(images, torch.Tensor) else torch.as_tensor(np.asarray(images))
    parts = [probabilities(judge, images[s:s + batch_size]).max(1) for s in range(0, len(images), batch_size)]
    return np.concatenate(parts or [np.zeros(0)]).astype(np.float64)


@torch.no_grad()
def per_image_figures(model: LatentModel, images: np.ndarray | torch.Tensor,
                      labels: np.ndarray | torch.Tensor | None = None, judge: Classifier | None = None,
                      samples: int = DEFAULT_SAMPLES, seed: int = 0, batch_size: int = 500) -> dict[str, np.ndarray]:
    """float64 (N,) per image: "recon", −log p(x|z) averaged over `samples` codes z = μ + σ·ε drawn with the shared ε of
    typicality.per_image_nelbo (for a point code, the cost at the code); "kl", KL(q(z|x) ‖ p(z)); "nelbo" = recon + kl
    (β = 1: for a model that takes no class, exactly typicality.per_image_nelbo); "sigma", the posterior's σ averaged
    over latent dims; "confidence", the top class probability `judge` gives the image (with a judge only). A
    conditional model is told each image's class (`labels`), so its −ELBO here is −ELBO(x | y). Floats are made a
    batch at a time (70,000 images at once would be 220 MB)."""
    images = images if isinstance(images, torch.Tensor) else torch.as_tensor(np.asarray(images))
    device = device_of(model)
    y_all = None if not model.conditional else torch.as_tensor(np.asarray(labels), dtype=torch.long)
    eps = shared_draws(model, samples, seed)
    names = figure_names(model, judge is not None)
    parts: dict[str, list[torch.Tensor]] = {n: [] for n in names if n != "nelbo"}
    with eval_mode(model):
        for start in range(0, len(images), batch_size):
            x = as_model_input(images[start:start + batch_size], model.config.image_shape).to(device)
            y = None if y_all is None else y_all[start:start + batch_size].to(device)
            q = model.encode(x, y)
            if q.logvar is None:
                parts["recon"].append(model.recon_nll(model.decode(q.mean, y), x))
            else:
                parts["recon"].append(model.sampled_recon_nll(q, x, y, eps).mean(0))
                parts["kl"].append(gaussian_kl(q.mean, q.logvar))
                parts["sigma"].append(q.std.mean(1))
    out = {n: torch.cat(v).double().cpu().numpy() if v else np.zeros(0) for n, v in parts.items()
           if n != "confidence"}
    if judge is not None:
        out["confidence"] = classifier_confidence(judge, images, batch_size)
    out["nelbo"] = out["recon"] + out["kl"] if "kl" in out else out["recon"].copy()
    return {n: out[n] for n in names}
