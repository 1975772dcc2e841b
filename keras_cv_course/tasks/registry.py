"""The task registry: every task the package knows, by name.

Each module in ``keras_cv_course/tasks/`` registers its task object with
``register_task`` when it is imported, and ``keras_cv_course.tasks`` imports
every module in its folder, so a new task is one new file. A test or a
notebook can register a task of its own the same way.
"""

from keras_cv_course.errors import KCCError, unknown_name_error

_TASKS = {}


def register_task(task):
    """Adds a task object (a ``tasks.Task``) under ``task.name``; returns it."""
    if not getattr(task, "name", None):
        raise KCCError(f"a task needs a name, got {task!r}")
    if task.name in _TASKS:
        raise KCCError(f"task {task.name!r} is registered twice")
    _TASKS[task.name] = task
    return task


def unregister_task(name):
    """Removes a task, e.g. one a test registered."""
    _TASKS.pop(name, None)


def get_task(name):
    """Returns the registered task ``name``.

    Raises:
        KCCError: unknown name; the message lists the closest names.
    """
    if name not in _TASKS:
        raise unknown_name_error("task", name, _TASKS)
    return _TASKS[name]


def list_tasks():
    """Names of every registered task, sorted."""
    return sorted(_TASKS)
