"""Errors the engine package raises; nothing from SpiffWorkflow leaks past this package."""


class EngineError(Exception):
    """Base class for engine failures that callers map to user-facing answers."""


class DiagramError(EngineError):
    """A diagram that cannot be deployed, with the element and file to look at."""

    def __init__(self, message: str, element_id: str = "", file_name: str = "", line: int | None = None):
        self.element_id = element_id
        self.file_name = file_name
        self.line = line
        super().__init__(message)

    def as_dict(self) -> dict:
        return {
            "message": str(self),
            "element_id": self.element_id,
            "file": self.file_name,
            "line": self.line,
        }


class TaskNotReady(EngineError):
    """The task exists but cannot be completed in its current state (e.g. a timer cancelled it)."""

    def __init__(self, task_id: str, state: str):
        self.task_id = task_id
        self.state = state
        super().__init__(f"task {task_id} is {state}, not READY")


class TaskNotFound(EngineError):
    pass


class ScriptFailure(EngineError):
    """Diagram code failed while the engine ran a step; names the element where it happened."""

    def __init__(self, message: str, element_id: str = ""):
        self.element_id = element_id
        super().__init__(message)
