"""AU intensity means what OpenFace's ``AUxx_r`` does: 0 while the AU is absent (state off), rising with it while on;
the same value in the results, the ``au.frame`` message and the CSV. Runs the shipped default engine (it has an
intensity output) on the laugh of the bundled clip."""

from __future__ import annotations

import csv
from pathlib import Path

import cv2
import numpy as np

from aunets.core.au import au_key
from aunets.core.frame import Frame
from aunets.core.results import FaceResult
from aunets.stream.calibration import CalibrationConfig
from aunets.stream.csv_sink import OpenFaceCsvWriter
from aunets.stream.messages import frame_payload
from aunets.stream.pipeline import Pipeline, PipelineConfig
from tests.conftest import CLIP

LAUGH = range(250, 300)  # frames of the bundled clip: laughing (from 9.5 s at 25 fps)


def _laugh_results() -> tuple[Pipeline, list[FaceResult]]:
    # calibration off: a track that starts mid-laugh would take the laugh for this face's neutral
    pipeline = Pipeline(PipelineConfig(calibration=CalibrationConfig(enabled=False)))
    cap = cv2.VideoCapture(str(CLIP))
    cap.set(cv2.CAP_PROP_POS_FRAMES, LAUGH.start)
    results: list[FaceResult] = []
    for index in LAUGH:
        ok, image = cap.read()
        assert ok, f"cannot decode frame {index} of {CLIP}"
        results += pipeline.process(Frame(index, index * 40_000_000, 1e9 + index / 25, image))
    cap.release()
    results += pipeline.flush()
    return pipeline, [r for r in results if not r.no_face and not r.events_only]


def test_intensity_is_zero_while_an_au_is_off_and_rises_while_on(tmp_path: Path) -> None:
    pipeline, results = _laugh_results()
    assert pipeline.engine.has_intensity and len(results) >= 0.9 * len(LAUGH)
    on = np.array([[r.states[a] for a in pipeline.aus] for r in results])
    inten = np.array([[r.intensity[a] for a in pipeline.aus] for r in results])
    assert (inten[~on] == 0.0).all()  # absent: exactly 0, as OpenFace
    assert on.any() and (~on).any()  # both kinds of state are exercised
    assert (inten[on] >= 0.0).all() and inten[on].mean() > 0.5 and inten.max() <= 5.0
    i12 = pipeline.aus.index(12)
    assert on[:, i12].mean() > 0.5 and inten[on[:, i12], i12].mean() > 1.0  # the laugh: AU12 on with intensity
    # the au.frame message carries the same intensity, and so does the CSV's AUxx_r
    for r in results:
        payload = frame_payload(r, 0, r.t_wall)
        for a in pipeline.aus:
            assert payload["intensity"][au_key(a)] == round(r.intensity[a], 3)
            assert payload["state"][au_key(a)] == 0 or payload["intensity"][au_key(a)] >= 0.0
    path = tmp_path / "laugh.csv"
    writer = OpenFaceCsvWriter(path, pipeline.aus, fps=25.0, intensity=True)
    writer.publish_results(results)
    writer.close()
    rows = list(csv.DictReader(path.open(newline=""), skipinitialspace=True))
    assert len(rows) == len(results)
    for row in rows:
        for a in pipeline.aus:
            key = au_key(a)
            assert row[f"{key}_c"] == "1" or float(row[f"{key}_r"]) == 0.0
