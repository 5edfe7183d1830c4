"""A replayable training history: at scheduled fractional epochs, the posterior means of a fixed test subset, the
per-dimension KL, 8 fixed reconstructions and 16 fixed prior samples, kept compact for the checkpoint.

`TrajectoryRecorder` is the hook `fit` calls (`due(epoch)` every step, `record(model, epoch)` when due); it is
independent of the loop, so anything that trains can use one. The recorded frames become the checkpoint's
"trajectory" dict (`to_payload`); `validate` is the loader's check of such a dict from an untrusted file.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from . import inference
from .config import MAX_CLASSES
from .data import ImageDataset, display_shape, to_float
from .evaluate import ACTIVE_UNIT_THRESHOLD, device_of, eval_mode
from .models import LatentModel
from .snapshots import N_EXAMPLES, N_SAMPLES, PRIOR_SEED, example_indices, map_indices

TRAJECTORY_POINTS = 2000  # test images followed through training: the same seeded subset for every model of a dataset
# Inside the first epoch, where most of the structure forms, denser at its start: about 10 moments.
FIRST_EPOCH_FRACTIONS = (0.0, 1 / 64, 1 / 32, 1 / 16, 1 / 8, 3 / 16, 1 / 4, 3 / 8, 1 / 2, 3 / 4)
MAX_BYTES = 4_500_000  # a history never outgrows this; long runs of wide models record every k-th epoch instead
MAX_FRAMES = 2000  # what a loader accepts (a hostile file cannot make the app draw millions of frames)
MAX_IMAGES = 64  # reconstructions or samples per frame a loader accepts
MAX_POINTS = 100_000

KEYS = ("epochs", "indices", "labels", "mu", "recon_indices", "recon", "samples")  # always present; "kl" with a posterior


def frame_bytes(latent_dim: int, image_pixels: int, n_points: int = TRAJECTORY_POINTS,
                n_images: int = N_EXAMPLES + N_SAMPLES) -> int:
    """Stored size of one frame: float16 μ, uint8 images, float32 KL per dimension."""
    return n_points * latent_dim * 2 + n_images * image_pixels + latent_dim * 4


def schedule(epochs: int, first_epoch: int = 0, latent_dim: int = 2, image_pixels: int = 784,
             n_points: int = TRAJECTORY_POINTS, max_bytes: int = MAX_BYTES) -> np.ndarray:
    """The fractional epochs (counted over the model's whole history) at which a run of `epochs` more epochs records:
    ~10 moments inside the model's first epoch when this run trains it, then every epoch's end, or every k-th end
    (k as small as keeps the history under `max_bytes`); the run's last epoch is always recorded. `image_pixels`
    counts every channel's (C·H·W). Where frames are so large that the early moments and the last would not fit
    (64×64 colour with a wide code: 10 frames of 0.55 MB), every other early moment is dropped until they do; where
    not even two frames fit, only the last is recorded (alone, it may pass `max_bytes`)."""
    last = first_epoch + epochs
    early = [first_epoch + f for f in FIRST_EPOCH_FRACTIONS] if first_epoch == 0 else [float(first_epoch)]
    fits = max(max_bytes // frame_bytes(latent_dim, image_pixels, n_points), 1)
    while len(early) > 1 and len(early) + 1 > fits:
        early = early[::2]
    if len(early) + 1 > fits:
        return np.asarray([float(last)], dtype=np.float64)
    stride = max(1, math.ceil(epochs / (fits - len(early))))
    ends = [float(e) for e in range(last, first_epoch, -stride)][::-1]
    return np.asarray(early + ends, dtype=np.float64)


@dataclass(frozen=True)
class Frame:
    epoch: float
    mu: np.ndarray  # (N, d) float16
    kl: np.ndarray | None  # (d,) float32 mean KL per dimension over the N images; None without a posterior
    recon: np.ndarray  # (8, H, W[, 3]) uint8, display layout
    samples: np.ndarray  # (16, H, W[, 3]) uint8


def _pixels(images: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(np.asarray(images) * 255.0), 0, 255).astype(np.uint8)


class TrajectoryRecorder:
    """Records frames of one model's training at `schedule(...)`'s moments; `frames` grows as training goes."""

    def __init__(self, data: ImageDataset, epochs: int, latent_dim: int, first_epoch: int = 0,
                 n_points: int = TRAJECTORY_POINTS, previous: "Trajectory | None" = None) -> None:
        """`previous`: the history of a resumed model, continued when it followed the same test images."""
        n_test = len(data.test_images)
        self.indices = map_indices(n_test, n_points)
        self.recon_indices = example_indices(data.test_labels)
        self.labels = data.test_labels[torch.as_tensor(self.indices)].numpy()
        self._images = data.test_images[torch.as_tensor(self.indices)]
        self._recon_inputs = data.test_images[torch.as_tensor(self.recon_indices)]
        self._recon_labels = data.test_labels[torch.as_tensor(self.recon_indices)]
        self.image_shape = tuple(data.test_images.shape[1:])
        self.frames: list[Frame] = []
        if (previous is not None and np.array_equal(previous.indices, self.indices)
                and np.array_equal(previous.recon_indices, self.recon_indices)):
            self.frames = [Frame(float(e), previous.mu[t], None if previous.kl is None else previous.kl[t],
                                 previous.recon[t], previous.samples[t]) for t, e in enumerate(previous.epochs)]
        room = MAX_BYTES - (previous.nbytes if self.frames else 0)
        self.moments = schedule(epochs, first_epoch, latent_dim, int(np.prod(self.image_shape)), len(self.indices),
                                max_bytes=room)
        self._next = 0  # index of the next moment to record

    def due(self, epoch: float) -> bool:
        """Whether a scheduled moment has been reached at `epoch` (fractional) and not yet recorded."""
        return self._next < len(self.moments) and epoch >= self.moments[self._next] - 1e-9

    def record(self, model: LatentModel, epoch: float) -> None:
        """One frame of `model` as it is now, at `epoch`; moments up to `epoch` count as recorded. Uses no global
        random state (the prior's z are seeded apart), so recording does not change what training computes."""
        while self._next < len(self.moments) and self.moments[self._next] <= epoch + 1e-9:
            self._next += 1
        if self.frames and epoch <= self.frames[-1].epoch:
            return
        mu, kl = _encode(model, self._images, torch.as_tensor(self.labels))
        recon = inference.reconstruct(model, self._recon_inputs, self._recon_labels)
        samples = inference.sample_prior(model, N_SAMPLES, seed=PRIOR_SEED)
        # Weights on their way to NaN (fit notices a few steps later and restores the last good ones) give no frame:
        # a stored history holds only finite values, so the checkpoint of the restored model stays loadable.
        if not all(np.isfinite(a).all() for a in (mu, recon, samples, *(() if kl is None else (kl,)))) \
                or np.abs(mu).max(initial=0) > np.finfo(np.float16).max:
            return
        self.frames.append(Frame(epoch=float(epoch), mu=mu.astype(np.float16), kl=kl, recon=_pixels(recon),
                                 samples=_pixels(samples)))

    def to_payload(self) -> dict[str, torch.Tensor] | None:
        """The checkpoint's "trajectory" dict, or None before the first frame."""
        if not self.frames:
            return None
        f = self.frames
        payload = {
            "epochs": torch.tensor([x.epoch for x in f], dtype=torch.float32),
            "indices": torch.as_tensor(self.indices, dtype=torch.int64),
            "labels": torch.as_tensor(self.labels, dtype=torch.int64),
            "mu": torch.from_numpy(np.stack([x.mu for x in f])),
            "recon_indices": torch.as_tensor(self.recon_indices, dtype=torch.int64),
            "recon": torch.from_numpy(np.stack([x.recon for x in f])),
            "samples": torch.from_numpy(np.stack([x.samples for x in f])),
        }
        if f[0].kl is not None:
            payload["kl"] = torch.from_numpy(np.stack([x.kl for x in f]))
        return payload


@torch.no_grad()
def _encode(model: LatentModel, images: torch.Tensor, labels: torch.Tensor,
            batch_size: int = 1000) -> tuple[np.ndarray, np.ndarray | None]:
    """(μ (N, d), mean KL per dimension (d,) or None for a point code) of uint8 images."""
    mus, kls = [], []
    device = device_of(model)
    with eval_mode(model):
        for start in range(0, len(images), batch_size):
            x = to_float(images[start:start + batch_size].to(device))
            y = labels[start:start + batch_size].to(device) if model.conditional else None
            q = model.encode(x, y)
            mus.append(q.mean.float().cpu())
            if q.logvar is not None:
                kls.append((0.5 * (q.mean.pow(2) + q.logvar.exp() - 1.0 - q.logvar)).float().sum(0).cpu())
    mu = torch.cat(mus).numpy()
    kl = None if not kls else (torch.stack(kls).sum(0) / len(images)).numpy().astype(np.float32)
    return mu, kl


@dataclass(frozen=True)
class Trajectory:
    """A stored history as numpy arrays (see the module docstring); `kl` is None for a model without a posterior."""

    epochs: np.ndarray  # (T,) fractional, increasing
    indices: np.ndarray  # (N,) test-set indices
    labels: np.ndarray  # (N,)
    mu: np.ndarray  # (T, N, d) float16
    recon_indices: np.ndarray  # (R,)
    recon: np.ndarray  # (T, R, H, W[, 3]) uint8, display layout (so histories written before colour still load)
    samples: np.ndarray  # (T, S, H, W[, 3]) uint8
    kl: np.ndarray | None  # (T, d) float32

    @classmethod
    def from_payload(cls, payload: dict[str, torch.Tensor]) -> "Trajectory":
        return cls(**{k: payload[k].numpy().copy() for k in KEYS}, kl=payload["kl"].numpy().copy() if "kl" in payload else None)

    @classmethod
    def from_frames(cls, recorder: TrajectoryRecorder, frames: list[Frame] | tuple[Frame, ...]) -> "Trajectory | None":
        """The frames recorded so far (a live run), or None before the first."""
        if not frames:
            return None
        return cls(epochs=np.array([f.epoch for f in frames]), indices=recorder.indices, labels=recorder.labels,
                   mu=np.stack([f.mu for f in frames]), recon_indices=recorder.recon_indices,
                   recon=np.stack([f.recon for f in frames]), samples=np.stack([f.samples for f in frames]),
                   kl=None if frames[0].kl is None else np.stack([f.kl for f in frames]))

    def active(self, threshold: float = ACTIVE_UNIT_THRESHOLD) -> np.ndarray:
        """(T, d) whether each dimension is active in each frame, on the followed subset: its μ varies across inputs
        (Var > threshold, as evaluate.active_units); an inactive unit of a VAE has collapsed onto the prior."""
        return self.mu.astype(np.float32).var(axis=1) > threshold

    def active_units(self, threshold: float = ACTIVE_UNIT_THRESHOLD) -> np.ndarray:
        """(T,) active units per frame."""
        return self.active(threshold).sum(axis=1)

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in (self.epochs, self.indices, self.labels, self.mu, self.recon_indices, self.recon,
                                      self.samples) + (() if self.kl is None else (self.kl,)))


class TrajectoryError(ValueError):
    """A stored trajectory is malformed; the message says what is wrong (the caller names the file)."""


def validate(payload: object, latent_dim: int, image_shape: tuple[int, int, int], probabilistic: bool) -> None:
    """Raise TrajectoryError unless `payload` is a trajectory dict a model of this configuration could have written:
    known keys of the expected dtypes and mutually consistent shapes, within bounds, finite, epochs increasing."""
    if not isinstance(payload, dict) or not all(isinstance(k, str) for k in payload):
        raise TrajectoryError("not a mapping of named tensors")
    wanted = set(KEYS) | ({"kl"} if probabilistic else set())
    if set(payload) != wanted:
        missing, unexpected = sorted(wanted - set(payload)), sorted(str(k)[:20] for k in set(payload) - wanted)
        raise TrajectoryError(f"keys missing {missing[:4]}, unexpected {unexpected[:4]}")
    if not all(isinstance(v, torch.Tensor) for v in payload.values()):
        raise TrajectoryError("holds something other than tensors")
    for key, tensor in payload.items():
        if not tensor.is_contiguous():
            raise TrajectoryError(f"{key} is not stored densely")
    epochs = payload["epochs"]
    n_frames = len(epochs) if epochs.ndim == 1 else 0
    n_points = len(payload["indices"]) if payload["indices"].ndim == 1 else 0
    n_recon = len(payload["recon_indices"]) if payload["recon_indices"].ndim == 1 else 0
    side = display_shape(image_shape)
    n_samples = payload["samples"].shape[1] if payload["samples"].ndim == 2 + len(side) else 0
    if not (1 <= n_frames <= MAX_FRAMES and 1 <= n_points <= MAX_POINTS and 1 <= n_recon <= MAX_IMAGES
            and 1 <= n_samples <= MAX_IMAGES):
        raise TrajectoryError(f"sizes out of range: {n_frames} frames (1..{MAX_FRAMES}), {n_points} points, "
                              f"{n_recon} reconstructions, {n_samples} samples (1..{MAX_IMAGES})")
    expected = {
        "epochs": (torch.float32, (n_frames,)), "indices": (torch.int64, (n_points,)),
        "labels": (torch.int64, (n_points,)), "mu": (torch.float16, (n_frames, n_points, latent_dim)),
        "recon_indices": (torch.int64, (n_recon,)), "recon": (torch.uint8, (n_frames, n_recon, *side)),
        "samples": (torch.uint8, (n_frames, n_samples, *side)), "kl": (torch.float32, (n_frames, latent_dim)),
    }
    for key in payload:
        dtype, shape = expected[key]
        if payload[key].dtype != dtype or tuple(payload[key].shape) != shape:
            raise TrajectoryError(f"{key} is {payload[key].dtype} {list(payload[key].shape)}, expected {dtype} {list(shape)}")
    for key in ("epochs", "mu", "kl"):
        if key in payload and not torch.isfinite(payload[key]).all():
            raise TrajectoryError(f"{key} holds NaN or infinite values")
    if (epochs < 0).any() or (n_frames > 1 and not (epochs[1:] > epochs[:-1]).all()):
        raise TrajectoryError("epochs are not non-negative and increasing")
    if "kl" in payload and (payload["kl"] < 0).any():
        raise TrajectoryError("a KL is negative")
    for key in ("indices", "recon_indices"):
        if (payload[key] < 0).any():
            raise TrajectoryError(f"{key} holds negative values")
    if ((payload["labels"] < 0) | (payload["labels"] >= MAX_CLASSES)).any():
        raise TrajectoryError(f"labels are not classes 0..{MAX_CLASSES - 1}")
