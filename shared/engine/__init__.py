"""The policy engine: pure functions from a subject's events to its retention clocks."""

from shared.engine.clock import ClockState, RetentionClock
from shared.engine.evaluate import RetentionEngine, evaluate

__all__ = ["ClockState", "RetentionClock", "RetentionEngine", "evaluate"]
