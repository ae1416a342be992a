"""The live browser demo over WebRTC (``aunets serve``, extra ``[webrtc]``).

The browser sends its webcam to an aiortc server, which runs the same :class:`~aunets.stream.pipeline.Pipeline` as
``aunets run`` and sends per-frame results back on an unordered, no-retransmit data channel (and publishes
them on ZeroMQ). See ``docs/webrtc.md``. Modules: :mod:`.marker` (frame ids drawn into the video),
:mod:`.ice` (ICE servers and the loopback host candidate), :mod:`.session` (one peer), :mod:`.server`
(HTTP signalling and the static page), :mod:`.cli`.
"""
