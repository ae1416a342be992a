"""The live runtime: capture, face tracking, the per-frame pipeline, calibration, sinks, serve and batch."""
