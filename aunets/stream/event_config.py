"""How AU states and events are debounced: :class:`EventConfig` (standard library only, so the CLI's help can
show its defaults without importing numpy). The logic is :class:`aunets.stream.events.EventDetector`."""

from __future__ import annotations

from dataclasses import dataclass

from aunets.core.errors import ConfigError


@dataclass(frozen=True)
class EventConfig:
    """How per-frame probabilities become on/off states and events.

    ``on_delta``, ``off_delta``: probability margins above / below each AU's threshold to turn on / off (0..1).
    ``min_on_s``, ``min_off_s``: seconds the probability must stay on / off before the state follows.
    """

    # chosen by benchmarks/event_hysteresis.py on real clips (GRID); EventConfig(0, 0, 0, 0) is the plain threshold
    on_delta: float = 0.1
    off_delta: float = 0.0
    min_on_s: float = 0.08
    min_off_s: float = 0.32

    def __post_init__(self) -> None:
        for name, option in (("on_delta", "--on-delta"), ("off_delta", "--off-delta")):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ConfigError(f"{option} must be a probability margin in 0..1 (0.05 is small), got "
                                  f"{getattr(self, name)}")  # fmt: skip
        for name, option in (("min_on_s", "--min-on"), ("min_off_s", "--min-off")):
            if not 0.0 <= getattr(self, name) <= 60.0:
                raise ConfigError(f"{option} must be 0..60 seconds, got {getattr(self, name)}")
