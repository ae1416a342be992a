"""Engine bundles: format (manifest + weight files), build, and runtimes (ONNX Runtime, torch)."""
