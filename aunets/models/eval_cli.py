"""``aunets eval``: F1 per AU / view with no, centred and causal median; view classifier precision/recall."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", type=Path, required=True,
                        help="dataset: synthetic generator output, BP4D/FERA tree or CSV manifest")
    parser.add_argument("--engine", type=Path, default=None, help="engine bundle (default: the embedded engine)")
    parser.add_argument("--runtime", default="onnx", help="engine runtime: onnx (default), torch, cuda, trt")
    parser.add_argument("--split", default="test", help="split to score (default test; 'all' for every frame)")
    parser.add_argument("--fold", type=int, default=0, help="BP4D fold (default 0)")
    parser.add_argument("--view-source", choices=("classifier", "truth"), default="classifier",
                        help="pick each frame's detector with the view classifier (default) or the true view")
    parser.add_argument("--max-frames", type=int, default=0, help="cap the frames, by whole sequences (0: all)")
    parser.add_argument("--margin", type=float, default=1.3, help="crop side / face box side (default 1.3)")
    parser.add_argument("--threads", type=int, default=1, help="engine threads (default 1)")
    parser.add_argument("--json", type=Path, default=None, help="write the report as JSON (and a PNG beside it)")
    parser.add_argument("--markdown", type=Path, default=None, help="write the report as markdown")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from aunets.engines.engine import load_engine
    from aunets.models.data import detect_layout, load_dataset
    from aunets.models.evaluate import EvalConfig, evaluate, plot_report, to_markdown

    engine = load_engine(args.engine, runtime=args.runtime, threads=args.threads)
    layout = detect_layout(args.data)
    frames = load_dataset(args.data, layout, **({"fold": args.fold} if layout == "bp4d" else {}))
    if args.split != "all":
        frames = frames.filter(split=args.split)
    config = EvalConfig(margin=args.margin, view_source=args.view_source, max_frames=args.max_frames)
    report = evaluate(engine, frames, config, progress=not args.no_progress)
    report["engine_path"] = str(engine.path)
    report["split"] = args.split
    text = to_markdown(report)
    print(text)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        plot_report(report, args.json.with_suffix(".png"))
    if args.markdown:
        args.markdown.write_text(text, encoding="utf-8")
    return 0
