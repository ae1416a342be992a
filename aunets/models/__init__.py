"""Training and offline evaluation: data sets, synthetic and photo-real faces, training, evaluation, building
engine bundles from a training run. Builds on aunets.engines, aunets.core and aunets.stream; nothing imports it
but the CLI."""
