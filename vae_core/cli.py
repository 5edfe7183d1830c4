"""`python -m vae_core train | sweep | evaluate | classifier | import | list | data add|list|remove`. Bad arguments give one
line on stderr and exit code 2."""
from __future__ import annotations

import argparse
import json
import math
import os
import re
import shutil
import signal
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from .backends import EMBEDDED, RAY_ADDRESS_ENV, ClusterUnavailable, ray_backend
from .checkpoint import (CheckpointError, CheckpointWriteError, list_checkpoints, load_checkpoint, load_trajectory,
                         megabytes, read_info, save_checkpoint)
from .classifier import EPOCHS as CLASSIFIER_EPOCHS, MIN_STEPS as CLASSIFIER_MIN_STEPS
from .config import (ARCHITECTURES, DEFAULT_HIDDEN, DEFAULT_NOISE, LIKELIHOODS, LR_SCHEDULES, ConfigError, ModelConfig,
                     TrainConfig, default_arch)
from .data import (DatasetInfo, DatasetUnavailable, UnknownDataset, dataset_info, known_datasets, load_dataset,
                   load_test_set)
from .engine import EpochMetrics, Listener, Recorders, StepMetrics, pick_device, train_models
from .evaluate import evaluate, factor_metrics, pca_angle
from .grid import CSV_NAME, GridError, GridSpec, Row, check_folder, default_group_size, run
from .importer import (DEFAULT_TEST_FRACTION, RESERVED_NAMES, SIDES, ImportedDataError, ImportReport, find_imported,
                       import_images, list_imported, remove_imported)
from .jobs import IW_SAMPLES
from .models import TRAINABLE_KINDS, LatentModel, model_class
from .models.onnx_model import DECODER_OUTPUTS, DEFAULT_GAUSSIAN_VAR

if TYPE_CHECKING:
    from tqdm import tqdm

EXIT_USAGE = 2
EXIT_FAILED = 1  # the run happened but its result is not where it was asked for (diverged, or --out could not be written)
SAVE_MARGIN_BYTES = 1 << 20  # a checkpoint is its weights plus a few kB of metadata and zip headers


class UsageError(Exception):
    """A problem with what the user asked for: one line, exit code 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse prints a usage block; we want one line
        raise UsageError(message)


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or a positive integer, got {text}")
    return value


def _lacking_hidden() -> str:
    """The kinds without hidden layers (the linear autoencoder), for a help line."""
    return ", ".join(k for k in TRAINABLE_KINDS if not model_class(k).hidden_layers)


def _having(setting: str) -> str:
    """The kinds that take `setting`, for a help line (e.g. "ae, dae")."""
    return ", ".join(k for k in TRAINABLE_KINDS if setting in model_class(k).settings)


def _recipe_options(p: argparse.ArgumentParser, grid: bool) -> None:
    """The dataset, model and optimiser options `train` and `sweep` share; a sweep takes several βs and latent sizes."""
    m, tc = ModelConfig, TrainConfig  # the one source of every default
    several = {"nargs": "+"} if grid else {}
    p.add_argument("--dataset", required=True, help=f"one of: {', '.join(known_datasets())}, or a folder, .zip or "
                                                    ".npz of images (imported on the way)")
    p.add_argument("--data-dir", help="folder holding MNIST/raw etc. (default $VAE_DATA_DIR or ./data)")
    p.add_argument("--kind", default=m.kind, choices=TRAINABLE_KINDS, help=f"(default {m.kind})")
    p.add_argument("--noise", default=None, help=f"mask:ν, gauss:σ or patch:ρ:k (hide a share ρ of the k×k patches: "
                                                f"a masked autoencoder), for {_having('noise')} (default {DEFAULT_NOISE})")
    p.add_argument("--sparsity", type=float, default=m.sparsity,
                   help=f"λ of an L1 penalty on the code, for {_having('sparsity')}")
    p.add_argument("--arch", default=None, help=f"{' or '.join(ARCHITECTURES)} (default conv for colour and from "
                                                f"32 px, else {m.arch})")
    p.add_argument("--latent-dim", type=int, default=[m.latent_dim] if grid else m.latent_dim, **several,
                   help="one or more (a sweep trains each)" if grid else None)
    p.add_argument("--hidden", type=int, nargs="+", default=None,
                   help=f"hidden sizes (default {' '.join(map(str, DEFAULT_HIDDEN['mlp']))}; conv uses one, "
                        f"default {DEFAULT_HIDDEN['conv'][0]}; none for {_lacking_hidden()})")
    p.add_argument("--beta", type=float, default=[tc.beta] if grid else tc.beta, **several,
                   help="one or more (a sweep trains each)" if grid else None)
    p.add_argument("--kl-warmup", type=int, default=tc.kl_warmup, help="epochs of linear KL warm-up")
    p.add_argument("--likelihood", default=None, help=f"{' or '.join(LIKELIHOODS)} (default {m.likelihood}; "
                                                      f"{_lacking_hidden()}: gaussian with a fixed variance)")
    p.add_argument("--mc-samples", type=int, default=tc.mc_samples, help="Monte-Carlo samples of z per input")
    p.add_argument("--epochs", type=int, default=tc.epochs)
    p.add_argument("--batch-size", type=int, default=tc.batch_size)
    p.add_argument("--lr", type=float, default=tc.lr)
    p.add_argument("--lr-schedule", default=tc.lr_schedule,
                   help=f"{', '.join(LR_SCHEDULES)}: cosine decays to 0 over the run, warmup_cosine first rises "
                        "linearly over its first tenth")
    p.add_argument("--adam-beta2", type=float, default=tc.adam_beta2, help="decay of Adam's second-moment average")
    p.add_argument("--device", default=tc.device, help="auto, cpu or cuda")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m vae_core",
                     description="Train, evaluate and list Latent Explorer models "
                                 f"({', '.join(model_class(k).short_title for k in TRAINABLE_KINDS)}).")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    m, tc = ModelConfig, TrainConfig  # the one source of every default

    t = sub.add_parser("train", help="train a model and save it as one checkpoint file")
    _recipe_options(t, grid=False)
    t.add_argument("--seed", type=int, default=tc.seed)
    t.add_argument("--resume", help="checkpoint to continue training (its architecture is kept)")
    t.add_argument("--iw-samples", type=_non_negative_int, default=0, help="also measure the importance-weighted log p(x) at the end")
    t.add_argument("--out", required=True, help="checkpoint file to write")

    g = sub.add_parser("sweep", help="train every combination of β × latent size × seed and save each model, with "
                                     "sweep.csv of their metrics, in one folder (here, or on a Ray cluster)")
    _recipe_options(g, grid=True)
    g.add_argument("--seeds", type=_positive_int, default=1, help="how many seeds: --seed, --seed + 1, …")
    g.add_argument("--seed", type=int, default=tc.seed, help="the first seed")
    g.add_argument("--iw-samples", type=_non_negative_int, default=IW_SAMPLES,
                   help=f"importance samples of each finished model's IW log p(x) (default {IW_SAMPLES}; 0: none)")
    g.add_argument("--group-size", type=_positive_int, default=None,
                   help="at most this many models of one latent size train together (default: all of a latent size "
                        "here; on a Ray cluster, one latent size and seed per group, its βs together)")
    g.add_argument("--ray", metavar="ADDRESS", default=None,
                   help=f"train on the Ray cluster at ADDRESS (HOST:PORT or ray://HOST:PORT; default ${RAY_ADDRESS_ENV} "
                        "when set, else here)")
    g.add_argument("--replace", action="store_true", help="let the sweep replace models of the same names in --out-dir")
    g.add_argument("--out-dir", required=True, help="folder for the models and sweep.csv (made if missing); under "
                                                    "checkpoints/trained/ the app's Compare page offers it as a preset")

    e = sub.add_parser("evaluate", help="test reconstruction, and for a kind with a posterior −ELBO, IW log p(x) and "
                                        "active units")
    e.add_argument("file")
    e.add_argument("--dataset", required=True)
    e.add_argument("--data-dir")
    e.add_argument("--iw-samples", type=_positive_int, default=100)
    e.add_argument("--device", default="auto")
    e.add_argument("--factors", action="store_true",
                   help="also measure disentanglement against the dataset's known factors (dsprites): MIG, β-VAE and "
                        "FactorVAE scores, DCI, SAP")

    c = sub.add_parser("classifier", help="train the small classifier that judges decoded images, and save it")
    c.add_argument("--dataset", required=True, help="any labelled dataset (see --dataset of train)")
    c.add_argument("--data-dir")
    c.add_argument("--epochs", type=_positive_int,
                   help=f"(default {CLASSIFIER_EPOCHS}, more for a small set: at least {CLASSIFIER_MIN_STEPS} steps)")
    c.add_argument("--seed", type=int, default=0)
    c.add_argument("--out", required=True, help="file to write, e.g. checkpoints/trained/classifier/NAME.pt, "
                                                "where the app looks for a dataset's classifier")

    i = sub.add_parser("import", help="import a model trained elsewhere (an ONNX encoder and decoder) into one file "
                                      "that loads like a checkpoint")
    i.add_argument("--encoder", required=True, help="ONNX: images (N, C, H, W) or (N, C·H·W) in [0, 1] -> μ [, log σ²]")
    i.add_argument("--decoder", required=True, help="ONNX: z (N, d) -> images (N, C, H, W) or (N, C·H·W)")
    i.add_argument("--dataset", required=True, help=f"the data it was trained on, one of: {', '.join(known_datasets())}")
    i.add_argument("--data-dir")
    i.add_argument("--decoder-output", default=DECODER_OUTPUTS[0], choices=DECODER_OUTPUTS,
                   help="what the decoder puts out: pixel probabilities (default) or logits")
    i.add_argument("--likelihood", default=m.likelihood, choices=LIKELIHOODS,
                   help="p(x|z) for the −ELBO: bernoulli (default) or gaussian with a fixed variance")
    i.add_argument("--gaussian-var", type=float, default=DEFAULT_GAUSSIAN_VAR,
                   help=f"the Gaussian likelihood's variance per pixel (default {DEFAULT_GAUSSIAN_VAR})")
    i.add_argument("--title", default="", help="a name to show for it")
    i.add_argument("--out", required=True, help="file to write, e.g. checkpoints/trained/my_vae.pt")

    ls = sub.add_parser("list", help="list the checkpoints in a folder")
    ls.add_argument("dir", nargs="?", default="checkpoints")

    d = sub.add_parser("data", help="import your own images as a dataset; list or remove imported ones")
    dsub = d.add_subparsers(dest="data_command", required=True, parser_class=_Parser)
    add = dsub.add_parser("add", help="import a folder (one subfolder per class, or flat), a .zip of one, or an .npz")
    add.add_argument("name", help="letters, digits, '_', '.' or '-'")
    add.add_argument("source", help="folder, .zip, or .npz with images (N, H, W[, C]) uint8 and optional labels")
    add.add_argument("--side", type=int, choices=SIDES,
                     help="image side (default: the largest that at least half the images reach without upscaling)")
    add.add_argument("--channels", type=int, choices=(1, 3), help="1 or 3 (default: 1 when every image is grey)")
    add.add_argument("--test-fraction", type=float, default=DEFAULT_TEST_FRACTION,
                     help=f"share held out as the test split (default {DEFAULT_TEST_FRACTION:g})")
    add.add_argument("--pad", action="store_true", help="pad each image to a square instead of cropping its centre")
    add.add_argument("--seed", type=int, default=0, help="of the train/test split")
    add.add_argument("--replace", action="store_true", help="let these images replace a dataset of the same name")
    dsub.add_parser("list", help="list the imported datasets")
    rm = dsub.add_parser("remove", help="delete an imported dataset")
    rm.add_argument("name")
    return parser


def _check_out(path: Path) -> None:
    if path.is_dir():
        raise UsageError(f"--out {path} is a folder; give a file name such as {path / 'model.pt'}")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise UsageError(f"--out {path}: folder {parent} does not exist")
    # Creating a file is the only honest test: os.access says yes for root on /proc or a read-only mount. The probe
    # is named like save_checkpoint's temp files, so even a kill right here leaves nothing that is not cleaned later.
    try:
        fd, probe = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=parent)
    except OSError as exc:
        raise UsageError(f"--out {path}: cannot create files in {parent} ({exc.strerror or exc})") from exc
    os.close(fd)
    Path(probe).unlink(missing_ok=True)  # a concurrent save's cleanup may already have taken it


def _check_room(path: Path, model: LatentModel) -> None:
    """Refuse before training when --out's disk cannot hold the result, rather than after the whole run."""
    needed = sum(t.numel() * t.element_size() for t in model.state_dict().values()) + SAVE_MARGIN_BYTES
    free = shutil.disk_usage(path.parent if str(path.parent) else ".").free
    if free < needed:
        raise UsageError(f"disk full: --out {path} needs about {megabytes(needed)}, its disk has {megabytes(free)} free")


def _check_shape(image_shape: tuple[int, int, int], info: DatasetInfo, what: str) -> None:
    if tuple(image_shape) != tuple(info.image_shape):
        raise UsageError(f"{what} takes images of shape {tuple(image_shape)} (C, H, W), but {info.name}'s are "
                         f"{tuple(info.image_shape)}")


def _check_data_dir(data_dir: str | None) -> None:
    # torchvision would create a missing folder and download into it; a --data-dir typo should not do that.
    if data_dir is not None and not Path(data_dir).is_dir():
        raise UsageError(f"--data-dir {data_dir} is not a folder")


def _save_or_rescue(out: Path, save: Callable[[Path], None]) -> str | None:
    """Save to `out`; when that fails, save to a new folder under the system temp dir instead.

    Returns None when `out` was written, else the one error line for the user (saying where the weights went)."""
    try:
        save(out)
        return None
    except CheckpointWriteError as exc:
        problem = str(exc)
    try:
        folder = Path(tempfile.mkdtemp(prefix="vae_core-rescued-"))
    except OSError as exc:
        return f"{problem}; no temp folder could be made either ({exc.strerror or exc}), so the trained weights are lost"
    try:
        save(folder / out.name)
    except CheckpointWriteError as exc:
        folder.rmdir()
        return f"{problem}; saving to {folder} failed too ({exc}), so the trained weights are lost"
    return f"{problem}; the trained weights were saved to {folder / out.name} instead: move them once there is room"


def _dataset(args: argparse.Namespace) -> DatasetInfo:
    """What --dataset names; a folder, .zip or .npz given there is imported on the way (resolve_dataset_argument) and
    args.dataset becomes its name."""
    args.dataset = resolve_dataset_argument(args.dataset)
    try:
        return dataset_info(args.dataset)
    except UnknownDataset as exc:
        raise UsageError(str(exc)) from exc


class _Printer(Listener):
    """What the CLI shows of a run: a progress bar over the steps on stderr, one line per epoch on stdout."""

    def __init__(self, total_steps: int, probabilistic: bool) -> None:
        from tqdm.auto import tqdm

        self.bar = tqdm(total=total_steps, unit="step", file=sys.stderr, dynamic_ncols=True)
        self.probabilistic = probabilistic

    def step(self, member: int, m: StepMetrics) -> None:
        self.bar.n = round(m.progress * self.bar.total)
        self.bar.set_postfix(epoch=m.epoch, loss=f"{m.loss:.1f}", refresh=False)
        self.bar.refresh()

    def epoch(self, member: int, m: EpochMetrics, model: LatentModel) -> None:
        losses = (f"train -ELBO {m.train_elbo:8.2f}  test -ELBO {m.test_elbo:8.2f}  (recon {m.test_recon:7.2f}  "
                  f"KL {m.test_kl:6.2f})  KL weight {m.kl_weight:.3g}" if self.probabilistic else
                  f"train recon {m.train_recon:8.2f}  test recon {m.test_recon:8.2f}")
        self.bar.write(f"epoch {m.epoch:3d}  {losses}  {m.images_per_s:,.0f} img/s  {m.elapsed:6.1f}s", file=sys.stdout)


@contextmanager
def _stop_on_interrupt(bar: "tqdm", stopping: str) -> Iterator[threading.Event]:
    """While training: the first Ctrl-C sets the event (the engine stops after its current step and what was reached
    is saved), a second one aborts (KeyboardInterrupt). Closes the bar at the end, so messages after it stay whole."""
    stop = threading.Event()

    def on_interrupt(signum, frame) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()
        bar.write(f"{stopping} and saving; press Ctrl-C again to abort without saving", file=sys.stderr)

    previous = signal.signal(signal.SIGINT, on_interrupt)
    try:
        yield stop
    finally:
        signal.signal(signal.SIGINT, previous)
        bar.close()


def _recipe(args: argparse.Namespace, info: DatasetInfo, latent_dim: int,
            beta: float) -> tuple[ModelConfig, TrainConfig]:
    """The configurations the options of `train` or `sweep` ask for (ConfigError for a value out of range)."""
    _check_data_dir(args.data_dir)
    kind = model_class(args.kind)
    arch = args.arch or kind.default("arch", default_arch(info.image_shape))
    model_config = ModelConfig(
        kind=args.kind, arch=arch, latent_dim=latent_dim,
        likelihood=args.likelihood or kind.default("likelihood", ModelConfig.likelihood),
        hidden=(tuple(args.hidden) if args.hidden else
                DEFAULT_HIDDEN.get(arch, ModelConfig.hidden) if kind.hidden_layers else ()),
        image_shape=info.image_shape, n_classes=len(info.class_names) if kind.conditional else 0,
        noise=args.noise if args.noise is not None else DEFAULT_NOISE if "noise" in kind.settings else "",
        sparsity=args.sparsity,
    )
    train_config = TrainConfig(
        dataset=args.dataset, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, beta=beta,
        kl_warmup=args.kl_warmup, mc_samples=args.mc_samples, seed=args.seed, device=args.device,
        lr_schedule=args.lr_schedule, adam_beta2=args.adam_beta2,
    )
    return model_config, train_config


def _train(args: argparse.Namespace) -> int:
    from .train import prepare_model
    from .trajectory import TrajectoryRecorder

    info = _dataset(args)
    model_config, train_config = _recipe(args, info, args.latent_dim, args.beta)
    out = Path(args.out)
    _check_out(out)
    try:
        device = pick_device(args.device)
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    model, history = prepare_model(model_config, train_config, args.resume)
    _check_shape(model.config.image_shape, info, args.resume or "the model")
    _check_room(out, model)
    dataset = load_dataset(args.dataset, args.data_dir)
    print(f"training on {dataset.source}, device {device}, {sum(p.numel() for p in model.parameters()):,} parameters", file=sys.stderr)
    printer = _Printer(train_config.epochs * math.ceil(len(dataset.train_images) / train_config.batch_size),
                       model.probabilistic)

    with _stop_on_interrupt(printer.bar, "stopping after this step") as stop:
        recorder = TrajectoryRecorder(dataset, train_config.epochs, model.latent_dim, first_epoch=len(history),
                                      previous=load_trajectory(args.resume) if args.resume else None)
        [result] = train_models([model], dataset, [train_config], listeners=[Recorders([recorder]), printer],
                                stop=stop, histories=[history])
    if result.status == "diverged" and out.exists():
        print(f"error: {result.message} Not saved: {out} already exists and a diverged run never replaces it.",
              file=sys.stderr)
        return EXIT_FAILED
    last = result.history[-1] if result.history else {}
    metrics = {key: last[f"test_{key}"] for key in ("elbo", "recon", "kl") if f"test_{key}" in last}
    if not model.probabilistic:
        metrics = {"recon": metrics["recon"]} if "recon" in metrics else {}
    if args.iw_samples > 0:
        metrics = evaluate(result.model, dataset.test_images, dataset.test_labels, iw_samples=args.iw_samples,
                           train_images=dataset.train_images)
    elif model.linear:
        metrics["pca_angle"] = pca_angle(result.model, dataset.train_images)

    def save(path: Path) -> None:
        save_checkpoint(path, result.model, train_config, dataset.name, result.history, metrics,
                        extra={"images_per_s": result.images_per_s, "device": result.device, "status": result.status},
                        trajectory=recorder.to_payload(), dataset_sha=dataset.sha)

    failure = _save_or_rescue(out, save)
    if failure is not None:
        print(f"error: {failure}", file=sys.stderr)
        return EXIT_FAILED
    print(f"saved {out}" + (f" ({result.message})" if result.message else ""), file=sys.stderr)
    return 0 if result.status != "diverged" else EXIT_FAILED


class _SweepPrinter(Listener):
    """What the CLI shows of a sweep on stderr: one bar over every model's steps, a line per model and epoch."""

    def __init__(self, names: list[str], steps_per_model: int, probabilistic: bool) -> None:
        from tqdm.auto import tqdm

        self.names, self.probabilistic = names, probabilistic
        self.progress = [0.0] * len(names)
        self.bar = tqdm(total=steps_per_model * len(names), unit="step", file=sys.stderr, dynamic_ncols=True)
        self.per_model = steps_per_model

    def step(self, member: int, m: StepMetrics) -> None:
        self.progress[member] = m.progress
        self.bar.n = round(sum(self.progress) * self.per_model)
        self.bar.refresh()

    def epoch(self, member: int, m: EpochMetrics, model: LatentModel) -> None:
        losses = (f"test -ELBO {m.test_elbo:8.2f}  (recon {m.test_recon:7.2f}  KL {m.test_kl:6.2f})"
                  if self.probabilistic else f"test recon {m.test_recon:8.2f}")
        self.bar.write(f"{self.names[member]:24s} epoch {m.epoch:3d}  {losses}  {m.elapsed:6.1f}s", file=sys.stderr)

    def row(self, row: Row) -> None:
        if row.file:
            score = f": test -ELBO {row.test_elbo:.2f}" if row.test_elbo is not None else ""
            self.bar.write(f"saved {row.file} ({row.status}){score}", file=sys.stderr)
        else:
            self.bar.write(f"{row.point.name}: {row.status}, nothing saved: {row.message}", file=sys.stderr)


def _sweep(args: argparse.Namespace) -> int:
    info = _dataset(args)
    model_config, train_config = _recipe(args, info, args.latent_dim[0], args.beta[0])
    kind = model_class(args.kind)
    if "beta" not in kind.settings and args.beta != [TrainConfig.beta]:
        raise UsageError(f"--beta: --kind {args.kind} has no β; sweep its --latent-dim and --seeds")
    folder = Path(args.out_dir)
    address = args.ray or os.environ.get(RAY_ADDRESS_ENV, "").strip()
    try:
        spec = GridSpec(model_config, train_config, tuple(args.beta), tuple(args.latent_dim),
                        tuple(range(args.seed, args.seed + args.seeds)))
        check_folder(spec, folder, args.replace)
        pick_device(args.device)
        backend = ray_backend(address) if address else EMBEDDED
    except (GridError, ValueError, ClusterUnavailable) as exc:
        raise UsageError(str(exc)) from exc
    group_size = args.group_size or default_group_size(spec, on_cluster=bool(address))
    dataset = load_dataset(args.dataset, args.data_dir)
    groups = spec.groups(group_size)
    names = [p.name for group in groups for p in group]
    print(f"sweep of {len(names)} models in {len(groups)} group(s) of at most {max(map(len, groups))} on "
          f"{backend.where}, {dataset.source}", file=sys.stderr)
    printer = _SweepPrinter(names, train_config.epochs * math.ceil(len(dataset.train_images) / train_config.batch_size),
                            kind.probabilistic)

    try:
        with _stop_on_interrupt(printer.bar, "stopping every model after its current step") as stop:
            rows = run(spec, folder, dataset, backend, group_size=group_size, iw_samples=args.iw_samples,
                       listeners=[printer], stop=stop, on_row=printer.row)
    except KeyboardInterrupt:
        print(f"error: interrupted; {folder / CSV_NAME} lists the models saved before it", file=sys.stderr)
        return 130
    print(f"{'model':24s} {'status':9s} {'test -ELBO':>10s} {'recon':>8s} {'KL':>7s} {'IW log p(x)':>11s} "
          f"{'active':>6s} {'s':>7s}  ran on")
    for row in rows:
        def cell(x: float | None, width: int) -> str:
            return f"{x:{width}.2f}" if x is not None else f"{'-':>{width}s}"

        print(f"{row.point.name:24s} {row.status:9s} {cell(row.test_elbo, 10)} {cell(row.recon, 8)} {cell(row.kl, 7)} "
              f"{cell(row.iw_logpx, 11)} {row.active_units if row.active_units is not None else '-':>6} "
              f"{cell(row.seconds, 7)}  {row.ran_on}")
    print(f"wrote {folder / CSV_NAME}", file=sys.stderr)
    return EXIT_FAILED if any(r.status in ("failed", "diverged") for r in rows) else 0


def _evaluate(args: argparse.Namespace) -> int:
    wanted = _dataset(args)
    try:
        device = pick_device(args.device)
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    _check_data_dir(args.data_dir)
    model, info = load_checkpoint(args.file, device)
    _check_shape(model.config.image_shape, wanted, args.file)
    # the model's own dataset is checked to be the very images it was trained on; another one is what was asked for
    dataset = load_test_set(args.dataset, args.data_dir, sha=info.dataset_sha if args.dataset == info.dataset else None)
    # a linear model's principal angle is measured against the training images of the dataset asked for
    train_images = load_dataset(args.dataset, args.data_dir).train_images if model.linear else None
    metrics = evaluate(model, dataset.test_images, dataset.test_labels, iw_samples=args.iw_samples,
                       train_images=train_images)
    if args.factors:
        if dataset.factors is None:
            raise UsageError(f"--factors: {dataset.name} has no known generative factors; use a dataset such as dsprites")
        from .disentanglement import METRIC_KEYS  # scikit-learn loads only when asked for

        measured = factor_metrics(model, dataset)
        metrics.update({key: measured[key] for key in METRIC_KEYS})
    broken = {k: v for k, v in metrics.items() if isinstance(v, float) and not math.isfinite(v)}
    if broken:  # finite but extreme weights; JSON has no NaN or infinity, so there is nothing honest to print
        raise CheckpointError(f"{args.file}: the model's test metrics on {dataset.name} are not finite ({broken}); "
                              "the weights are unusable")
    metrics.update(dataset=dataset.name, checkpoint=str(args.file), trained_on=info.dataset, beta=info.beta,
                   latent_dim=info.model_config.latent_dim)
    summary = (f"test -ELBO {metrics['elbo']:.2f} nats (recon {metrics['recon']:.2f}, KL {metrics['kl']:.2f}), "
               f"IW log p(x) {metrics['iw_logpx']:.2f} (k={args.iw_samples}), active units {metrics['active_units']}"
               if model.probabilistic else f"test reconstruction {metrics['recon']:.2f} nats")
    if "pca_angle" in metrics:
        summary += f", {metrics['pca_angle']:.1f}° from PCA's top-{model.latent_dim} subspace of the training images"
    print(f"{info.name} ({model.kind}): {summary}", file=sys.stderr)
    print(json.dumps(metrics))
    return 0


def _import(args: argparse.Namespace) -> int:
    from .imported import build, read_onnx, save_imported

    _dataset(args)
    _check_data_dir(args.data_dir)
    out = Path(args.out)
    _check_out(out)
    encoder, decoder = read_onnx(args.encoder), read_onnx(args.decoder)
    dataset = load_test_set(args.dataset, args.data_dir)
    model = build(encoder, decoder, dataset, decoder_output=args.decoder_output, likelihood=args.likelihood,
                  gaussian_var=args.gaussian_var, encoder_name=args.encoder, decoder_name=args.decoder)
    try:
        save_imported(out, model, encoder, decoder, dataset, title=args.title, sources=(args.encoder, args.decoder))
    except CheckpointWriteError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    metrics = read_info(out).metrics
    score = (f"test -ELBO {metrics['elbo']:.2f} nats (recon {metrics['recon']:.2f}, KL {metrics['kl']:.2f})"
             if model.probabilistic else f"test reconstruction {metrics['recon']:.2f} nats")
    print(f"imported {out}: {model.title}, d = {model.latent_dim}, {score} on {len(dataset.test_images):,} test images "
          f"of {dataset.name}", file=sys.stderr)
    print(json.dumps({"out": str(out), "kind": model.kind, "latent_dim": model.latent_dim, **metrics}))
    return 0


def _classifier(args: argparse.Namespace) -> int:
    from .classifier import accuracy, fit_classifier, save_classifier

    info = _dataset(args)
    if not info.labelled or len(info.class_names) < 2:
        raise UsageError(f"{args.dataset} has no classes (its images were imported without labels): a classifier "
                         "needs a labelled dataset")
    _check_data_dir(args.data_dir)
    out = Path(args.out)
    _check_out(out)
    dataset = load_dataset(args.dataset, args.data_dir)
    print(f"training the classifier on {dataset.source}", file=sys.stderr)
    model = fit_classifier(dataset, epochs=args.epochs, seed=args.seed,
                           on_epoch=lambda e, acc: print(f"epoch {e}  test accuracy {acc:.4f}", flush=True))
    test_accuracy = accuracy(model, dataset.test_images, dataset.test_labels)
    failure = _save_or_rescue(out, lambda path: save_classifier(path, model, dataset, test_accuracy))
    if failure is not None:
        print(f"error: {failure}", file=sys.stderr)
        return EXIT_FAILED
    print(json.dumps({"dataset": dataset.name, "test_accuracy": test_accuracy, "out": str(out)}))
    return 0


def _list(args: argparse.Namespace) -> int:
    folder = Path(args.dir)
    if not folder.is_dir():
        raise UsageError(f"{folder} is not a folder")
    infos, errors = list_checkpoints(folder)
    print(f"{'name':28s} {'kind':8s} {'dataset':14s} {'arch':5s} {'d':>3s} {'beta':>5s} {'epochs':>6s} "
          f"{'test -ELBO':>10s} {'recon':>8s}")
    for info in infos:
        elbo = f"{info.test_elbo:10.2f}" if info.test_elbo is not None else f"{'-':>10s}"
        recon = info.metrics.get("recon")
        print(f"{info.name:28s} {info.model_config.kind:8s} {info.dataset:14s} {info.model_config.arch:5s} "
              f"{info.model_config.latent_dim:3d} {info.beta:5g} {len(info.history):6d} {elbo} "
              + (f"{recon:8.2f}" if recon is not None else f"{'-':>8s}"))
    for line in errors:
        print(f"skipped: {line}", file=sys.stderr)
    return 0


def _import_images(source: str | Path, name: str, **settings) -> ImportReport:
    """import_images with a progress bar on stderr, one per phase (listing, sizes, decoding, saving)."""
    from tqdm.auto import tqdm

    bar = None

    def progress(done: int, total: int, message: str) -> None:
        nonlocal bar
        if bar is None or bar.desc != message:
            if bar is not None:
                bar.close()
            bar = tqdm(desc=message, total=total or None, unit="file", file=sys.stderr, dynamic_ncols=True)
        bar.total = total or None
        bar.n = done
        bar.refresh()

    try:
        return import_images(source, name, progress=progress, **settings)
    finally:
        if bar is not None:
            bar.close()


def _name_for(path: Path) -> str:
    """A dataset name made from a file's stem or a folder's name: a built-in's name gets `-images` added."""
    stem = path.resolve().name if path.is_dir() else path.stem
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", stem).strip("-_.")[:57] or "images"
    return f"{name}-images" if name.lower() in RESERVED_NAMES else name


def resolve_dataset_argument(text: str) -> str:
    """A --dataset value as a dataset's name: a name as it is; a folder, .zip or .npz imported on the way (named
    after it, its report printed on stderr; an unchanged source is not imported twice). A bare word is a name when
    a built-in or imported dataset has it, else a folder of that name."""
    path = Path(text).expanduser()
    pathlike = "/" in text or os.sep in text or path.suffix.lower() in (".zip", ".npz")
    if not pathlike and (text in RESERVED_NAMES or find_imported(text) is not None or not path.is_dir()):
        return text
    if not (path.is_dir() or (path.is_file() and path.suffix.lower() in (".zip", ".npz"))):
        raise UsageError(f"--dataset {text}: " + ("not a folder, .zip or .npz" if path.exists() else "no such folder or file"))
    report = _import_images(path, _name_for(path))
    for line in report.lines():
        print(line, file=sys.stderr)
    return report.manifest.name


def _data(args: argparse.Namespace) -> int:
    if args.data_command == "add":
        report = _import_images(args.source, args.name, side=args.side, channels=args.channels,
                         test_fraction=args.test_fraction, pad=args.pad, seed=args.seed, replace=args.replace)
        print("\n".join(report.lines()))
    elif args.data_command == "list":
        print(f"{'name':24s} {'train':>8s} {'test':>7s} {'classes':>7s} {'side':>4s} {'channels':>8s}  source")
        for m in list_imported():
            print(f"{m.name:24s} {m.n_train:8,d} {m.n_test:7,d} {len(m.class_names) or '-':>7} {m.side:4d} "
                  f"{m.channels:8d}  {m.source}")
    else:
        manifest = remove_imported(args.name)
        print(f"removed {manifest.name!r} ({manifest.n_train + manifest.n_test:,} images from {manifest.source})")
    return 0


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        return {"train": _train, "sweep": _sweep, "evaluate": _evaluate, "classifier": _classifier, "import": _import,
                "list": _list, "data": _data}[args.command](args)
    except (UsageError, ConfigError, DatasetUnavailable, CheckpointError, ImportedDataError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("error: interrupted; nothing was saved", file=sys.stderr)
        return 130
