"""The stream hub: generations, their steps, logs, handles and coordination.

``hub.py`` (``StreamHub``) starts and finds streams; ``generation.py`` runs one;
``steps.py`` is the step seam; ``log.py`` the event-log seam; ``handle.py`` what
routes and extensions see; ``coordinator.py`` where logs live across instances.
"""

from lmstream.hub.coordinator import Coordinator, LocalCoordinator
from lmstream.hub.generation import Generation
from lmstream.hub.handle import (
    GenerationObserver,
    Preprocessor,
    RunningStream,
    StreamHandle,
    StreamState,
    each_event,
)
from lmstream.hub.hub import StreamHub
from lmstream.hub.log import Batch, EventLog, Listener, MemoryLog, ReplayGone
from lmstream.hub.steps import ModelStep, Plan, Planner, Round, Run, Step

__all__ = [
    "Batch",
    "Coordinator",
    "EventLog",
    "Generation",
    "GenerationObserver",
    "Listener",
    "LocalCoordinator",
    "MemoryLog",
    "ModelStep",
    "Plan",
    "Planner",
    "Preprocessor",
    "ReplayGone",
    "Round",
    "Run",
    "RunningStream",
    "Step",
    "StreamHandle",
    "StreamHub",
    "StreamState",
    "each_event",
]
