"""doit tasks of this repository: buildlib does the work; see README.md."""
from buildlib.tasks import DOIT_CONFIG, task_build, task_build_all, task_prefetch, task_status  # noqa: F401
