"""Training step breakdown at the default patch: generation, forward, backward, optimiser; the
generator's share of a step; fp32 vs bf16 autocast on this device (amp=auto picks bf16 only where the
CPU computes it natively); and bf16 again with freed memory retained (as `synthseg train` runs); with
``--compile``, that last setting again with the network under ``torch.compile``.

    python benchmarks/training_step.py [--steps 6] [--config configs/shipped-2mm.yaml] [--compile]
"""

from __future__ import annotations

import argparse
import contextlib
import resource
import time

import torch

from _common import Timer, header, peak_rss_gb


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--config", default=None)
    parser.add_argument("--templates", default="phantom")
    parser.add_argument("--compile", action="store_true", help="add a row with the network compiled")
    args = parser.parse_args()
    header("training step breakdown")
    from monai.losses import DiceCELoss

    from synthseg.device import autocast_dtype, retain_freed_memory
    from synthseg.networks import build_network, count_parameters
    from synthseg.synthesis.generator import Generator
    from synthseg.training.config import load_config
    from synthseg.training.trainer import load_template_split

    config = load_config(args.config, [] if args.config else [f"data.templates={args.templates}"])
    train, _, recipe = load_template_split(config)
    generator = Generator(train, recipe, config.generator, seed=0)
    model = build_network(config.model)
    loss_fn = DiceCELoss(to_onehot_y=True, softmax=True)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    print(f"patch {config.generator.patch_size} at {config.generator.spacing} mm, model {config.model.channels} "
          f"({count_parameters(model):,} parameters)")
    generator(1)
    bf16 = autocast_dtype("auto", torch.device("cpu"))

    def measure(label: str, dtype, network: torch.nn.Module = model) -> float:
        totals = {"generate": 0.0, "forward": 0.0, "backward": 0.0, "optimiser": 0.0}
        system_s = 0.0
        for step in range(args.steps):
            usage = resource.getrusage(resource.RUSAGE_SELF)
            t0 = time.perf_counter()
            images, targets = generator(1)
            t1 = time.perf_counter()
            with torch.autocast("cpu", dtype=dtype) if dtype else contextlib.nullcontext():
                logits = network(images)
            loss = loss_fn(logits.float(), targets[:, None])
            t2 = time.perf_counter()
            optimizer.zero_grad()
            loss.backward()
            t3 = time.perf_counter()
            optimizer.step()
            t4 = time.perf_counter()
            if step:  # the first step warms up allocators
                for key, value in zip(totals, (t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
                    totals[key] += value
                system_s += resource.getrusage(resource.RUSAGE_SELF).ru_stime - usage.ru_stime
        n = args.steps - 1
        step_s = sum(totals.values()) / n
        print(f"{label}: step {step_s:.2f} s = {1 / step_s:.2f} steps/s; generator share "
              f"{100 * totals['generate'] / n / step_s:.0f} % (goal <= 15 %); system time {system_s / n:.2f} s")
        for key, value in totals.items():
            print(f"  {key:<10} {value / n:.3f} s ({100 * value / n / step_s:.0f} %)")
        return step_s

    measure("fp32", None)
    reference = measure(f"autocast {bf16}", bf16)
    # last, because it cannot be undone in this process: what the CLI's heavy commands run with
    if retain_freed_memory():
        retained = measure(f"autocast {bf16}, freed memory retained", bf16)
        print(f"retaining freed memory: step time ratio {retained / reference:.2f}")
        reference = retained
    else:
        print("retaining freed memory: not available (C library is not glibc)")
    if args.compile:  # the first (untimed) step compiles
        compiled = measure(f"autocast {bf16}, torch.compile", bf16, torch.compile(model))
        print(f"torch.compile: step time ratio {compiled / reference:.2f}")
    print(f"peak RSS {peak_rss_gb():.2f} GB")
    x = torch.rand(1, 1, *config.generator.patch_size)
    with torch.no_grad():
        model(x)
        with Timer() as fp32:
            model(x)
        with Timer() as bf16, torch.autocast("cpu", dtype=torch.bfloat16):
            model(x)
    print(f"forward fp32 {fp32.seconds:.2f} s vs bf16 autocast {bf16.seconds:.2f} s "
          f"(ratio {bf16.seconds / fp32.seconds:.1f}x)")


if __name__ == "__main__":
    main()
