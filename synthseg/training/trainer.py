"""The training loop: synthetic batches generated on the training device, a U-Net, soft Dice +
cross-entropy, AdamW with warm-up and cosine decay, validation, checkpoints, logs, DDP.

``Trainer(config, run_dir).run()`` is what ``synthseg train`` calls.
"""

from __future__ import annotations

import contextlib
import csv
import json
import math
import os
import random
import signal
import sys
import time
from pathlib import Path

import numpy as np
import torch

from synthseg.device import autocast_dtype, resolve_device
from synthseg.errors import SynthSegError
from synthseg.evaluation.metrics import dice_per_label
from synthseg.labels.protocol import BRAIN_STRUCTURE_IDS, NUM_CLASSES
from synthseg.networks import adapt_kernels, build_network, count_parameters
from synthseg.synthesis.generator import Generator
from synthseg.templates.library import load_templates, phantom_templates
from synthseg.training.checkpoint import load_latest, mark_best, read_checkpoint, save_checkpoint
from synthseg.training.config import TrainConfig
from synthseg.training.export import CARD, WEIGHTS

PHANTOM = "phantom"
PHANTOM_SEEDS = (0, 1, 2)


def load_template_split(config: TrainConfig):
    """Training and validation templates with their recipe (``phantom`` = the built-in phantom). Validation
    uses the held-out templates (``data.holdout``) or, when none are held out, the last training template."""
    data = config.data
    if data.templates == PHANTOM:
        spacing = min(2.0, max(1.0, config.generator.spacing / 2))  # half the working voxel, 1-2 mm
        templates, recipe = phantom_templates(spacing, PHANTOM_SEEDS)
    else:
        if not data.templates:
            raise SynthSegError("config field data.templates is empty; give a template folder or 'phantom'")
        templates, recipe = load_templates(Path(data.templates), exclude=data.exclude)
    names = {t.name for t in templates}
    unknown = [h for h in data.holdout if h not in names]
    if unknown:
        raise SynthSegError(f"config field data.holdout names unknown templates: {', '.join(unknown)}")
    train = [t for t in templates if t.name not in data.holdout]
    if not train:
        raise SynthSegError("config field data.holdout leaves no template for training")
    validation = [t for t in templates if t.name in data.holdout] or train[-1:]
    return train, validation, recipe


def lr_factor(step: int, warmup: int, total: int, min_ratio: float) -> float:
    """Linear warm-up, then cosine decay to ``min_ratio`` at ``total`` steps."""
    if step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def soft_cross_entropy(logits: torch.Tensor, probabilities: torch.Tensor) -> torch.Tensor:
    """Mean over voxels of ``-sum_c p_c log softmax(logits)_c`` (class axis 1): the pull towards a
    teacher's probabilities (its KL divergence plus the teacher's entropy, a constant)."""
    return -(probabilities * torch.log_softmax(logits, 1)).sum(1).mean()


class Trainer:
    def __init__(self, config: TrainConfig, run_dir: str | Path, resume: str | bool | None = None,
                 progress: bool = True) -> None:
        self.config = config
        self.run_dir = Path(run_dir)
        self.progress = progress
        loop = config.loop
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.device = resolve_device(loop.device)
        if self.world > 1:
            import torch.distributed as dist

            if self.device.type == "cuda":
                self.device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
            dist.init_process_group("nccl" if self.device.type == "cuda" else "gloo")
        if loop.threads > 0:
            torch.set_num_threads(loop.threads)
        self._seed_everything(loop.seed + 1000 * self.rank)
        # before the templates and the generator: a teacher that cannot serve is refused in a second
        self.teacher = self._load_teacher() if config.distill.weight > 0 else None
        train, validation, recipe = load_template_split(config)
        self.template_names = [t.name for t in train]
        self.holdout_names = list(config.data.holdout)  # truly unseen: only what the config holds out
        self.validation_names = [t.name for t in validation]
        self.generator = Generator(train, recipe, config.generator, self.device, seed=loop.seed + 1000 * self.rank)
        self.model = build_network(config.model).to(self.device)
        self.net = self.model
        if self.world > 1:
            from torch.nn.parallel import DistributedDataParallel

            self.net = DistributedDataParallel(self.model, device_ids=[self.device.index]
                                               if self.device.type == "cuda" else None)
        from monai.losses import DiceCELoss

        self.loss_fn = DiceCELoss(to_onehot_y=True, softmax=True, lambda_dice=config.optim.dice_weight,
                                  lambda_ce=config.optim.ce_weight)
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=config.optim.lr,
                                           weight_decay=config.optim.weight_decay)
        o = config.optim
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda s: lr_factor(s, o.warmup_steps, o.total_steps, o.min_lr_ratio))
        self.amp_dtype = autocast_dtype(loop.amp, self.device)
        self.step = 0
        self.steps_before = 0  # steps the initial weights had seen (their card's total), so exports count all
        self.best = -1.0
        self.history: list[dict] = []
        self.stop_signal: int | None = None
        self.checkpoints = self.run_dir / "checkpoints"
        if resume:
            self._resume(resume)
        elif config.model.init_weights:
            self._load_initial_weights(Path(config.model.init_weights))
        self.val_set = self._make_validation_set(validation, recipe)

    # ------------------------------------------------------------------ setup helpers
    @staticmethod
    def _seed_everything(seed: int) -> None:
        random.seed(seed)
        np.random.seed(seed % 2 ** 32)
        torch.manual_seed(seed)

    def _make_validation_set(self, templates, recipe) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """A fixed, seeded set of synthetic samples from the validation templates (made once per run)."""
        generator = Generator(templates, recipe, self.config.generator, self.device, seed=12345)
        samples = []
        for i in range(self.config.loop.val_samples):
            image, target = generator.render(generator.sample_params(10_000 + i))
            samples.append((image[None, None].cpu(), target.cpu()))
        return samples

    def _state(self) -> dict:
        return {
            "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(), "step": self.step, "steps_before": self.steps_before,
            "best": self.best, "generator_rng": self.generator.rng.get_state(), "torch_rng": torch.get_rng_state(),
            "numpy_rng": np.random.get_state(), "python_rng": random.getstate(),
            "config": self.config.to_dict(), "templates": self.template_names, "holdout": self.holdout_names,
            "history": self.history[-200:],
        }

    def _load_initial_weights(self, path: Path) -> None:
        """Warm start from exported weights (e.g. the shipped model when a run folder was lost).

        The weights may come from a network whose strides differ: a level's residual projection is a
        1×1×1 convolution at stride 1 and a 3×3×3 one otherwise, and is carried over as the kernel's sum
        (the same response to a constant input)."""
        weights = path / WEIGHTS if path.is_dir() else path
        try:
            state = torch.load(weights, map_location="cpu", weights_only=True)
            state = adapt_kernels({k: v.float() for k, v in state.items()}, self.model.state_dict())
            self.model.load_state_dict(state)
        except (OSError, RuntimeError, KeyError) as error:
            raise SynthSegError(f"cannot use as initial weights ({error})", weights) from None
        self.log(f"initialised from {weights}")
        card_path = weights.parent / CARD
        try:
            training = json.loads(card_path.read_text(encoding="utf-8"))["training"]
            seed, steps = training["config"]["loop"]["seed"], training["steps"]
        except (OSError, ValueError, KeyError, TypeError):
            return  # bare weights: nothing known about how they were trained
        self.steps_before = int(training.get("total_steps", steps))
        self._warn_if_same_draws(card_path, seed, steps)

    def _warn_if_same_draws(self, card_path: Path, seed: int, steps: int) -> None:
        """Fine-tuning with the seed the weights were trained with replays their training draws.

        The generator's stream depends only on ``loop.seed``, so such a run sees the same samples again
        instead of new ones."""
        if seed == self.config.loop.seed:
            self.log(f"warning: {card_path.parent} was trained with loop.seed {seed}: this run replays its "
                     f"first {min(steps, self.config.loop.steps)} training draws; set loop.seed to another "
                     "value for new ones")

    def _load_teacher(self) -> torch.nn.Module:
        """The frozen network of ``distill.teacher``, on the training device, at the working voxel size."""
        from synthseg.inference.model import load_model

        loaded = load_model(self.config.distill.teacher, self.device, experts=False)
        if loaded.card.get("spacing_mm") != self.config.generator.spacing:
            raise SynthSegError(f"teacher works at {loaded.card.get('spacing_mm')} mm, training at "
                                f"{self.config.generator.spacing} mm", loaded.path)
        self.log(f"distilling from {loaded.path} ({self.config.distill.contrast} renders, weight "
                 f"{self.config.distill.weight})")
        return loaded.network.requires_grad_(False)

    def _resume(self, resume: str | bool) -> None:
        if resume is True or resume == "latest":
            found = load_latest(self.checkpoints)
            if found is None:
                raise SynthSegError("no intact checkpoint to resume from", self.checkpoints)
            state, path = found
        else:
            path = Path(resume)
            state = read_checkpoint(path)
            if "averaged_from" in state:
                raise SynthSegError("an average of checkpoints, not a training state to resume: export it "
                                    "(synthseg export) and start a run from the export with model.init_weights", path)
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.step, self.best = int(state["step"]), float(state["best"])
        self.steps_before = int(state.get("steps_before", 0))
        self.generator.rng.set_state(state["generator_rng"])
        torch.set_rng_state(state["torch_rng"])
        np.random.set_state(state["numpy_rng"])
        random.setstate(state["python_rng"])
        self.history = list(state.get("history", []))
        self.log(f"resumed from {path} at step {self.step}")

    # ------------------------------------------------------------------ loop
    def log(self, message: str) -> None:
        if self.rank == 0:
            print(message, file=sys.stderr, flush=True)

    def train_step(self) -> dict:
        t0 = time.perf_counter()
        images, targets, params = self.generator.batch(self.generator.next_seeds(self.config.loop.batch_size))
        t1 = time.perf_counter()
        self.net.train()
        autocast = (torch.autocast(self.device.type, dtype=self.amp_dtype) if self.amp_dtype
                    else contextlib.nullcontext())
        with autocast:
            logits = self.net(images)
        loss = self.loss_fn(logits.float(), targets[:, None])
        extra = {}
        if self.teacher is not None:
            with torch.no_grad(), autocast:
                teacher_logits = self.teacher(self._teacher_images(params))
            distill = soft_cross_entropy(logits.float(), torch.softmax(teacher_logits.float(), 1))
            loss = loss + self.config.distill.weight * distill
            extra["distill"] = float(distill.detach())
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.config.optim.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.optim.grad_clip)
        self.optimizer.step()
        self.scheduler.step()
        self.step += 1
        t2 = time.perf_counter()
        return {"step": self.step, "loss": float(loss.detach()), "lr": self.scheduler.get_last_lr()[0],
                "generate_s": t1 - t0, "step_s": t2 - t0, **extra}

    def _teacher_images(self, params) -> torch.Tensor:
        """The batch's draws re-rendered in the teacher's contrast: the same anatomy, voxel for voxel."""
        contrast = self.config.distill.contrast
        return torch.stack([self.generator.render(self.generator.restyle(p, contrast))[0] for p in params])[:, None]

    @torch.no_grad()
    def validate(self) -> dict:
        """Per-class Dice over the fixed synthetic validation set (rank 0)."""
        self.model.eval()
        preds, refs = [], []
        for image, target in self.val_set:
            logits = self.model(image.to(self.device))
            preds.append(logits.argmax(1)[0].cpu().numpy())
            refs.append(target.numpy())
        pred, ref = np.stack(preds), np.stack(refs)
        scores = dice_per_label(pred, ref, range(1, NUM_CLASSES))
        valid = [v for v in scores.values() if not math.isnan(v)]
        brain = [scores[k] for k in BRAIN_STRUCTURE_IDS if not math.isnan(scores[k])]
        return {"val_dice_mean": float(np.mean(valid)) if valid else 0.0,
                "val_dice_brain": float(np.mean(brain)) if brain else 0.0,
                "val_dice": {str(k): round(v, 4) for k, v in scores.items()}}

    def validate_real(self) -> dict:
        """Mean Dice per structure on real images with reference labels (``validation.real_*``)."""
        from synthseg.evaluation.evaluate import evaluate_files, summary
        from synthseg.inference.result import output_stem
        from synthseg.inference.segmenter import Segmenter
        from synthseg.io.image import IMAGE_SUFFIXES

        v = self.config.validation
        images = sorted(p for p in Path(v.real_images).iterdir() if p.name.endswith(IMAGE_SUFFIXES))
        labels = sorted(p for p in Path(v.real_labels).iterdir() if p.name.endswith(IMAGE_SUFFIXES))
        images, labels = images[: v.real_max_cases], labels[: v.real_max_cases]
        card = {"spacing_mm": self.config.generator.spacing, "patch_size": list(self.config.generator.patch_size)}
        segmenter = Segmenter.from_network(self.model, card, device=str(self.device))
        folder = self.run_dir / "real_validation"
        predictions = []
        for image in images:
            result = segmenter.segment(image)
            predictions.append(result.save(folder, output_stem(image))["labels"])
        rows = [r for case in evaluate_files(predictions, labels, v.real_mapping, hd95=False) for r in case.rows]
        scores = summary(rows, "dice")
        return {"real_dice_mean": float(np.mean(list(scores.values()))) if scores else 0.0,
                "real_dice": {k: round(x, 4) for k, x in scores.items()}}

    def save_png(self, step: int) -> None:
        from synthseg.viz import montage, save_png

        image, target = self.val_set[0]
        with torch.no_grad():
            self.model.eval()
            pred = self.model(image.to(self.device)).argmax(1)[0].cpu().numpy()
        img = image[0, 0].numpy()
        rows = [montage(img), montage(img, target.numpy()), montage(img, pred)]
        save_png(rows, self.run_dir / "png" / f"val_{step:08d}.png", scale=2)

    def _install_signals(self) -> None:
        def handler(signum, _frame):
            self.stop_signal = signum

        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, handler)

    def _should_stop(self) -> bool:
        flag = self.stop_signal is not None
        if self.world > 1:
            import torch.distributed as dist

            t = torch.tensor([1.0 if flag else 0.0], device=self.device if self.device.type == "cuda" else "cpu")
            dist.all_reduce(t)
            flag = bool(t.item() > 0)
        return flag

    def checkpoint(self, metrics: dict | None = None) -> Path | None:
        if self.rank != 0:
            return None
        path = save_checkpoint(self._state(), self.checkpoints, self.step, self.config.loop.keep_last)
        if metrics is not None and metrics["val_dice_mean"] > self.best:
            self.best = metrics["val_dice_mean"]
            path = save_checkpoint(self._state(), self.checkpoints, self.step, self.config.loop.keep_last)
            mark_best(path)
        return path

    def run(self) -> dict:
        loop = self.config.loop
        self.run_dir.mkdir(parents=True, exist_ok=True)
        if self.rank == 0:
            config_text = json.dumps(self.config.to_dict(), indent=2)
            (self.run_dir / "config.json").write_text(config_text, encoding="utf-8")
            self.log(f"training on {self.device} ({self.world} process(es), autocast {self.amp_dtype or 'off'}); "
                     f"{count_parameters(self.model):,} "
                     f"parameters; templates: {len(self.template_names)} train, " + (
                         f"held out for validation: {', '.join(self.holdout_names)}" if self.holdout_names else
                         f"none held out: validation on {', '.join(self.validation_names)}, which is also "
                         "trained on (data.holdout holds templates out)"))
        self._install_signals()
        writer = self._tensorboard()
        csv_path = self.run_dir / "log.csv"
        fields = ["step", "loss", "distill", "lr", "generate_s", "step_s", "val_dice_mean", "val_dice_brain",
                  "real_dice_mean", "time"]
        new_csv = not csv_path.exists() or csv_path.stat().st_size == 0
        if self.rank == 0 and not new_csv:  # resuming: keep the columns the log was started with
            fields = csv_path.read_text(encoding="utf-8").splitlines()[0].split(",")
        csv_file = open(csv_path, "a", newline="", encoding="utf-8") if self.rank == 0 else None
        log_csv = csv.DictWriter(csv_file, fieldnames=fields, extrasaction="ignore") if csv_file else None
        if log_csv and new_csv:
            log_csv.writeheader()
        bar = self._progress_bar(loop.steps)
        last_ckpt = time.monotonic()
        metrics: dict = {}
        try:
            while self.step < loop.steps:
                row = self.train_step()
                row["time"] = round(time.time(), 1)
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(loss=f"{row['loss']:.3f}", gen=f"{row['generate_s']:.2f}s", refresh=False)
                validate = self.step % loop.val_every == 0 or self.step == loop.steps
                if validate and self.rank == 0:
                    metrics = self.validate()
                    row.update({k: v for k, v in metrics.items() if k != "val_dice"})
                    self.history.append({"step": self.step, **metrics})
                    self.log(f"step {self.step}: val Dice mean {metrics['val_dice_mean']:.3f} "
                             f"brain {metrics['val_dice_brain']:.3f} {metrics['val_dice']}")
                v = self.config.validation
                if (self.rank == 0 and v.real_every and v.real_images and v.real_labels
                        and self.step % v.real_every == 0):
                    real = self.validate_real()
                    metrics.update(real)
                    row["real_dice_mean"] = real["real_dice_mean"]
                    if self.history and self.history[-1]["step"] == self.step:
                        self.history[-1].update(real)
                    self.log(f"step {self.step}: real Dice mean {real['real_dice_mean']:.3f} {real['real_dice']}")
                if self.rank == 0 and (self.step % loop.log_every == 0 or validate):
                    log_csv.writerow(row)
                    csv_file.flush()
                    if writer is not None:
                        for key in ("loss", "lr", "generate_s", "step_s", "val_dice_mean", "val_dice_brain"):
                            if key in row:
                                writer.add_scalar(key, row[key], self.step)
                if self.rank == 0 and loop.png_every and self.step % loop.png_every == 0:
                    self.save_png(self.step)
                due = (self.step % loop.checkpoint_every_steps == 0 or validate
                       or time.monotonic() - last_ckpt > 60 * loop.checkpoint_every_minutes)
                if due:
                    self.checkpoint(metrics if validate else None)
                    last_ckpt = time.monotonic()
                if self._should_stop():
                    self.checkpoint()
                    self.log(f"signal {self.stop_signal}: checkpoint saved at step {self.step}; exiting")
                    break
        finally:
            if bar is not None:
                bar.close()
            if csv_file:
                csv_file.close()
            if writer is not None:
                writer.close()
            if self.world > 1:
                import torch.distributed as dist

                dist.barrier()  # no rank may tear down while another is still in a collective
                dist.destroy_process_group()
        if self.stop_signal is not None:
            raise SystemExit(128 + int(self.stop_signal))
        return {"step": self.step, "best": self.best, **metrics}

    def _tensorboard(self):
        if self.rank != 0:
            return None
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:  # TensorBoard is optional; the CSV log always exists
            return None
        return SummaryWriter(str(self.run_dir / "tensorboard"))

    def _progress_bar(self, total: int):
        if self.rank != 0 or not self.progress:
            return None
        from tqdm import tqdm

        interactive = sys.stderr.isatty()
        return tqdm(total=total, initial=self.step, unit="step", dynamic_ncols=True,
                    mininterval=0.5 if interactive else 60.0)
