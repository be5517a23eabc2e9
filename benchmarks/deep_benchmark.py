"""Training and inference volumes/second of every hccrad.deep architecture; a .md table.

Run from the repository root: ``.venv/bin/python benchmarks/deep_benchmark.py``. It takes 2-4
minutes on 2 cores. On a GPU machine, ``--cuda-only --output benchmarks/deep_benchmark_cuda.md``
measures the CUDA path alone; ``--config config/config.yaml config/hcc_tace_seg.yaml`` times
the real-data sizes (64^3 crops, width 1), ``--architectures`` a subset.
Training is timed through the library's own path (`train_epoch`: DataLoader, batched
augmentation, BCE, AdamW, deterministic algorithms on the CPU; mixed precision and channels-last
on CUDA); inference through `predict_scores`. From the measured rates it projects the wall time
of the default selection (every architecture x folds x max_epochs, then the refit) on the default
simulated cohort.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import platform
import subprocess
import sys
import time
from importlib.metadata import version
from pathlib import Path

import numpy as np
import torch
import yaml

from hccrad.core.labels import TUMOUR_LABEL
from hccrad.core.torch_runtime import reproducible, resolve_device
from hccrad.core.versions import machine_description
from hccrad.deep import dltr
from hccrad.deep.augment import BatchAugmentation
from hccrad.deep.config import ARCHITECTURES, DeepConfig
from hccrad.deep.crops import CropSet, crops_from_arrays
from hccrad.deep.networks import DeepModel, build_network, count_parameters
from hccrad.deep.predict import crop_input, predict_scores
from hccrad.deep.train import train_epoch, training_loader

REPORT = Path(__file__).with_suffix(".md")
N_CROPS = 24  # three training batches of 8 per timed epoch
SEED = 0
CROP_SPACING_MM = (3.0, 3.0, 3.0)  # the default crops: 96 mm boxes at 32 voxels
# The default simulated cohort: centre A, 100 patients, 30% internal test -> 70 training.
N_TRAINING_PATIENTS = 70
# A separate end-to-end run, too slow to repeat here; rerun it by hand when the defaults change.
END_TO_END_NOTE = (
    "End to end (measured separately on 2026-11-23, same machine, load average 3.5-4.9, 2 threads "
    "with OMP_WAIT_POLICY=PASSIVE): `select_and_refit` with the default config and "
    "intensity_clip (-5, 10) on a simulated 100-patient cohort (70 training patients, 2 mm "
    "crops of 32^3, strong planted arterial signal) took about 8.5 min: ResNet-18 1.4, "
    "ResNet-50 1.7, DenseNet-121 1.8, EfficientNet-B0 2.4 (3 folds each), refit of the winner "
    "0.6-1.2; early "
    "stopping ended fits after 6-20 epochs."
)


def random_crops(config: DeepConfig, n_crops: int = N_CROPS) -> tuple[CropSet, np.ndarray]:
    """Random 3-phase crops with a central ball of tumour, and balanced labels (3+ batches)."""
    rng = np.random.default_rng(SEED)
    n_crops = max(n_crops, 3 * config.batch_size)
    images = rng.normal(size=(n_crops, 3, *config.spatial_size)).astype(np.float32)
    # A tumour of a third of the crop's width: the tumour-margin blanking and the tumour-pooled
    # network's mask channel cost what they cost on real crops.
    grid = (
        np.indices(config.spatial_size) - (np.array(config.spatial_size) // 2)[:, None, None, None]
    )
    ball = (np.sqrt((grid**2).sum(axis=0)) <= min(config.spatial_size) / 6) * TUMOUR_LABEL
    ids = [f"B{i:03d}" for i in range(n_crops)]
    crops = crops_from_arrays(
        ids,
        images,
        spatial_size=config.spatial_size,
        masks=[ball.astype(np.uint8)] * n_crops,
        spacing_zyx=[CROP_SPACING_MM] * n_crops,
    )
    return crops, np.arange(n_crops) % 2


def training_rate(
    architecture: str, config: DeepConfig, crops: CropSet, labels: np.ndarray
) -> float:
    """Training volumes/second over one epoch, after one warm-up epoch."""
    device = resolve_device(config.device)
    network_config = config.network(architecture, 3)
    with reproducible(SEED, device):
        network = build_network(network_config).to(device)
        if device.type == "cuda":
            network.to(memory_format=torch.channels_last_3d)
        loader = training_loader(crop_input(crops, network_config), labels, config, SEED, device)
        augment = BatchAugmentation(config, SEED, with_mask=network_config.takes_mask)
        optimiser = torch.optim.AdamW(network.parameters(), lr=config.learning_rate)
        loss_fn = torch.nn.BCEWithLogitsLoss()
        seconds = 0.0
        for epoch in range(2):
            if device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            train_epoch(network, loader, augment, optimiser, loss_fn, device)
            if device.type == "cuda":
                torch.cuda.synchronize()
            seconds = time.perf_counter() - start if epoch == 1 else seconds
    return len(crops) / seconds


def inference_rate(architecture: str, config: DeepConfig, crops: CropSet) -> float:
    """predict_scores volumes/second, after one warm-up pass."""
    network_config = config.network(architecture, 3)
    model = DeepModel(build_network(network_config), network_config)
    predict_scores(model, crops, device=config.device)
    start = time.perf_counter()
    predict_scores(model, crops, device=config.device)
    return len(crops) / (time.perf_counter() - start)


def augmentation_rate(config: DeepConfig, crops: CropSet, labels: np.ndarray) -> float:
    """Volumes/second through the DataLoader and the batched augmentation alone (no network)."""
    loader = training_loader(crops.images, labels, config, SEED, torch.device("cpu"))
    augment = BatchAugmentation(config, SEED)
    start = time.perf_counter()
    n = sum(len(augment(images)) for images, _ in loader)
    return n / (time.perf_counter() - start)


def input_rate(config: DeepConfig, crops: CropSet) -> float:
    """Volumes/second of preparing the network input alone (clip, margin blanking)."""
    network_config = config.network(config.architectures[0], crops.images.shape[1])
    start = time.perf_counter()
    crop_input(crops, network_config)
    return len(crops) / (time.perf_counter() - start)


def projected_minutes(config: DeepConfig, train_rate: float, infer_rate: float) -> float:
    """Worst-case minutes of one architecture's CV plus a refit (every fit runs max_epochs)."""
    fit_patients = N_TRAINING_PATIENTS * (config.folds - 1) / config.folds
    per_fold = (
        config.max_epochs
        * (
            fit_patients * (1 - config.validation_fraction) / train_rate
            + fit_patients * config.validation_fraction / infer_rate
        )
        + (N_TRAINING_PATIENTS - fit_patients) / infer_rate
    )
    refit = config.max_epochs * (
        N_TRAINING_PATIENTS * (1 - config.validation_fraction) / train_rate
        + N_TRAINING_PATIENTS * config.validation_fraction / infer_rate
    )
    return (config.folds * per_fold + refit) / 60


Row = tuple[str, int, str, str, int, float, float]


def measure(
    settings: list[tuple[str, int]], config: DeepConfig, architectures: list[str]
) -> list[Row]:
    """Training and inference rates of every architecture for each (device, threads)."""
    crops, labels = random_crops(config)
    policy = os.environ.get("OMP_WAIT_POLICY", "(unset)")
    rows = []
    for device, threads in settings:
        torch.set_num_threads(threads)
        run_config = dataclasses.replace(config, device=device)
        for architecture in architectures:
            train = training_rate(architecture, run_config, crops, labels)
            infer = inference_rate(architecture, run_config, crops)
            n_parameters = count_parameters(build_network(run_config.network(architecture, 3)))
            rows.append((device, threads, policy, architecture, n_parameters, train, infer))
            print(
                f"{device}, {threads} thread(s), OMP_WAIT_POLICY {policy}, {architecture}: "
                f"train {train:.1f}, inference {infer:.1f} vol/s",
                file=sys.stderr,
            )
    return rows


def passive_rows(threads: int, args: argparse.Namespace) -> list[Row]:
    """The CPU rows again in a child process with OMP_WAIT_POLICY=PASSIVE (read at start-up)."""
    # OpenMP's default spin-waiting threads collapse throughput when other jobs share the cores;
    # the policy is read when the OpenMP runtime starts, hence a fresh process.
    child = subprocess.run(
        [
            sys.executable,
            __file__,
            "--cpu-rows",
            str(threads),
            "--config",
            *map(str, args.config),
            "--architectures",
            *args.architectures,
            "--spatial-size",
            str(args.spatial_size),
            "--batch-size",
            str(args.batch_size),
        ],
        env={**os.environ, "OMP_WAIT_POLICY": "PASSIVE"},
        check=True,
        stdout=subprocess.PIPE,
        text=True,
    )
    return [tuple(row) for row in json.loads(child.stdout)]  # type: ignore[misc]


def arguments() -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cpu-rows", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--cuda-only", action="store_true", help="measure the CUDA path alone")
    parser.add_argument("--output", type=Path, default=REPORT, help="the report to write")
    parser.add_argument(
        "--config",
        type=Path,
        nargs="+",
        default=[Path("config/config.yaml")],
        help="its deep: block is timed; later files override earlier ones as --configfile does "
        "(e.g. config/config.yaml config/hcc_tace_seg.yaml for the real-data sizes)",
    )
    parser.add_argument(
        "--architectures", nargs="+", default=list(ARCHITECTURES), choices=ARCHITECTURES
    )
    parser.add_argument("--spatial-size", type=int, default=0, help="crop edge (0: the config's)")
    parser.add_argument("--batch-size", type=int, default=0, help="0: the config's")
    return parser.parse_args()


def benchmark_config(args: argparse.Namespace) -> DeepConfig:
    """The workflow config's deep: block, with the crop edge and batch size of the arguments."""
    settings = yaml.safe_load(args.config[0].read_text())
    if len(args.config) > 1:
        # Snakemake's own merge, so that the sizes are those a --configfile run would train
        # (imported here: a GPU machine timing the default config needs no Snakemake).
        from snakemake.utils import update_config

        for overlay in args.config[1:]:
            update_config(settings, yaml.safe_load(overlay.read_text()))
    deep_settings = dict(settings["deep"])
    if args.spatial_size:
        deep_settings["spatial_size"] = [args.spatial_size] * 3
    if args.batch_size:
        deep_settings["batch_size"] = args.batch_size
    return dltr.deep_config(deep_settings, settings["seed"])


def main() -> None:
    """Measure every architecture on every thread count (and CUDA if present); write the report."""
    args = arguments()
    config = benchmark_config(args)
    if args.cpu_rows:
        print(json.dumps(measure([("cpu", args.cpu_rows)], config, args.architectures)))
        return
    started = time.perf_counter()
    load_start = os.getloadavg()[0]
    crops, labels = random_crops(config)
    cores = os.cpu_count() or 1
    settings: list[tuple[str, int]] = []
    if not args.cuda_only:
        settings += [("cpu", n) for n in sorted({1, cores})]
    if torch.cuda.is_available():
        settings.append(("cuda", cores))
    elif args.cuda_only:
        sys.exit("--cuda-only: no CUDA device")
    rows = measure(settings, config, args.architectures)
    if cores > 1 and "OMP_WAIT_POLICY" not in os.environ and not args.cuda_only:
        rows += passive_rows(cores, args)
    torch.set_num_threads(1)
    augment = augmentation_rate(config, crops, labels)
    elastic = augmentation_rate(
        dataclasses.replace(config, elastic=True, elastic_prob=1.0), crops, labels
    )
    prepare = input_rate(config, crops)
    seconds = time.perf_counter() - started
    # The separate end-to-end measurement was of the laptop default: note it only with that.
    default_sizes = len(args.config) == 1 and not args.spatial_size and not args.batch_size
    write_report(
        config,
        args.config,
        rows,
        (augment, elastic, prepare),
        load_start,
        seconds,
        args.output,
        end_to_end_note=default_sizes,
    )


def write_report(
    config: DeepConfig,
    config_paths: list[Path],
    rows: list[Row],
    cpu_rates: tuple[float, float, float],
    load_start: float,
    seconds: float,
    output: Path = REPORT,
    *,
    end_to_end_note: bool = True,
) -> None:
    """Write the report (benchmarks/deep_benchmark.md unless told otherwise)."""
    device_name = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    lines = [
        "# Deep-learning benchmark (hccrad.deep)",
        "",
        f"- Date: {datetime.datetime.now(datetime.UTC).isoformat(timespec='seconds')}",
        f"- Machine: {machine_description()}; load average "
        f"{load_start:.1f} at start, {os.getloadavg()[0]:.1f} at end (shared machine: times "
        "vary by 2-3x with other jobs)",
        f"- CUDA device: {device_name}",
        f"- Python {platform.python_version()}; torch {torch.__version__}, monai "
        f"{version('monai')}, numpy {np.__version__}",
        f"- Settings: the deep: block of {' over '.join(map(str, reversed(config_paths)))}, "
        f"crops {config.spatial_size} x 3 phases, "
        f"width {config.width}, ResNet stem stride {config.stem_stride}, "
        f"batch {config.batch_size}, {config.folds} folds, max {config.max_epochs} epochs; "
        f"benchmark ran {seconds:.0f} s",
        "",
        "Training: one epoch of the library's `train_epoch` (DataLoader, batched augmentation, "
        "forward, BCE, backward and AdamW step), after a warm-up epoch (deterministic "
        "algorithms on the CPU). "
        "Inference: `predict_scores`. Worst case: every fit of the selection runs "
        f"max_epochs, on the default cohort ({N_TRAINING_PATIENTS} training patients).",
        "",
        "| device | threads | OMP_WAIT_POLICY | architecture | parameters | train vol/s "
        "| inference vol/s | worst-case CV + refit, min |",
        "| --- | ---: | --- | --- | ---: | ---: | ---: | ---: |",
    ]
    for device, threads, policy, architecture, n_parameters, train, infer in rows:
        minutes = projected_minutes(config, train, infer)
        lines.append(
            f"| {device} | {threads} | {policy} | {architecture} | {n_parameters / 1e6:.2f} M "
            f"| {train:.1f} | {infer:.1f} | {minutes:.1f} |"
        )
    augment, elastic, prepare = cpu_rates
    lines += [
        "",
        f"Augmentation alone (1 thread, no network; batched, `deep.augment`): {augment:.0f} "
        "vol/s with flips, rotations and intensity changes; "
        f"{elastic:.0f} vol/s with Rand3DElastic on every crop. "
        f"Network input alone (`deep.crop_input`: clip and blanking beyond the tumour margin, "
        f"a distance transform per crop; on the CPU before any device): {prepare:.0f} vol/s.",
        "",
        "Without OMP_WAIT_POLICY=PASSIVE, 2 threads on a shared 2-core machine are up to 10x "
        "slower than 1 thread: OpenMP threads spin while waiting for a core that another job "
        "holds. Run the deep-learning jobs with the passive policy or with one thread.",
        "",
    ]
    if end_to_end_note:
        lines += [END_TO_END_NOTE, ""]
    output.write_text("\n".join(lines))
    print(f"wrote {output}")


if __name__ == "__main__":
    main()
