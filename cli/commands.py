"""Handlers of the ``synthseg`` sub-commands: each maps its arguments onto the public API."""

from __future__ import annotations

import json
import os
import sys
import time
from argparse import Namespace
from pathlib import Path

from synthseg.errors import SynthSegError


def _err(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def checked_output_folder(path: str | Path, create: bool = True) -> Path:
    """``path`` as an output folder, made (``create``) or refused with a one-line error before any work when it
    cannot be one: it, or the nearest of its parents that exists, is a file, or cannot be written to."""
    folder = Path(path)
    existing = next(p for p in (folder, *folder.absolute().parents) if p.exists())
    if not existing.is_dir():
        raise SynthSegError("exists and is not a folder" if existing == folder else f"{existing} is a file", folder)
    if not os.access(existing, os.W_OK):
        raise SynthSegError("output folder is not writable" if existing == folder
                            else f"cannot create the output folder ({existing} is not writable)", folder)
    if create:
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise SynthSegError(f"cannot create the output folder ({error.strerror})", folder) from None
    return folder


def checked_csv_path(path: str | Path, option: str) -> Path:
    """A CSV file to write, its folder made, or a one-line error before any work."""
    path = Path(path)
    if path.is_dir():
        raise SynthSegError(f"{option} names a folder; give a .csv file", path)
    try:
        checked_output_folder(path.parent)
    except SynthSegError as error:
        raise SynthSegError(f"cannot write the volumes CSV ({error})", path) from None
    return path


def cmd_volumes(args: Namespace) -> int:
    from synthseg.evaluation.volumes import label_maps_in, stored_volumes, volumes_csv
    from synthseg.inference.coverage import coverage_warning
    from synthseg.io.image import write_atomic

    output = checked_csv_path(args.output, "-o") if args.output else None
    paths, failed = label_maps_in(args.inputs, recursive=args.recursive)
    rows = []
    for path in paths:
        try:
            row = stored_volumes(path)
        except SynthSegError as error:
            failed.append(str(error))
            continue
        rows.append(row)
        warning = coverage_warning(row["brain_at_edges_cm2"])  # as `segment` warns of a brain cut by the view
        if warning:
            _err(f"{path}: warning: {warning}")
    if rows:
        text = volumes_csv(rows)
        if output is None:
            sys.stdout.write(text)
        else:
            write_atomic(output, lambda tmp: tmp.write_text(text, encoding="utf-8"))
            print(f"volumes of {len(rows)} label map(s): {output}")
    for error in failed:
        _err(f"failed: {error}")
    return 1 if failed else 0


def cmd_labels(args: Namespace) -> int:
    from synthseg.labels.protocol import structure_table

    sys.stdout.write(structure_table(args.format))
    return 0


def cmd_models(args: Namespace) -> int:
    from synthseg.inference.catalog import DEFAULT_MODEL, list_models

    models = list_models()
    if not models:
        print("no shipped models")
    for m in models:
        mark = " (default)" if m["name"] == DEFAULT_MODEL else ""
        experts = f", experts {'/'.join(m['experts'])}" if m["experts"] else ""
        experts += " (MR routing calibrated)" if m["routing_calibrated"] else ""
        print(f"{m['name']}{mark}: {m['spacing_mm']} mm, {m['steps']:,} training steps{experts}, "
              f"sha256 {m['sha256'][:12]}… [{m['path']}]")
    return 0


# ---------------------------------------------------------------------------- segment
def cmd_segment(args: Namespace) -> int:
    from synthseg.evaluation.volumes import volumes_csv
    from synthseg.inference import batch
    from synthseg.inference.result import names_label_file
    from synthseg.inference.segmenter import Segmenter, check_options

    started = time.time()
    check_options(voxel_size=args.voxel_size)  # before any folder is made
    world, rank = int(os.environ.get("WORLD_SIZE", "1")), int(os.environ.get("RANK", "0"))
    device = args.device
    if world > 1:
        import torch
        import torch.distributed as dist

        dist.init_process_group("gloo")
        if device in ("auto", "cuda") and torch.cuda.is_available():
            device = f"cuda:{int(os.environ.get('LOCAL_RANK', '0')) % torch.cuda.device_count()}"
    inputs, errors = batch.collect_inputs(args.inputs, args.recursive)
    out = Path(args.output) if args.output else None
    batch.check_output(out, len(inputs))
    out_folder = None if out is None else (out.parent if names_label_file(out) else out)
    if args.volumes:  # checked (and its folder made) before the outputs' folder, before any work
        checked_csv_path(args.volumes, "--volumes")
    if out_folder is not None:
        checked_output_folder(out_folder)
    segmenters: list[Segmenter] = []

    def make() -> Segmenter:
        segmenters.append(Segmenter(args.model, device=device, tta=args.tta, threads=args.threads,
                                    modality=args.modality, amp=args.amp, experts=args.experts,
                                    cleanup=args.cleanup, pose=args.pose, bias_correct=args.bias_correct,
                                    voxel_size=args.voxel_size, hemispheres=args.hemispheres,
                                    contrast=args.contrast))
        return segmenters[0]

    report = batch.run_batch(inputs, out, make, posteriors=args.posteriors, qc=args.qc, png=args.png,
                             skip_existing=args.skip_existing, overwrite=args.overwrite, rank=rank, world=world,
                             announce=_err)
    if rank == 0:
        report.failed = errors + report.failed
    card = segmenters[0].card if segmenters else None
    used_device = str(segmenters[0].device) if segmenters else device
    if world > 1:
        import torch.distributed as dist

        gathered: list = [None] * world
        dist.all_gather_object(gathered, report)
        dist.destroy_process_group()
        if rank != 0:
            return 1 if report.failed else 0
        for other in gathered[1:]:
            report.done += other.done
            report.skipped += other.skipped
            report.failed += other.failed
            report.rows += other.rows
            report.files.update(other.files)
    if args.volumes and report.rows:
        from synthseg.io.image import write_atomic

        text = volumes_csv(report.rows)
        write_atomic(Path(args.volumes), lambda tmp: tmp.write_text(text, encoding="utf-8"))
    options = {k: v for k, v in vars(args).items() if k != "command"}
    prov_folder = out_folder or (Path(inputs[0]).parent if inputs else None)  # no input found: nowhere to write
    prov_path = prov_folder / "synthseg_provenance.json" if prov_folder is not None else None
    # a run that wrote nothing keeps the record of the run that made the outputs already there
    if prov_path is not None and (report.done or (report.failed and not prov_path.exists())):
        try:
            batch.write_json(prov_path, batch.provenance(options, card, used_device, report, started))
        except (OSError, SynthSegError) as error:
            report.failed.append(f"{prov_folder}: cannot write provenance ({error})")
    print(f"segmented {len(report.done)}, skipped {len(report.skipped)}, failed {len(report.failed)}"
          + ((f"; outputs in {out}" if out else "; outputs next to each input") if report.done else ""))
    for line in report.failed:
        _err(f"failed: {line}")
    return 1 if report.failed or not (report.done or report.skipped) else 0


# ---------------------------------------------------------------------------- demo
def cmd_demo(args: Namespace) -> int:
    import numpy as np

    from synthseg.evaluation.metrics import dice
    from synthseg.io.image import Image, save_image
    from synthseg.inference.segmenter import Segmenter
    from synthseg.labels.protocol import STRUCTURES
    from synthseg.synthesis.intensity import CT_INFERENCE_WINDOW
    from synthseg.synthesis.scans import render_scan
    from synthseg.templates.library import phantom_templates
    from synthseg.viz import montage, save_png

    segmenter = Segmenter(args.model, device=args.device)  # a bad model or device is refused before any output
    out = checked_output_folder(args.output)
    templates, recipe = phantom_templates(1.0, seeds=(args.seed,))
    scan, truth = render_scan(templates[0], recipe, args.contrast, args.seed)
    stem = f"phantom_{args.contrast}"
    image_path = save_image(scan, out / f"{stem}.nii.gz")
    save_image(Image(truth, scan.affine), out / f"{stem}_truth.nii.gz", dtype=np.uint8)
    print(f"synthetic {args.contrast.upper()}-like head from the built-in phantom (procedural, not anyone's anatomy): "
          f"{image_path}")
    result = segmenter.segment(image_path)
    paths = result.save(out, stem, qc=True)
    labels = np.asanyarray(result.labels.dataobj)
    shown = np.clip(scan.data, *CT_INFERENCE_WINDOW) if args.contrast == "ct" else scan.data  # CT: the brain window
    png = save_png([montage(shown), montage(shown, truth), montage(shown, labels)], out / f"{stem}_dseg.png")
    scores = {s.short: dice(labels, truth, s.id) for s in STRUCTURES[1:]}
    print("Dice against the phantom's truth: " + ", ".join(f"{k} {v:.2f}" for k, v in scores.items())
          + f"; mean {sum(scores.values()) / len(scores):.2f}")
    print(f"segmented in {result.timings['total_s']:.1f} s with model '{segmenter.card.get('name')}'")
    print(f"results: {paths['labels']} (labels), {paths['qc']} (volumes + QC), {png} (montage: input, "
          f"truth, prediction)")
    return 0


# ---------------------------------------------------------------------------- templates
def cmd_templates(args: Namespace) -> int:
    return {"import": _templates_import, "list": _templates_list, "show": _templates_show,
            "recipes": _templates_recipes}[args.templates_command](args)


def _templates_import(args: Namespace) -> int:
    from synthseg.templates.library import import_templates

    out = checked_output_folder(args.output, create=False)  # made by the import, once a map is read
    done, failed = import_templates([Path(p) for p in args.inputs], args.recipe, out,
                                    spacing=args.spacing, margin_mm=args.margin,
                                    dura_thickness=args.dura_thickness, unknown=args.unknown)
    for m in done:
        print(f"imported {m['name']}: {len(m['targets_present'])} targets, brain {m['brain_volume_ml']:.0f} ml, "
              f"dura {'synthesised' if m['dura']['synthesized'] else 'from the map'}")
    for error in failed:
        _err(f"failed: {error}")
    return 1 if failed else 0


def _templates_list(args: Namespace) -> int:
    from synthseg.labels.protocol import STRUCTURES
    from synthseg.templates.library import list_templates

    manifests = list_templates(Path(args.folder))
    shorts = [s.short for s in STRUCTURES[1:]]
    print(f"{'template':<18}" + "".join(f"{s:>9}" for s in shorts) + f"{'brain':>8}")
    for m in manifests:
        vols = m["volumes_ml"]
        print(f"{m['name']:<18}" + "".join(f"{vols[str(i)]:>9.1f}" for i in range(1, 17))
              + f"{m['brain_volume_ml']:>8.0f}")
    return 0


def _templates_show(args: Namespace) -> int:
    import numpy as np

    from synthseg.io.geometry import to_canonical
    from synthseg.io.image import load_image
    from synthseg.labels.protocol import STRUCTURES
    from synthseg.templates.library import template_name
    from synthseg.templates.recipe import load_recipe
    from synthseg.viz import montage, save_png

    path = Path(args.template)
    manifest_path = path.parent / f"{template_name(path)}.json"
    if not manifest_path.is_file():
        raise SynthSegError("no manifest next to this template; import it with `synthseg templates import`", path)
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    print(f"{manifest['name']} (recipe {manifest['recipe']}, {manifest['spacing_mm']} mm, shape {manifest['shape']})")
    for s in STRUCTURES[1:]:
        present = "yes" if s.id in manifest["targets_present"] else "NO "
        print(f"  {s.id:>2} {s.short:<10} {present} {manifest['volumes_ml'][str(s.id)]:>9.1f} ml")
    if args.png:
        image = to_canonical(load_image(path, labels=True))
        targets = load_recipe(path.parent / "recipe.yaml").lookup(image.data, "target")
        centre = np.asarray(image.shape) // 2
        save_png([montage(None, targets, alpha=1.0)], args.png, scale=2)
        print(f"montage: {args.png} (centre voxel {centre.tolist()})")
    return 0


def _templates_recipes(args: Namespace) -> int:
    from synthseg.templates.recipe import load_recipe, shipped_recipes

    for name, path in sorted(shipped_recipes().items()):
        recipe = load_recipe(path)
        print(f"{name}: {recipe.description} ({len(recipe.labels)} codes, {len(recipe.classes)} classes)")
    return 0


# ---------------------------------------------------------------------------- generate / train / export
def cmd_generate(args: Namespace) -> int:
    import numpy as np

    from synthseg.device import resolve_device
    from synthseg.io.image import Image, save_image
    from synthseg.synthesis.generator import Generator
    from synthseg.training.config import load_config
    from synthseg.training.trainer import load_template_split
    from synthseg.viz import montage, save_png

    out = checked_output_folder(args.output)
    config = load_config(args.config, [f"generator.mode={args.mode}", *args.set,
                                       f"data.templates={args.templates}", "data.holdout=[]"])
    train, _, recipe = load_template_split(config)
    generator = Generator(train, recipe, config.generator, resolve_device(args.device), seed=args.seed)
    rows = []
    for i, seed in enumerate(generator.next_seeds(args.n)):
        params = generator.sample_params(seed)
        image, target = generator.render(params)
        img, tgt = image.cpu().numpy(), target.cpu().numpy().astype(np.uint8)
        affine = generator.output_affine(params)
        save_image(Image(img, affine), out / f"sample_{i:03d}_image.nii.gz")
        save_image(Image(tgt, affine), out / f"sample_{i:03d}_labels.nii.gz", dtype=np.uint8)
        if args.params:
            (out / f"sample_{i:03d}_params.json").write_text(json.dumps(params.to_dict(), indent=2), encoding="utf-8")
        rows.append(montage(img, None))
        rows.append(montage(img, tgt))
        print(f"sample {i}: {params.modality}, template {train[params.template].name}, "
              f"resolution {[round(r, 1) for r in params.low_res]} mm")
    png = save_png(rows, out / "montage.png", scale=2)
    print(f"wrote {args.n} image/label pairs and {png}")
    return 0


def cmd_train(args: Namespace) -> int:
    from synthseg.training.config import default_config_path, load_config

    overrides = list(args.set) + ([f"data.templates={args.templates}"] if args.templates else [])
    config = load_config(args.config or default_config_path(), overrides)
    if args.print_config:
        import yaml

        print(yaml.safe_dump(config.to_dict(), sort_keys=False))
        return 0
    from synthseg.training.trainer import Trainer

    result = Trainer(config, checked_output_folder(args.output), resume=args.resume).run()
    print(json.dumps({k: v for k, v in result.items() if k != "val_dice"}))
    return 0


def cmd_export(args: Namespace) -> int:
    from synthseg.training.export import add_expert, export_model

    checked_output_folder(args.output, create=False)  # made by the export, once the checkpoint is read
    if args.fine and not args.expert:
        raise SynthSegError("--fine needs --expert CONTRAST (the expert the fine grid belongs to)")
    if args.expert:
        card = add_expert(args.checkpoint, args.output, args.expert, fp16=not args.fp32, fine=args.fine)
        print(f"added expert {args.expert}{' (fine grid)' if args.fine else ''}: {card}")
        return 0
    evaluation = json.loads(Path(args.evaluation).read_text(encoding="utf-8")) if args.evaluation else None
    card = export_model(args.checkpoint, args.output, fp16=not args.fp32, evaluation=evaluation, notes=args.notes)
    experts = [e["contrast"] for e in json.loads(card.read_text(encoding="utf-8")).get("experts", [])]
    hint = (f"; routing among the MR experts falls back to correlation until `synthseg calibrate {args.output}`"
            if len([c for c in experts if c != "ct"]) > 1 else "")
    print(f"exported {card}" + (f" (experts kept: {', '.join(experts)}{hint})" if experts else ""))
    return 0


def cmd_average(args: Namespace) -> int:
    from synthseg.training.checkpoint import average_checkpoints

    out = average_checkpoints(args.checkpoints, args.output)
    print(f"averaged {len(args.checkpoints)} checkpoints: {out} (export it with `synthseg export {out} -o MODEL_DIR`)")
    return 0


def cmd_calibrate(args: Namespace) -> int:
    import torch

    from synthseg.training.routing import calibrate_pose, calibrate_routing

    if args.pose_only:
        card = calibrate_pose(args.model, templates=args.templates)
        print(f"reference head pose stored: {card}")
        return 0
    if args.threads:
        torch.set_num_threads(args.threads)
    card = calibrate_routing(args.model, draws=args.draws, templates=args.templates, device=args.device, amp=args.amp,
                             log=lambda case: print(f"  {case}", flush=True))
    routing = json.loads(card.read_text(encoding="utf-8"))["routing"]
    print(f"routing calibrated on {routing['calibration']['scans']} renders ({', '.join(routing['contrasts'])}; "
          f"{routing['calibration']['accuracy']:.0%} routed to their own contrast): {card}")
    return 0


# ---------------------------------------------------------------------------- evaluate
def cmd_evaluate(args: Namespace) -> int:
    from synthseg.evaluation import evaluate

    failed: list[SynthSegError] = []  # files that could not be read: reported, the others still scored
    try:
        rows = _evaluation_rows(args, failed)
    finally:
        for error in failed:
            _err(f"failed: {error}")
    if args.csv:
        from synthseg.io.image import write_atomic

        text = evaluate.rows_to_csv(rows)
        write_atomic(Path(args.csv), lambda tmp: tmp.write_text(text, encoding="utf-8"))
    return 1 if failed else 0


def _evaluation_rows(args: Namespace, failed: list[SynthSegError]) -> list[dict]:
    """Score and print the predictions (against references, or with each other for --consistency); files that
    cannot be read go to ``failed``."""
    from synthseg.evaluation import evaluate

    if args.consistency:
        rows = evaluate.consistency([Path(p) for p in args.predictions], on_error=failed.append)
        means = evaluate.summary(rows, "dice")
        for name, value in means.items():
            print(f"{name:<11} {value:.3f}")
        print(f"{'mean':<11} {sum(means.values()) / max(1, len(means)):.3f}")
        return rows
    if not args.reference:
        raise SynthSegError("give --reference label maps (or use --consistency)")
    results = evaluate.evaluate_files(args.predictions, args.reference, args.mapping, hd95=not args.no_hd95,
                                      on_error=failed.append)
    rows = [row for r in results for row in r.rows]
    if rows:
        print(evaluate.format_table(rows))
    return rows
