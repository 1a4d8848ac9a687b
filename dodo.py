"""doit tasks of this repository: buildlib does the work; see README.md."""
from buildlib.tasks import (  # noqa: F401
    DOIT_CONFIG, task_build, task_build_all, task_explain, task_graph, task_history, task_lock, task_prefetch,
    task_push, task_push_all, task_render, task_status)
