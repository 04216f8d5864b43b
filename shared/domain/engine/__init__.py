"""The policy engine: pure functions from a subject's events to its retention clocks."""

from shared.domain.engine.clock import ClockState, RetentionClock
from shared.domain.engine.evaluate import RetentionEngine, evaluate

__all__ = ["ClockState", "RetentionClock", "RetentionEngine", "evaluate"]
