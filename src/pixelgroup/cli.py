"""Command-line interface: argument parsing only; the work is done in :mod:`pixelgroup.engine`."""

from __future__ import annotations

import argparse
import logging
import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path

from . import __version__

log = logging.getLogger("pixelgroup")


def _add_device(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1, ... (default: cuda if available, else cpu)")


def _add_overwrite(p: argparse.ArgumentParser) -> None:
    p.add_argument("--overwrite", action="store_true",
                   help="replace results that exist already (default: refuse, nothing is written)")


def _add_big_image_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--tile", type=int, default=None,
                   help="block side for tiled prediction, pixels (default: 1024 above 2048x2048 pixels; 0: off)")
    p.add_argument("--halo", type=int, default=None,
                   help="grouping context around each block, pixels (default 96); must exceed the largest object")
    p.add_argument("--tta", action="store_true", help="average the outputs over the 8 flips/rotations")
    p.add_argument("--frames", action="store_true", help="segment every plane of a (T, Y, X) stack")
    p.add_argument("--out-format", choices=("tif", "ome-zarr"), default=None,
                   help="label file of big images / stacks / zarr inputs: tiled BigTIFF (default) or OME-Zarr")
    p.add_argument("--save-outputs", action="store_true",
                   help="also write the raw outputs NAME.outputs.zarr (for pixelgroup regroup)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pixelgroup", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"pixelgroup {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("synth", help="write a synthetic dataset folder")
    p.add_argument("out", type=Path)
    p.add_argument("--kind", default="nuclei", help="nuclei, shapes or semantic")
    p.add_argument("--n", type=int, default=64)
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--palette", default="class", choices=("class", "shared"),
                   help="semantic only: each class has its own hue (default), or all share one palette")
    _add_overwrite(p)

    p = sub.add_parser("train", help="train a model")
    p.add_argument("--data", type=Path, required=True, help="training dataset folder")
    p.add_argument("--val", type=Path, default=None, help="validation folder (default: hold out a split)")
    p.add_argument("--method", default=None, help="spatial, hypersphere, discriminative, segsort, softmax")
    p.add_argument("--out", type=Path, required=True, help="run folder (checkpoints, config, logs)")
    p.add_argument("--config", type=Path, default=None, help="YAML run config; flags override it")
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--minutes", type=float, default=None, help="wall-clock training budget")
    p.add_argument("--lr", type=float, default=None)
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--crop-size", type=int, default=None)
    p.add_argument("--format", default=None, help="dataset format (default: folder)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    p.add_argument("--init", default=None,
                   help="run folder, checkpoint or model name whose matching weights start this run")
    p.add_argument("--no-progress", action="store_true")
    _add_device(p)

    p = sub.add_parser("predict", help="segment images with a trained model", description=(
        "Segment images into --out (a new or separate folder; existing results are kept unless --overwrite). "
        "Exit status: 0 all inputs done; 1 some inputs could not be segmented (the others are written, "
        "the bad ones listed on stderr); 2 nothing done (bad arguments, paths or model)."))
    p.add_argument("--model", required=True, help="run folder, .pt checkpoint or model name (pixelgroup models)")
    p.add_argument("inputs", nargs="+", type=Path, help="image files or folders")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--overlays", action="store_true", help="also write NAME_overlay.png")
    p.add_argument("--diameter", default=None, type=_diameter_arg,
                   help="object diameter in the images, pixels, or 'auto' (estimated from passes at coarser "
                        "scales): the images are rescaled to the model's training object size (default: no "
                        "rescaling)")
    p.add_argument("--strict", action="store_true",
                   help="stop at the first bad input (default: do the good ones, list the bad, exit 1)")
    _add_overwrite(p)
    p.add_argument("--no-progress", action="store_true")
    _add_device(p)
    p.add_argument("--inference", choices=("auto", "plain", "fused", "bf16"), default="auto",
                   help="how the network runs: fused (BatchNorm folded, float32), bf16 (bfloat16, ~3x faster "
                        "on CPUs with AMX/AVX512-BF16), plain; auto (default): bf16 where the CPU has it, else fused")
    _add_big_image_flags(p)
    p.add_argument("--scheduler", default=None,
                   help="run on a Dask cluster: a scheduler address (tcp://host:8786) or local:N for N worker "
                        "processes on this machine; --out must be a folder every worker can write")

    p = sub.add_parser("regroup", help="group saved outputs (predict --save-outputs) again, without the network")
    p.add_argument("inputs", nargs="+", type=Path, help="NAME.outputs.zarr stores or folders of them")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--seed-threshold", type=float, default=None, help="grouping seed threshold (spatial)")
    p.add_argument("--fg-threshold", type=float, default=None, help="grouping foreground threshold")
    p.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                   help="any grouping parameter (YAML value), repeatable, e.g. --param min_size=50")
    p.add_argument("--out-format", choices=("tif", "ome-zarr"), default=None, help="default: as predict wrote")
    p.add_argument("--no-progress", action="store_true")

    p = sub.add_parser("evaluate", help="score predicted label images against ground truth")
    p.add_argument("--gt", type=Path, required=True, help="ground-truth folder (or dataset folder)")
    p.add_argument("--pred", type=Path, required=True)
    p.add_argument("--json", type=Path, default=None, help="also write the results as JSON")
    _add_overwrite(p)
    kind = p.add_mutually_exclusive_group()
    kind.add_argument("--semantic", action="store_true", help="class maps (mIoU) instead of instances")
    kind.add_argument("--boundaries", action="store_true", help="boundary maps (BSDS ODS/OIS/AP)")
    kind.add_argument("--proposals", action="store_true", help="ranked proposals (AR@10, AR@100)")
    p.add_argument("--n-classes", type=int, default=None)
    p.add_argument("--format", default=None,
                   help="ground truth is a standard dataset read by this reader (voc, coco, cityscapes, cvppp, "
                        "auto): instances scored per class (COCO AP per class and mean); default: label folder")
    p.add_argument("--split", default=None, help="with --format: the dataset's image set (e.g. val, val2017)")

    p = sub.add_parser("check", help="check a dataset for problems before training")
    p.add_argument("root", type=Path)
    p.add_argument("--format", default=None, help="dataset format (default: detected)")
    p.add_argument("--fix", action="store_true", help="turn binary masks into instance labels (originals kept)")
    p.add_argument("--max-samples", type=int, default=None, help="read at most this many samples")
    p.add_argument("--binary-masks", default=None, choices=("check", "objects", "components"),
                   help="binary masks with several objects: an error (check, default), one object per "
                        "image as intended (objects), or one instance per connected component (components)")

    p = sub.add_parser("boundaries", help="boundary-probability maps from an embedding model")
    p.add_argument("--model", type=Path, required=True)
    p.add_argument("inputs", nargs="+", type=Path)
    p.add_argument("--out", type=Path, required=True)
    _add_overwrite(p)
    _add_device(p)

    p = sub.add_parser("proposals", help="ranked object proposals (COCO RLE JSON) from an embedding model")
    p.add_argument("--model", type=Path, required=True)
    p.add_argument("inputs", nargs="+", type=Path)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--top", type=int, default=100, help="proposals kept per image")
    _add_overwrite(p)
    _add_device(p)

    p = sub.add_parser("explain", help="SegSort: the training segments that voted for each predicted segment")
    p.add_argument("--model", type=Path, required=True)
    p.add_argument("image", type=Path)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--data", type=Path, default=None, help="training data (default: the folder it was trained on)")
    p.add_argument("--k", type=int, default=None, help="voters shown (default: the model's k)")
    _add_overwrite(p)
    _add_device(p)

    p = sub.add_parser("models", help="list the named models (bundled and yours), show a card, add a run")
    p.add_argument("--info", metavar="NAME", default=None, help="print the model card of NAME")
    p.add_argument("--add", nargs=2, metavar=("NAME", "RUN"), default=None,
                   help="copy run folder / checkpoint RUN into the user models as NAME")
    _add_overwrite(p)

    p = sub.add_parser("export", help="export a model: torchscript (whole pipeline), onnx (network), bioimageio")
    p.add_argument("--model", required=True, help="run folder, .pt checkpoint or model name")
    p.add_argument("--format", required=True, choices=("torchscript", "onnx", "bioimageio"))
    p.add_argument("--out", type=Path, required=True,
                   help="output file (.pt / .onnx) or, for bioimageio, a .zip or a folder")
    _add_overwrite(p)

    p = sub.add_parser("demo", help="synthetic data -> train -> predict -> evaluate, in minutes on a CPU")
    p.add_argument("--out", type=Path, default=Path("pixelgroup-demo"))
    p.add_argument("--method", default="spatial")
    p.add_argument("--minutes", type=float, default=4.0)
    p.add_argument("--no-progress", action="store_true")
    _add_device(p)
    return parser


_DEVICE_FORMS = "cpu, cuda, cuda:N (N = GPU index, e.g. cuda:0) or mps"


def _device(name: str | None) -> str:
    import torch

    if name is None:
        return "cuda" if torch.cuda.is_available() else "cpu"
    if not re.fullmatch(r"cpu|cuda|cuda:\d+|mps", name):
        raise ValueError(f"--device {name}: not a device; use {_DEVICE_FORMS}")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ValueError(f"--device {name}: CUDA is not available on this machine; use --device cpu")
        n = torch.cuda.device_count()
        if ":" in name and int(name.split(":")[1]) >= n:
            raise ValueError(f"--device {name}: this machine has {n} CUDA device(s), cuda:0 to cuda:{n - 1}")
    if name == "mps" and not torch.backends.mps.is_available():
        raise ValueError("--device mps: MPS (Apple GPU) is not available on this machine; use --device cpu")
    return name


def _diameter_arg(text: str) -> float | str:
    if text == "auto":
        return text
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of pixels or 'auto', got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0 pixels, got {text}")
    return value


def _cache_dir() -> Path:
    """The user model folder; ``PIXELGROUP_HOME`` replaces the platform's user data folder."""
    import os

    from .engine.zoo import default_cache_dir

    return default_cache_dir(os.environ.get("PIXELGROUP_HOME") or None)


def _cmd_models(args: argparse.Namespace) -> int:
    from .engine.zoo import add_model, get_model, list_models

    cache = _cache_dir()
    if args.add:
        model = add_model(args.add[0], args.add[1], cache_dir=cache, overwrite=args.overwrite)
        print(f"added '{model.name}' to {model.folder}; use it with --model {model.name}")
        return 0
    if args.info:
        print(get_model(args.info, cache_dir=cache).card.rstrip())
        return 0
    models = list_models(cache_dir=cache)
    width = max((len(m.name) for m in models), default=4)
    for m in models:
        print(f"{m.name:<{width}}  {m.source:<7}  {m.description}")
    print(f"(user models: {cache}; details: pixelgroup models --info NAME)")
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from .engine.export import export_model

    out = export_model(args.model, args.out, format=args.format, cache_dir=_cache_dir(), overwrite=args.overwrite)
    print(f"wrote {args.format} export to {out}")
    return 0


def _cmd_synth(args: argparse.Namespace) -> int:
    from .data.synth import write_synthetic
    from .engine.outputs import check_out_folder

    check_out_folder(args.out, flag="synth OUT")

    if args.kind == "semantic":
        from .data.synth_semantic import write_synthetic_semantic

        paths = write_synthetic_semantic(args.out, n=args.n, size=args.size, seed=args.seed, palette=args.palette,
                                         overwrite=args.overwrite)
    else:
        paths = write_synthetic(args.out, kind=args.kind, n=args.n, size=args.size, seed=args.seed,
                                overwrite=args.overwrite)
    print(f"wrote {len(paths)} {args.kind} images to {args.out}")
    return 0


_TRAIN_FLAGS = {"method": "--method", "train.steps": "--steps", "train.minutes": "--minutes", "train.lr": "--lr",
                "data.batch_size": "--batch-size", "data.crop_size": "--crop-size", "data.format": "--format",
                "train.init": "--init"}


def _saved_run_config(out: Path):
    """The config of the run in ``out`` (its config.yaml, else its last.pt), or ``None`` when it has neither."""
    from .config import load_config
    from .engine.checkpoint import LAST, load_checkpoint

    if (out / "config.yaml").is_file():
        return load_config(out / "config.yaml"), out / "config.yaml"
    if (out / LAST).is_file():
        return load_checkpoint(out / LAST)[0], out / LAST
    return None


def _train_config(args: argparse.Namespace):
    """The run config: the run folder's own (``--resume``), then ``--config``, then the flags."""
    from .config import ConfigError, RunConfig, load_config

    cfg = RunConfig()
    saved = _saved_run_config(args.out) if args.resume else None
    if saved is not None:
        cfg = saved[0]
        log.info("resuming %s: method '%s' and settings from %s (flags and --config override)", args.out,
                 cfg.method, saved[1])
    if args.config:
        cfg = load_config(args.config, base=cfg)
    values = [args.method, args.steps, args.minutes, args.lr, args.batch_size, args.crop_size, args.format,
              _init_arg(None if args.init is None else str(args.init))]
    overrides = dict(zip(_TRAIN_FLAGS, values))
    try:
        return cfg.replace(**overrides)
    except ConfigError as err:
        raise err.located(_TRAIN_FLAGS[err.key]) if overrides.get(err.key) is not None else err from None


def _init_arg(init: str | None) -> str | None:
    """``--init``: a path as given; a model name as its checkpoint (user models via PIXELGROUP_HOME)."""
    from .engine.zoo import resolve_model

    if init is None or Path(init).exists():
        return init
    return str(resolve_model(init, cache_dir=_cache_dir()))


def _cmd_train(args: argparse.Namespace) -> int:
    from .engine import distributed
    from .engine.outputs import check_out_folder
    from .engine.train import TrainingInterrupted, fit

    check_out_folder(args.out)
    cfg = _train_config(args)
    device = _device(args.device)
    spec = distributed.spec_from_env(os.environ)  # set by torchrun: one process of several
    if spec is not None:
        device = distributed.setup(spec, device)
    try:
        res = fit(cfg, data=args.data, val=args.val, out=args.out, device=device, resume=args.resume,
                  progress=not args.no_progress)
    except TrainingInterrupted as stop:
        print(f"pixelgroup train: stopped by {stop.signame} at step {stop.step}; saved {stop.path}; continue with: "
              f"pixelgroup train --data {args.data} --out {args.out} --resume", file=sys.stderr)
        return 128 + stop.signum
    finally:
        distributed.teardown()
    if spec is None or spec.rank == 0:
        print(res.summary())
    return 0


def _cmd_predict(args: argparse.Namespace) -> int:
    from .engine.predict import predict_paths
    from .engine.predict_big import BigOptions
    from .engine.segmenter import load_model

    big = BigOptions(tile=args.tile, halo=args.halo, tta=args.tta, frames=args.frames, out_format=args.out_format,
                     save_outputs=args.save_outputs)
    if args.scheduler:
        from .engine.cluster import predict_on_cluster

        report = predict_on_cluster(args.model, args.inputs, args.out, scheduler=args.scheduler,
                                    device=_device(args.device), overlays=args.overlays, big=big,
                                    overwrite=args.overwrite, strict=args.strict, progress=not args.no_progress,
                                    diameter=args.diameter, cache_dir=_cache_dir(), inference=args.inference)
    else:
        seg = load_model(args.model, device=_device(args.device), cache_dir=_cache_dir(), inference=args.inference)
        report = predict_paths(seg, args.inputs, args.out, overlays=args.overlays, progress=not args.no_progress,
                               big=big, overwrite=args.overwrite, strict=args.strict, diameter=args.diameter)
    skipped = f" ({len(report.skipped)} already done, skipped; --overwrite to redo)" if report.skipped else ""
    print(f"wrote {len(report.written)} prediction(s) to {args.out}{skipped}")
    if not report.failed:
        return 0
    print(f"pixelgroup predict: {len(report.failed)} input(s) could not be segmented:", file=sys.stderr)
    for _, reason in report.failed:
        print(f"  {reason}", file=sys.stderr)
    return 1


def _cmd_regroup(args: argparse.Namespace) -> int:
    import yaml

    from .engine.regroup import regroup_paths

    params = {}
    for item in args.param:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--param {item!r}: expected KEY=VALUE, e.g. --param min_size=50")
        params[key.strip()] = yaml.safe_load(value)
    params.update({k: v for k, v in (("seed_threshold", args.seed_threshold), ("fg_threshold", args.fg_threshold))
                   if v is not None})
    written = regroup_paths(args.inputs, args.out, params=params, out_format=args.out_format,
                            progress=not args.no_progress)
    print(f"wrote {len(written)} regrouped label image(s) to {args.out}")
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from .engine import evaluate as ev
    from .metrics.report import format_instance_table, format_semantic_table

    if args.json is not None:
        from .engine.outputs import check_out_file

        check_out_file(args.json, overwrite=args.overwrite)
    dataset = args.format not in (None, "folder")
    if (dataset or args.split) and (args.semantic or args.boundaries or args.proposals):
        raise ValueError("--format/--split score instances; drop them with --semantic, --boundaries or --proposals")
    if args.split and not dataset:
        raise ValueError("--split needs --format (voc, coco, cityscapes, ...)")
    if dataset:
        res = ev.evaluate_dataset(args.gt, args.pred, format=args.format, split=args.split, json_path=args.json)
        print(format_instance_table(res))
        per_class = ev.format_class_ap(res)
        if per_class:
            print(per_class)
    elif args.boundaries:
        res = ev.evaluate_boundaries(args.gt, args.pred, json_path=args.json)
        print(f"ODS {res['ods']:.4f}  OIS {res['ois']:.4f}  AP {res['ap']:.4f}  (threshold {res['threshold']:.3f})")
    elif args.proposals:
        res = ev.evaluate_proposals(args.gt, args.pred, json_path=args.json)
        print("  ".join(f"{k.upper()} {v:.4f}" for k, v in res.items() if k.startswith("ar@")))
    else:
        res = ev.evaluate_folders(args.gt, args.pred, semantic=args.semantic, n_classes=args.n_classes,
                                  json_path=args.json)
        print(format_semantic_table(res) if args.semantic else format_instance_table(res))
    return 0


def _cmd_check(args: argparse.Namespace) -> int:
    from .data.check import check_dataset

    report = check_dataset(args.root, format=args.format, fix=args.fix, max_samples=args.max_samples,
                           binary_masks=args.binary_masks or "check")
    print(report.format())
    return 0 if report.ok else 1


def _cmd_boundaries(args: argparse.Namespace) -> int:
    from .engine.embedding_tools import boundaries_paths
    from .engine.segmenter import load_model

    written = boundaries_paths(load_model(args.model, device=_device(args.device)), args.inputs, args.out,
                               overwrite=args.overwrite)
    print(f"wrote {len(written)} boundary map(s) to {args.out}")
    return 0


def _cmd_proposals(args: argparse.Namespace) -> int:
    from .engine.embedding_tools import proposals_paths
    from .engine.segmenter import load_model

    seg = load_model(args.model, device=_device(args.device))
    written = proposals_paths(seg, args.inputs, args.out, top_k=args.top, overwrite=args.overwrite)
    print(f"wrote proposals for {len(written)} image(s) to {args.out}")
    return 0


def _cmd_explain(args: argparse.Namespace) -> int:
    from .engine.checkpoint import load_checkpoint
    from .engine.embedding_tools import explain_image
    from .engine.segmenter import load_model

    data = args.data or load_checkpoint(args.model)[1].get("data_root")
    if data is None:
        raise ValueError("the model does not record its training data; pass --data DIR")
    written = explain_image(load_model(args.model, device=_device(args.device)), args.image, args.out,
                            data_root=data, k=args.k, overwrite=args.overwrite)
    print(f"wrote {len(written)} segment panel(s) to {args.out}")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from .engine.demo import run_demo
    from .metrics.report import format_instance_table

    res = run_demo(args.out, method=args.method, minutes=args.minutes, device=_device(args.device),
                   progress=not args.no_progress)
    print(format_instance_table(res.results))
    print(f"trained for {res.train_seconds:.0f} s; overlays: {res.out / 'pred'}/*_overlay.png; "
          f"model: {res.out / 'run'}")
    return 0


def _one_line(err: BaseException) -> str:
    """The message of ``err``; an ``OSError`` as "FILE: reason" (no errno tuple, no traceback)."""
    if isinstance(err, KeyError) and err.args:
        return str(err.args[0])
    if isinstance(err, OSError) and err.strerror:  # raised by the OS, not by our code with a message
        where = f"{err.filename}: " if err.filename else ""
        hint = {PermissionError: "check the permissions or choose another path",
                IsADirectoryError: "give a file, not a folder", NotADirectoryError: "a file is in the way of a folder",
                FileExistsError: "a file is in the way of a folder"}.get(type(err), "check the path")
        return f"{where}{err.strerror.lower()}; {hint}"
    return str(err)


COMMANDS = {"synth": _cmd_synth, "train": _cmd_train, "predict": _cmd_predict, "evaluate": _cmd_evaluate,
            "demo": _cmd_demo, "check": _cmd_check, "boundaries": _cmd_boundaries, "proposals": _cmd_proposals,
            "explain": _cmd_explain, "regroup": _cmd_regroup, "models": _cmd_models, "export": _cmd_export}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``pixelgroup`` command; returns the exit code."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(message)s")
    try:
        return COMMANDS[args.command](args)
    except (OSError, ValueError, KeyError, RuntimeError) as err:
        if args.verbose:
            raise
        print(f"pixelgroup {args.command}: error: {_one_line(err)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        hint = ("finished files are kept and skipped on a re-run" if args.command == "predict"
                else "resume training with --resume")
        print(f"interrupted; {hint}", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
