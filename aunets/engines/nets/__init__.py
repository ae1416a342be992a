"""Network architectures: VGG16 and MobileNetV2 backbones, input fusion, HydraNet, per-AU ensembles, view classifier.

Build them through :func:`aunets.engines.registry.create_model`, not directly.
"""
