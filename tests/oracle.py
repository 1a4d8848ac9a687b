"""BuildKit's own cache as the judge of buildlib's verdicts: build each service of a repository
with buildlib's command line, but the Dockerfile read from where it is as a user's build reads it,
under a tag of the oracle's own, and read from the plain progress which instruction steps ran
and which BuildKit answered from its cache."""
from __future__ import annotations

import re
import subprocess
from pathlib import Path

from buildlib import engine
from buildlib.builders import BuildRequest
from buildlib.builders.buildkit import BuildKit
from buildlib.project import Project, Service

STEP = re.compile(r"#(\d+) \[(?:[^\]]+ )?\d+/\d+\] (.*)")    # "#7 [build 2/4] RUN make": an instruction
# BuildKit shows a local image's FROM as done each time it loads it again; what the image is
# enters the cache keys of the steps after it, so those tell.
FROM_STEP = "FROM "
CACHED = re.compile(r"#(\d+) CACHED")
FAILED = "the build failed"      # in place of the steps of a build that failed


def steps_run(lines: list[str]) -> list[str]:
    """The instruction steps of a plain progress log that BuildKit ran rather than found in its cache."""
    named = {match[1]: match[2] for line in lines if (match := STEP.fullmatch(line))}
    cached = {match[1] for line in lines if (match := CACHED.fullmatch(line))}
    return [name for number, name in named.items() if number not in cached and not name.startswith(FROM_STEP)]


def failure(steps: list[str]) -> str:
    """Why the build failed, when the steps say it did ('' when it did not)."""
    return steps[0] if steps and steps[0].startswith(FAILED) else ""


class Oracle:
    """Builds a project's services as buildlib would, each as `<prefix>-<service>`, bases from the oracle's own."""

    def __init__(self, prefix: str):
        self.prefix = prefix

    def tag(self, service: str) -> str:
        return f"{self.prefix}-{service}:oracle"

    def build_all(self, project: Project) -> dict[str, list[str]]:
        """Service -> the steps BuildKit ran for it, building bases before the services built from them."""
        ran: dict[str, list[str]] = {}
        pending = sorted(project.services)
        while pending:
            ready = [name for name in pending if set(project.services[name].base_services) <= set(ran)]
            if not ready:
                raise AssertionError(f"services whose bases cannot be built: {pending}")
            for name in ready:
                failed = next((base for base in project.services[name].base_services if failure(ran[base])), "")
                ran[name] = [f"{FAILED}: base service {failed} failed"] if failed else self.build(
                    project, project.services[name])
                pending.remove(name)
        return ran

    def build(self, project: Project, service: Service) -> list[str]:
        request = BuildRequest(image=self.tag(service.name), context=service.context, dockerfile=b"",
                               dockerfile_path=service.dockerfile, args=service.build_args, target=service.target,
                               platform=service.platform, network=service.network)
        # Provenance off: a fully cached build then gives the same image, so a service built
        # from this one is judged by its own steps alone.
        extra = ["--provenance=false"]
        for base in service.base_services:
            extra += ["--build-context", f"{project.settings.image(base)}=docker-image://{self.tag(base)}"]
        # The Dockerfile from where it is, as a user's `docker buildx build -f` reads it (and its own ignore file).
        command = BuildKit().command(request, engine.default_network(), Path(service.dockerfile))
        done = subprocess.run(command[:-1] + extra + command[-1:], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              timeout=300)
        lines = done.stdout.decode(errors="replace").splitlines()
        if done.returncode != 0:   # e.g. a file COPY names was deleted: no cache could answer
            return [f"{FAILED}: " + next((line for line in reversed(lines) if line.startswith("ERROR")), "?")]
        return steps_run(lines)
