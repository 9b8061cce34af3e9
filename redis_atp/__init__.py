"""redis-atp: EOxServer ATP's process tracker on Redis, with a worker fleet.

``Tracker`` is the object API; :mod:`redis_atp.aio` its asyncio twin; :mod:`redis_atp.tracker`
is the seed's module API.
"""

from .client import Tracker
from .errors import (
    DuplicateTask,
    Fail,
    InvalidInput,
    InvalidTransition,
    QueueEmpty,
    QueueException,
    QueueFull,
    RedisATPError,
    Retry,
    StaleTask,
    TaskCancelled,
    TaskNotFound,
    TaskTypeInUse,
    TaskTypeNotFound,
)
from .handle import TaskHandle
from .models import Claim, Event, Schedule, StartedTask, TaskInfo, TaskType
from .protocol.namespace import EvictionPolicyWarning
from .status import STATUS2TEXT, TEXT2STATUS, Status
from .taskstatus import AsyncTaskStatus, DummyLock, TaskStatus, dbLocker

__version__ = "0.1.0"

__all__ = [
    "Tracker", "TaskType", "Claim", "Schedule", "StartedTask", "TaskInfo", "Event", "TaskHandle", "TaskStatus",
    "AsyncTaskStatus", "Status", "STATUS2TEXT",
    "TEXT2STATUS",
    "DummyLock", "dbLocker", "EvictionPolicyWarning",
    "RedisATPError", "QueueException", "QueueEmpty", "QueueFull", "TaskNotFound",
    "TaskTypeNotFound", "DuplicateTask", "InvalidInput", "InvalidTransition", "StaleTask",
    "TaskTypeInUse", "Retry", "Fail", "TaskCancelled",
]
