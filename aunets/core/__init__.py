"""Shared vocabulary: AU set and names, views, errors, frames, faces and tracks, the crop, optical flow,
per-frame results and AU events, the sliding median. Imports nothing of the project above it."""
