"""OpenCV's CUDA optical flow, detected at run time.

Only OpenCV builds compiled with CUDA (``WITH_CUDA=ON`` and the ``cudaoptflow`` contrib module) have these
classes; **the opencv-python / opencv-contrib-python wheels on PyPI do not**: with them
:func:`cv_cuda_flow_status` reports why and no backend is registered. Backends (when available):

``cv-cuda-brox``
    ``cv2.cuda.BroxOpticalFlow`` with the original AUNets parameters (alpha 0.197, gamma 50, scale 0.8,
    10 inner, 77 outer and 10 solver iterations), on images scaled to 0..1.
``cv-cuda-tvl1``
    ``cv2.cuda.OpticalFlowDual_TVL1`` with OpenCV's defaults.
``cv-cuda-nvof``
    ``cv2.cuda.NvidiaOpticalFlow_2_0`` (the hardware optical-flow engine of Turing and later GPUs), 1x1
    output grid, slow preset, converted from fixed point to float pixels.

None of these could be run while writing this module (no CUDA build of OpenCV was at hand): they follow
OpenCV's documented Python API and are untested.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import partial
from typing import Any

import cv2
import numpy as np

from aunets.core.errors import ConfigError
from aunets.core.flow import FlowBackend, check_pair

log = logging.getLogger(__name__)
_cv: Any = cv2  # the CUDA classes exist only in CUDA builds, unknown to the type stubs

# AUNets (Romero et al.) computed flow with OpenCV's CUDA Brox implementation and these parameters.
AUNETS_BROX = {"alpha": 0.197, "gamma": 50.0, "scale_factor": 0.8, "inner_iterations": 10,
               "outer_iterations": 77, "solver_iterations": 10}

_CLASSES = {"cv-cuda-brox": "BroxOpticalFlow_create", "cv-cuda-tvl1": "OpticalFlowDual_TVL1_create",
            "cv-cuda-nvof": "NvidiaOpticalFlow_2_0_create"}


def cv_cuda_flow_status() -> dict[str, str]:
    """Backend name -> ``"available"`` or the reason it is not (no CUDA device, class missing from the build)."""
    cuda = getattr(cv2, "cuda", None)
    try:
        devices = int(cuda.getCudaEnabledDeviceCount()) if cuda is not None else 0
    except cv2.error:
        devices = 0
    status: dict[str, str] = {}
    for name, factory in _CLASSES.items():
        if cuda is None or devices == 0:
            status[name] = ("OpenCV was built without CUDA (the PyPI wheels are); build OpenCV with WITH_CUDA=ON "
                            "and opencv_contrib's cudaoptflow to use it")
        elif not hasattr(cuda, factory):
            status[name] = f"this OpenCV CUDA build lacks cv2.cuda.{factory} (cudaoptflow module not built)"
        else:
            status[name] = "available"
    return status


class _CvCudaFlow:
    name = "cv-cuda"

    def compute(self, prev: np.ndarray, cur: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _upload(self, image: np.ndarray) -> Any:
        gpu = _cv.cuda_GpuMat()
        gpu.upload(image)
        return gpu

    @staticmethod
    def _check(prev: np.ndarray, cur: np.ndarray) -> None:
        check_pair(prev, cur)


class CvCudaBroxFlow(_CvCudaFlow):
    """``cv2.cuda.BroxOpticalFlow`` with the AUNets parameters (see :data:`AUNETS_BROX`)."""

    name = "cv-cuda-brox"

    def __init__(self, **params: float) -> None:
        p = {**AUNETS_BROX, **params}
        self._flow = _cv.cuda.BroxOpticalFlow_create(
            p["alpha"], p["gamma"], p["scale_factor"], int(p["inner_iterations"]), int(p["outer_iterations"]),
            int(p["solver_iterations"]),
        )

    def compute(self, prev: np.ndarray, cur: np.ndarray) -> np.ndarray:
        self._check(prev, cur)
        a = self._upload(prev.astype(np.float32) / 255.0)
        b = self._upload(cur.astype(np.float32) / 255.0)
        flow = self._flow.calc(a, b, None)
        return np.asarray(flow.download(), dtype=np.float32)


class CvCudaTVL1Flow(_CvCudaFlow):
    """``cv2.cuda.OpticalFlowDual_TVL1`` with OpenCV's default parameters."""

    name = "cv-cuda-tvl1"

    def __init__(self) -> None:
        self._flow = _cv.cuda.OpticalFlowDual_TVL1_create()

    def compute(self, prev: np.ndarray, cur: np.ndarray) -> np.ndarray:
        self._check(prev, cur)
        flow = self._flow.calc(self._upload(prev), self._upload(cur), None)
        return np.asarray(flow.download(), dtype=np.float32)


class CvCudaNvidiaFlow(_CvCudaFlow):
    """NVIDIA's hardware optical flow (``cv2.cuda.NvidiaOpticalFlow_2_0``), sized on the first pair."""

    name = "cv-cuda-nvof"

    def __init__(self) -> None:
        self._flow: Any = None
        self._size: tuple[int, int] | None = None

    def compute(self, prev: np.ndarray, cur: np.ndarray) -> np.ndarray:
        self._check(prev, cur)
        size = (prev.shape[1], prev.shape[0])
        if self._flow is None or self._size != size:
            self._flow = _cv.cuda.NvidiaOpticalFlow_2_0_create(
                size,
                _cv.cuda.NvidiaOpticalFlow_2_0_NV_OF_PERF_LEVEL_SLOW,
                _cv.cuda.NvidiaOpticalFlow_2_0_NV_OF_OUTPUT_VECTOR_GRID_SIZE_1,
            )
            self._size = size
        flow, _cost = self._flow.calc(prev, cur, None)
        return np.asarray(self._flow.convertToFloat(flow, None), dtype=np.float32)


_FACTORIES = {"cv-cuda-brox": CvCudaBroxFlow, "cv-cuda-tvl1": CvCudaTVL1Flow, "cv-cuda-nvof": CvCudaNvidiaFlow}


def create_cv_cuda_flow(name: str) -> _CvCudaFlow:
    """One of the backends above; raises :class:`ConfigError` with the reason when it is not available."""
    status = cv_cuda_flow_status()
    if name not in status:
        raise ConfigError(f"unknown OpenCV CUDA flow backend {name!r}; choose one of {sorted(status)}")
    if status[name] != "available":
        raise ConfigError(f"flow backend {name!r} is not available: {status[name]}; use torch-tvl1-cuda or dis")
    return _FACTORIES[name]()


def flow_backends() -> dict[str, Callable[[], FlowBackend]]:
    """Every OpenCV CUDA backend this OpenCV build has (none with the PyPI wheels), for
    :mod:`aunets.core.flow_registry`."""
    table: dict[str, Callable[[], FlowBackend]] = {}
    for name, state in cv_cuda_flow_status().items():
        if state == "available":
            table[name] = partial(create_cv_cuda_flow, name)
        else:
            log.debug("flow backend %s not registered: %s", name, state)
    return table
