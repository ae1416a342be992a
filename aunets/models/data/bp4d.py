"""BP4D in the original AUNets layout, with the three DRML subject folds.

Layout (as in the AUNets code release)::

    ROOT/<mode>/fold_<k>/AU<xx>/{train,val,test}.txt      k = 0, 1, 2 (the DRML subject folds)

Each line is ``<image path> <0|1>``: a face image (e.g. ``.../Faces/F001/T1/0123.jpg``) and whether AU xx is
present. The flow image of a frame is the same path with ``Faces`` replaced by ``Faces_Flow``. Paths may be
absolute or relative to ROOT; ``path_map`` rewrites prefixes (``{"/old/datasets": "/new/place"}``) when the
lists were written on another machine. Subject and task are the two folders above the image, the frame
number its file name. BP4D is frontal only: every frame gets the frontal view id.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

from aunets.core.errors import ConfigError
from aunets.core.view import DEFAULT_VIEW_GRID
from aunets.models.data.sample import FrameRecord, FrameSet

SPLITS: tuple[str, ...] = ("train", "val", "test")
_AU_DIR = re.compile(r"^AU(\d+)$", re.IGNORECASE)


def is_bp4d(root: Path) -> bool:
    """True if ``root`` looks like ``<mode>/fold_<k>/AU<xx>/*.txt``."""
    root = Path(root)
    return root.is_dir() and any(root.glob("*/fold_*/AU*/*.txt"))


def bp4d_modes(root: Path | str) -> list[str]:
    return sorted(p.name for p in Path(root).iterdir() if p.is_dir() and any(p.glob("fold_*")))


def bp4d_folds(root: Path | str, mode: str | None = None) -> list[int]:
    """Fold numbers present under ``ROOT/<mode>``."""
    base = Path(root) / (mode or _only_mode(Path(root)))
    return sorted(int(p.name.split("_", 1)[1]) for p in base.glob("fold_*") if p.is_dir())


def _only_mode(root: Path) -> str:
    modes = bp4d_modes(root)
    if not modes:
        raise ConfigError(f"{root} holds no BP4D lists (<mode>/fold_<k>/AU<xx>/train.txt)")
    if len(modes) > 1:
        raise ConfigError(f"{root} holds several BP4D modes {modes}; name one in the config (data.mode)")
    return modes[0]


def load_bp4d(
    root: Path | str,
    fold: int = 0,
    splits: tuple[str, ...] = SPLITS,
    mode: str | None = None,
    aus: tuple[int, ...] | None = None,
    path_map: Mapping[str, str] | None = None,
    flow_from: str = "Faces",
    flow_to: str = "Faces_Flow",
) -> FrameSet:
    """Frames of one fold; each record's ``split`` is the list it came from. Labels an AU list does not
    mention for a frame are -1 (unknown). ``aus``: restrict to these AUs (default: every AU folder)."""
    root = Path(root)
    mode = mode or _only_mode(root)
    fold_dir = root / mode / f"fold_{fold}"
    if not fold_dir.is_dir():
        raise ConfigError(f"BP4D fold {fold} not found: {fold_dir} is missing (folds here: {bp4d_folds(root, mode)})")
    au_dirs = {int(m.group(1)): p for p in fold_dir.iterdir() if p.is_dir() and (m := _AU_DIR.match(p.name))}
    wanted = tuple(sorted(au_dirs)) if aus is None else tuple(aus)
    missing = [a for a in wanted if a not in au_dirs]
    if missing:
        raise ConfigError(f"{fold_dir} has no list for AU(s) {missing}; AUs there: {sorted(au_dirs)}")
    # (split, path) -> labels per AU
    table: dict[tuple[str, str], list[int]] = {}
    order: list[tuple[str, str]] = []
    for col, au in enumerate(wanted):
        for split in splits:
            path = au_dirs[au] / f"{split}.txt"
            if not path.is_file():
                continue
            for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                if not line.strip():
                    continue
                parts = line.split()
                if len(parts) != 2 or parts[1] not in ("0", "1"):
                    raise ConfigError(f"{path}:{lineno}: expected '<path> 0|1', got {line!r}")
                key = (split, parts[0])
                if key not in table:
                    table[key] = [-1] * len(wanted)
                    order.append(key)
                table[key][col] = int(parts[1])
    frontal = DEFAULT_VIEW_GRID.frontal
    records = []
    for split, raw in order:
        image = _resolve(raw, root, path_map)
        subject, task = image.parent.parent.name, image.parent.name
        try:
            frame = int(re.sub(r"\D", "", image.stem) or "0")
        except ValueError:
            frame = 0
        flow = Path(str(image).replace(f"/{flow_from}/", f"/{flow_to}/")) if f"/{flow_from}/" in str(image) else None
        records.append(
            FrameRecord(
                sequence=f"{subject}/{task}",
                subject=subject,
                frame=frame,
                image=image,
                labels=tuple(table[(split, raw)]),
                view=frontal,
                box=None,
                flow_image=flow,
                split=split,
            )
        )
    records.sort(key=lambda r: (r.split, r.sequence, r.frame))
    return FrameSet(aus=wanted, records=tuple(records), kind="bp4d", source=str(root),
                    info={"fold": fold, "mode": mode})


def _resolve(raw: str, root: Path, path_map: Mapping[str, str] | None) -> Path:
    text = raw
    for old, new in (path_map or {}).items():
        if text.startswith(old):
            text = new + text[len(old):]
            break
    p = Path(text)
    return p if p.is_absolute() else root / p
