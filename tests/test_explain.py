"""``aunets explain``: occlusion maps and Grad-CAM of the real default engine on rendered synthetic apex faces."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from aunets.core.errors import ConfigError
from tests.conftest import REPO


@pytest.fixture(scope="module")
def engine() -> Any:
    from aunets.engines.engine import load_engine

    return load_engine(None, "onnx", 2)


@pytest.fixture(scope="module")
def apex_faces(engine: Any) -> dict[int, Any]:
    """AU -> FaceInput of the synthetic frontal face at the apex of that AU alone (found by YuNet, as a user's)."""
    from aunets.models.synth.apex import render_apex_frame
    from aunets.stream.explain import face_input, largest_face
    from aunets.stream.tracking import YuNetDetector

    detector = YuNetDetector()
    out = {}
    for au in (1, 12):
        frame = render_apex_frame({au: 1.0})
        out[au] = face_input(engine, frame, None, largest_face(frame, detector))
    return out


@pytest.mark.slow
@pytest.mark.parametrize(("au", "half"), [(1, "upper"), (12, "lower")])
def test_occlusion_map_of_an_au_falls_where_it_acts(engine: Any, apex_faces: dict[int, Any], au: int,
                                                    half: str) -> None:
    """AU1 (inner brow raiser) acts above the eyes, AU12 (lip corner puller) at the mouth: on a face showing
    that AU alone, most of the AU's occlusion mass lies in that half of the crop."""
    from aunets.stream.explain import ExplainConfig, occlusion_maps, pick_view

    face = apex_faces[au]
    ex = occlusion_maps(engine, face, ExplainConfig(aus=(au,)), pick_view(engine, face.crop))
    assert ex.probabilities[0] > 0.3, f"AU{au} is not detected on its own apex face (p {ex.probabilities[0]:.2f})"
    mass = ex.mass_fractions(au)
    assert mass[half] > 0.6, f"AU{au} map: only {mass[half]:.0%} of its mass in the {half} half ({mass})"


def test_occlusion_maps_have_the_crop_size_and_are_deterministic(engine: Any, apex_faces: dict[int, Any]) -> None:
    from aunets.stream.explain import ExplainConfig, occlusion_maps

    face = apex_faces[12]
    config = ExplainConfig(aus=(6, 12), patch=32, stride=16)
    a = occlusion_maps(engine, face, config, 4)
    b = occlusion_maps(engine, face, config, 4)
    size = engine.manifest.input.height
    assert face.crop.shape == (size, size, 3)
    assert a.rgb.shape == (2, size, size) and a.flow is not None and a.flow.shape == (2, size, size)
    assert a.rgb.dtype == np.float32
    np.testing.assert_array_equal(a.rgb, b.rgb)
    np.testing.assert_array_equal(a.flow, b.flow)
    # one image: the flow half is the frame's flow with itself (no motion), so occluding it changes nothing
    assert np.abs(a.flow).max() < 1e-6
    # the unoccluded probabilities are the engine's own on the same input
    from aunets.engines.preprocess import compose_input

    probs, _ = engine.infer(compose_input(face.crop, face.flow_image, engine.manifest.input)[None], [4])
    np.testing.assert_allclose(a.probabilities, probs[0, [engine.aus.index(6), engine.aus.index(12)]], atol=1e-6)


def test_gradcam_maps_have_the_crop_size_and_are_deterministic(engine: Any, apex_faces: dict[int, Any]) -> None:
    pytest.importorskip("torch")
    from aunets.stream.explain import GradCam

    cam = GradCam(engine)
    face = apex_faces[1]
    a = cam.maps(face, (1, 12), 4)
    b = cam.maps(face, (1, 12), 4)
    size = engine.manifest.input.height
    assert a.rgb.shape == (2, size, size) and a.flow is not None and a.flow.shape == (2, size, size)
    # MobileNetV2's blocks at its two coarsest resolutions on the 112x224 input: 7 at 7x14, 4 + the 1x1 conv at 4x7
    assert a.extra["cells"] == [[7, 14], [4, 7]] and a.extra["layers"] == 12
    np.testing.assert_allclose(a.rgb, b.rgb, rtol=1e-5, atol=1e-6)
    assert (a.rgb >= 0).all() and a.rgb[0].max() > 0
    # the probabilities of the torch model rebuilt from safetensors are the float twin's (the torch runtime's;
    # the int8 ONNX engine follows it over a clip: tests/test_quantize.py)
    from aunets.engines.engine import load_engine
    from aunets.engines.preprocess import compose_input

    x = compose_input(face.crop, face.flow_image, engine.manifest.input)[None]
    twin, _ = load_engine(None, "torch").infer(x, [4])
    np.testing.assert_allclose(a.probabilities, twin[0, [0, engine.aus.index(12)]], atol=1e-4)


@pytest.mark.parametrize(("au", "half"), [(1, "upper"), (12, "lower")])
def test_gradcam_follows_the_occlusion_map(engine: Any, apex_faces: dict[int, Any], au: int, half: str) -> None:
    """On the face showing AU1 (brows) or AU12 (mouth) alone, the Grad-CAM map correlates with the occlusion map
    (the reference) and peaks in the half of the crop where the AU acts (the first, last-layer Grad-CAM did
    neither: r 0.44 and 0.25, benchmarks/results/explain_agreement.json)."""
    pytest.importorskip("torch")
    from aunets.stream.explain import ExplainConfig, GradCam, occlusion_maps

    face = apex_faces[au]
    occ = np.clip(occlusion_maps(engine, face, ExplainConfig(aus=(au,)), 4).rgb[0], 0, None)
    cam = GradCam(engine).maps(face, (au,), 4).rgb[0]
    r = float(np.corrcoef(occ.ravel(), cam.ravel())[0, 1])
    assert r > 0.6, f"AU{au}: Grad-CAM against occlusion r = {r:.2f}"
    row = int(np.unravel_index(int(np.argmax(cam)), cam.shape)[0])
    assert (row < cam.shape[0] // 2) == (half == "upper"), f"AU{au}: Grad-CAM peaks at row {row}"


def test_overlay_is_blue_where_nothing_changes_and_red_at_the_drop() -> None:
    from aunets.stream.explain_sheet import draw_overlay

    crop = np.full((112, 112, 3), 128, np.uint8)
    heat = np.zeros((112, 112), np.float32)
    heat[80:100, 20:40] = 0.5
    out = draw_overlay(crop, heat, size=224, vmax=0.5)
    assert out.shape == (224, 224, 3) and out.dtype == np.uint8
    hot, cold = out[180, 60].astype(int), out[20, 200].astype(int)
    assert hot[0] > hot[2] + 80, f"hot spot not red: {hot}"
    assert cold[2] > cold[0] + 20, f"no-effect area not blue: {cold}"


def test_bad_input_is_refused_with_the_fix(engine: Any) -> None:
    from aunets.stream.explain import ExplainConfig, largest_face, patch_positions, resolve_aus
    from aunets.stream.tracking import YuNetDetector

    with pytest.raises(ConfigError, match="choose from --au 1,2,4"):
        resolve_aus(engine, (5,))
    with pytest.raises(ConfigError, match="--patch"):
        ExplainConfig(patch=0)
    with pytest.raises(ConfigError, match="--stride"):
        ExplainConfig(patch=8, stride=16)
    with pytest.raises(ConfigError, match="choose one of"):
        ExplainConfig(method="lime")
    with pytest.raises(ConfigError, match="larger than the engine's 112 px crop"):
        patch_positions(112, 200, 8)
    with pytest.raises(ConfigError, match="no face found in a grey wall"):
        largest_face(np.full((240, 320, 3), 90, np.uint8), YuNetDetector(), "a grey wall")


def test_patch_positions_cover_the_crop_to_its_edge() -> None:
    from aunets.stream.explain import patch_positions

    assert patch_positions(112, 24, 8)[-1] == 88
    assert patch_positions(112, 32, 24) == [0, 24, 48, 72, 80]


def test_cli_writes_sheets_maps_and_config(tmp_path: Path, engine: Any) -> None:
    from aunets.cli import main
    from aunets.models.synth.apex import render_apex_frame

    image = tmp_path / "au12.png"
    cv2.imwrite(str(image), render_apex_frame({12: 1.0}))
    out = tmp_path / "out"
    assert main(["explain", str(image), "--au", "6,12", "--patch", "32", "--stride", "16", "--out", str(out),
                 "--no-progress"]) == 0  # fmt: skip
    sheet = cv2.imread(str(out / "frame000000_sheet.png"))
    assert sheet is not None and sheet.shape[1] >= 600
    assert (out / "frame000000_AU12.png").is_file() and (out / "frame000000_AU06.png").is_file()
    maps = np.load(out / "frame000000_maps.npz")
    assert maps["rgb"].shape == (2, 112, 112) and list(maps["aus"]) == [6, 12]
    data = json.loads((out / "explain.json").read_text())
    assert data["config"]["patch"] == 32 and data["config"]["aus"] == [6, 12]
    assert data["frames"][0]["rgb_mass"]["12"]["lower"] > 0.5


def test_cli_errors_name_the_fix(tmp_path: Path, capsys: pytest.CaptureFixture[str], engine: Any) -> None:
    from aunets.cli import main

    clip = REPO / "media" / "pexels_wolfganglanger_expressions.mp4"
    assert main(["explain", str(clip), "--frames", "5000", "--out", str(tmp_path)]) == 1
    assert "--frames 5000 is out of range" in capsys.readouterr().err
    assert main(["explain", str(clip), "--au", "99", "--out", str(tmp_path)]) == 1
    assert "choose from --au" in capsys.readouterr().err
    assert main(["explain", str(clip), "--frames", "a-b", "--out", str(tmp_path)]) == 1
    assert "--frames 10,50" in capsys.readouterr().err
    blank = tmp_path / "blank.png"
    cv2.imwrite(str(blank), np.full((240, 320, 3), 90, np.uint8))
    assert main(["explain", str(blank), "--out", str(tmp_path / "o")]) == 1
    assert "no face found in blank.png" in capsys.readouterr().err


def test_video_frames_use_the_true_previous_frame(tmp_path: Path, engine: Any) -> None:
    """On a video the flow half comes from the previous frame: it is not the still colour everywhere."""
    from aunets.stream.explain import face_input, largest_face, still_flow_colour
    from aunets.stream.tracking import YuNetDetector

    cap = cv2.VideoCapture(str(REPO / "media" / "pexels_wolfganglanger_expressions.mp4"))
    frames = [cap.read()[1] for _ in range(3)]
    cap.release()
    box = largest_face(frames[2], YuNetDetector())
    moving = face_input(engine, frames[2], frames[0], box)
    still = face_input(engine, frames[2], None, box)
    assert moving.flow_image is not None and still.flow_image is not None
    assert (still.flow_image == still_flow_colour(engine)).all()
    assert not (moving.flow_image == still_flow_colour(engine)).all()


@pytest.mark.slow
def test_cli_gradcam_on_an_image(tmp_path: Path, engine: Any, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("torch")
    from aunets.cli import main
    from aunets.models.synth.apex import render_apex_frame

    image = tmp_path / "au1.png"
    cv2.imwrite(str(image), render_apex_frame({1: 1.0}))
    assert main(["explain", str(image), "--method", "gradcam", "--au", "1", "--out", str(tmp_path / "g"),
                 "--no-progress"]) == 0  # fmt: skip
    data = json.loads((tmp_path / "g" / "explain.json").read_text())
    assert data["config"]["method"] == "gradcam" and data["frames"][0]["cells"] == [[7, 14], [4, 7]]
    assert cv2.imread(str(tmp_path / "g" / "frame000000_sheet.png")) is not None
    assert main(["explain", str(image), "--view", "42", "--out", str(tmp_path / "v")]) == 1
    assert "--view 42 is not one of" in capsys.readouterr().err
