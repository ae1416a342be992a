"""Engine bundles: format (manifest + weight files), preprocessing, network definitions, and runtimes
(ONNX Runtime, torch, CUDA, TensorRT). Nothing here needs the training code."""
