"""Training throughput of hccrad's loop against a plain MONAI loop, with and without augmentation.

Run from the repository root: ``.venv/bin/python benchmarks/deep_training_benchmark.py`` (2-4
minutes on 2 cores). Four loops train the same network on the same crops with the same batch
size, optimiser (AdamW), loss (BCE with the positive-class weight) and deterministic algorithms:

- a plain MONAI loop: `monai.data.Dataset` + `DataLoader` and forward/backward/step, without
  augmentation and with the per-sample MONAI Compose of the training transforms
  (`hccrad.deep.augment.monai_augmentation`) run in the Dataset;
- hccrad's own `hccrad.deep.train.train_epoch` over `training_loader`, without augmentation and
  with the batched transforms (`BatchAugmentation`, on the CPU one batch ahead on a background
  thread: `augmented_batches`), as `fit` trains.

All in one process, with 1 and 2 torch threads and OMP_WAIT_POLICY=PASSIVE as the workflow's
deep jobs run (the script restarts itself with it when unset). After a warm-up epoch per loop,
the loops take turns, one epoch each, for `--rounds` rounds, so that load from other jobs falls
on all of them alike; the table gives the median volumes/second.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path

import numpy as np
import torch
import yaml
from deep_benchmark import random_crops
from monai.data import DataLoader, Dataset

from hccrad.core.torch_runtime import reproducible
from hccrad.core.versions import machine_description
from hccrad.deep import dltr
from hccrad.deep.augment import BatchAugmentation, monai_augmentation
from hccrad.deep.config import DeepConfig
from hccrad.deep.networks import build_network
from hccrad.deep.predict import crop_input
from hccrad.deep.train import train_epoch, training_loader

REPORT = Path(__file__).with_suffix(".md")
SEED = 0
DEVICE = torch.device("cpu")
LOOPS = ("monai_plain", "monai_augmented", "hccrad_plain", "hccrad_augmented")


def monai_loader(
    config: DeepConfig, inputs: np.ndarray, labels: np.ndarray, augmented: bool, with_mask: bool
) -> DataLoader:
    """A plain MONAI Dataset + DataLoader, with or without the per-sample MONAI transforms."""
    if augmented:
        records = [
            {"image": x[:-1], "mask": x[-1:], "label": np.float32(y)}
            if with_mask
            else {"image": x, "label": np.float32(y)}
            for x, y in zip(inputs, labels, strict=True)
        ]
        transform = monai_augmentation(config, with_mask=with_mask)
    else:
        records = [
            {"image": x, "label": np.float32(y)} for x, y in zip(inputs, labels, strict=True)
        ]
        transform = None
    batch_size = min(config.batch_size, len(records))
    return DataLoader(
        Dataset(records, transform=transform),
        batch_size=batch_size,
        shuffle=True,
        drop_last=len(records) % batch_size == 1,
        generator=torch.Generator().manual_seed(SEED),
        num_workers=0,
    )


def monai_epoch(
    network: torch.nn.Module,
    loader: DataLoader,
    optimiser: torch.optim.Optimizer,
    loss_fn: torch.nn.Module,
) -> None:
    """One epoch of the plain MONAI loop: forward, loss, backward, step."""
    network.train()
    for batch in loader:
        loss = loss_fn(network(batch["image"]).squeeze(1), batch["label"].float())
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()


def epoch_runners(
    config: DeepConfig, architecture: str, n_crops: int
) -> dict[str, Callable[[], object]]:
    """One epoch of each loop as a callable; each loop trains its own network."""
    crops, labels = random_crops(config, n_crops)
    network_config = config.network(architecture, crops.images.shape[1])
    inputs = crop_input(crops, network_config)
    positive = float(labels.sum())
    pos_weight = torch.tensor([(len(labels) - positive) / positive])
    runners = {}
    for loop in LOOPS:
        network = build_network(network_config)
        optimiser = torch.optim.AdamW(
            network.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay
        )
        loss_fn = torch.nn.BCEWithLogitsLoss(pos_weight=pos_weight)
        augmented = loop.endswith("augmented")
        if loop.startswith("monai"):
            loader = monai_loader(config, inputs, labels, augmented, network_config.takes_mask)
            runners[loop] = lambda n=network, ld=loader, o=optimiser, f=loss_fn: monai_epoch(
                n, ld, o, f
            )
        else:
            loader = training_loader(inputs, labels, config, SEED, DEVICE)
            augment = (
                BatchAugmentation(config, SEED, with_mask=network_config.takes_mask)
                if augmented
                else None
            )
            runners[loop] = lambda n=network, ld=loader, a=augment, o=optimiser, f=loss_fn: (
                train_epoch(n, ld, a, o, f, DEVICE)
            )
    return runners


def measure(
    config: DeepConfig, architecture: str, threads: int, n_crops: int, rounds: int
) -> dict[str, list[float]]:
    """Volumes/second of each loop's epochs (after a warm-up epoch each), interleaved."""
    torch.set_num_threads(threads)
    rates: dict[str, list[float]] = {loop: [] for loop in LOOPS}
    with reproducible(SEED, DEVICE):
        runners = epoch_runners(config, architecture, n_crops)
        for run in runners.values():
            run()
        for _ in range(rounds):
            for loop, run in runners.items():
                start = time.perf_counter()
                run()
                rates[loop].append(n_crops / (time.perf_counter() - start))
    return rates


def augmentation_rates(config: DeepConfig, n_crops: int, rounds: int) -> dict[str, float]:
    """Median volumes/second of the augmentation alone (1 thread): MONAI's Compose, batched."""
    torch.set_num_threads(1)
    crops, labels = random_crops(config, n_crops)
    monai = monai_loader(config, crops.images, labels, augmented=True, with_mask=False)
    loader = training_loader(crops.images, labels, config, SEED, DEVICE)
    augment = BatchAugmentation(config, SEED)
    passes = {
        "monai": lambda: sum(len(batch["label"]) for batch in monai),
        "batched": lambda: sum(len(augment(images)) for images, _ in loader),
    }
    rates: dict[str, list[float]] = {name: [] for name in passes}
    for _ in range(rounds + 1):
        for name, run in passes.items():
            start = time.perf_counter()
            run()
            rates[name].append(n_crops / (time.perf_counter() - start))
    return {name: statistics.median(values[1:]) for name, values in rates.items()}


def paired_ratio(rates: dict[str, list[float]], loop: str, reference: str) -> float:
    """Median over rounds of loop's rate over the reference's in the same round."""
    return statistics.median(a / b for a, b in zip(rates[loop], rates[reference], strict=True))


def arguments() -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=REPORT, help="the report to write")
    parser.add_argument(
        "--config", type=Path, default=Path("config/config.yaml"), help="its deep: block is timed"
    )
    parser.add_argument("--architectures", nargs="+", default=["resnet18", "tumour_pooled"])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--crops", type=int, default=48, help="crops per epoch (batches of 8)")
    parser.add_argument("--rounds", type=int, default=5, help="timed epochs per loop")
    return parser.parse_args()


def main() -> None:
    """Time every loop per architecture and thread count; write the report."""
    if "OMP_WAIT_POLICY" not in os.environ:
        # Read when OpenMP starts: restart with the workflow's policy (workflow/rules/common.smk).
        os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
        os.execv(sys.executable, [sys.executable, *sys.argv])
    args = arguments()
    settings = yaml.safe_load(args.config.read_text())
    config = dltr.deep_config(settings["deep"], settings["seed"])
    started = time.perf_counter()
    loads = [os.getloadavg()[0]]
    rows = []
    for threads in args.threads:
        for architecture in args.architectures:
            rates = measure(config, architecture, threads, args.crops, args.rounds)
            loads.append(os.getloadavg()[0])
            rows.append((threads, architecture, rates))
            medians = {loop: statistics.median(values) for loop, values in rates.items()}
            print(f"{threads} thread(s), {architecture}: {medians}", file=sys.stderr)
    augment = augmentation_rates(config, args.crops, args.rounds)
    loads.append(os.getloadavg()[0])
    write_report(config, args, rows, augment, loads, time.perf_counter() - started)


def write_report(
    config: DeepConfig,
    args: argparse.Namespace,
    rows: list[tuple[int, str, dict[str, list[float]]]],
    augment: dict[str, float],
    loads: list[float],
    seconds: float,
) -> None:
    """The Markdown report: vol/s of each loop and the ratios side by side."""
    lines = [
        "# Training throughput: hccrad's loop against a plain MONAI loop",
        "",
        f"- Date: {datetime.datetime.now(datetime.UTC).isoformat(timespec='seconds')}",
        f"- Machine: {machine_description()}; load average (1 min) {min(loads):.1f}-"
        f"{max(loads):.1f} during the run (shared machine: other jobs slow every loop alike, "
        "as the loops take turns epoch by epoch)",
        f"- Python {platform.python_version()}; torch {torch.__version__}, monai "
        f"{version('monai')}, numpy {np.__version__}; OMP_WAIT_POLICY "
        f"{os.environ.get('OMP_WAIT_POLICY')}",
        f"- Settings: the deep: block of {args.config} (crops {config.spatial_size} x 3 "
        f"phases, width {config.width}, batch {config.batch_size}, "
        f"AdamW, weighted BCE, deterministic algorithms), CPU; {args.crops} crops per epoch, "
        f"median of {args.rounds} epochs per loop after a warm-up epoch; ran {seconds:.0f} s",
        f"- Augmentation (the config's): flips per axis (p {config.flip_prob}), rotations up to "
        f"{config.rotate_degrees:g} degrees per axis (p {config.rotate_prob}), intensity scale "
        f"and shift (p {config.intensity_prob}), elastic {config.elastic}; MONAI: per sample "
        "in the Dataset (`monai_augmentation`); hccrad: on the whole batch (`BatchAugmentation`), "
        "one batch ahead on a background thread (`augmented_batches`)",
        "",
        "Volumes/second (median over epochs); ratios: the median over rounds of the two loops' "
        "rates in the same round (paired, as load drifts between rounds):",
        "",
        "| threads | architecture | MONAI loop | MONAI loop + MONAI aug | hccrad loop "
        "| hccrad loop + batched aug | hccrad / MONAI, both augmented | hccrad / MONAI, "
        "neither | hccrad augmented / MONAI plain |",
        "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for threads, architecture, rates in rows:
        m = {loop: statistics.median(values) for loop, values in rates.items()}
        ratios = [
            paired_ratio(rates, "hccrad_augmented", "monai_augmented"),
            paired_ratio(rates, "hccrad_plain", "monai_plain"),
            paired_ratio(rates, "hccrad_augmented", "monai_plain"),
        ]
        lines.append(
            f"| {threads} | {architecture} | {m['monai_plain']:.1f} | "
            f"{m['monai_augmented']:.1f} | {m['hccrad_plain']:.1f} | "
            f"{m['hccrad_augmented']:.1f} | " + " | ".join(f"{r:.2f}" for r in ratios) + " |"
        )
    lines += [
        "",
        f"Augmentation alone (1 thread, no network, {args.crops} crops of the default size): "
        f"MONAI's per-sample Compose through its DataLoader {augment['monai']:.0f} vol/s, "
        f"hccrad's batched transforms through `training_loader` {augment['batched']:.0f} vol/s.",
        "",
        "What remains between an augmented loop and the plain one is mostly the rotations' "
        "resampling (trilinear `grid_sample` of half the crops), which both loops pay; the "
        "background thread can hide it only where a core is idle.",
        "",
    ]
    args.output.write_text("\n".join(lines))
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
