"""AUNets Live: facial Action Units from live video, streamed to other programs.

The package is layered; every import points down (``tests/test_layers.py`` checks it)::

    aunets.cli        the ``aunets`` command: dispatches to the subcommands of the layers below
    aunets.models     training: data sets, synthetic faces, training, evaluation, building engine bundles
    aunets.stream     the live runtime: capture, tracking, pipeline, sinks (ZeroMQ, CSV, LSL), serve, batch
    aunets.engines    running a bundle: its format, preprocessing, network definitions, runtimes
    aunets.core       shared vocabulary: AUs, views, errors, frames, faces, crop, flow, results, median
"""

__version__ = "0.1.0"
