"""The errors a user can cause or meet: each prints as one line, never as a traceback."""


class BuildlibError(Exception):
    """Something a person can act on; str() is the whole message."""


class SettingsError(BuildlibError):
    """A wrong [tool.buildlib] table, environment variable or command-line variable."""


class DockerfileError(BuildlibError):
    """A Dockerfile that Docker would refuse, or that names images we cannot resolve."""

    def __init__(self, path: str, line: int | None, message: str):
        where = f"{path}:{line}" if line else path
        self.message = message
        super().__init__(f"{where}: {message}")


class EngineUnavailable(BuildlibError):
    """No Docker engine answers at the configured address."""


class EngineError(BuildlibError):
    """The engine answered, but a pull, build or inspection failed."""


class TemplateError(BuildlibError):
    """A config template or .env that cannot be rendered: the file, the line and the variable."""
