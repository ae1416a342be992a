"""AUNets Live runtime: capture, face tracking, optical flow, AU engines, temporal smoothing, publishing."""

__version__ = "0.1.0"
