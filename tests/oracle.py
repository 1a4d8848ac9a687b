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
CHANGED = "all cached, but other layers"   # in place of the steps of a build the cache answered differently


def steps_run(lines: list[str]) -> list[str]:
    """The instruction steps of a plain progress log that BuildKit ran rather than found in its cache."""
    named = {match[1]: match[2] for line in lines if (match := STEP.fullmatch(line))}
    cached = {match[1] for line in lines if (match := CACHED.fullmatch(line))}
    return [name for number, name in named.items() if number not in cached and not name.startswith(FROM_STEP)]


def image_layers(ref: str) -> str:
    """What an image is made of: its layers' digests. Not its ID: the history in its config names the
    value of every ARG, even one no step sees, which BuildKit's cache (and buildlib) leave out."""
    return subprocess.run(["docker", "image", "inspect", "--format", "{{json .RootFS.Layers}}", ref],
                          capture_output=True, text=True, check=True).stdout.strip()


def failure(steps: list[str]) -> str:
    """Why the build failed, when the steps say it did ('' when it did not)."""
    return steps[0] if steps and steps[0].startswith(FAILED) else ""


class Oracle:
    """Builds a project's services as buildlib would, each as `<prefix>-<service>`, bases from the oracle's own."""

    def __init__(self, prefix: str):
        self.prefix = prefix
        self.first: dict[str, str] = {}    # service -> the layers of the first state's image


    def tag(self, service: str) -> str:
        return f"{self.prefix}-{service}:oracle"

    def build_all(self, project: Project) -> dict[str, list[str]]:
        """Service -> the steps BuildKit ran for it, building bases before the services built from them.

        Every step can come from the cache and still make other layers than the first state's:
        an edit whose build the cache holds from an earlier, different tree (a renamed ignore file
        that keeps the same files as last time). Those layers differing count as a step run.
        """
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
                if not failure(ran[name]):
                    layers = image_layers(self.tag(name))
                    if self.first.setdefault(name, layers) != layers and not ran[name]:
                        ran[name] = [f"{CHANGED} than the first state's"]
        return ran

    def build(self, project: Project, service: Service) -> list[str]:
        request = BuildRequest(image=self.tag(service.name), context=service.context, dockerfile=b"",
                               dockerfile_path=service.dockerfile, args=service.build_args, target=service.target,
                               platform=service.platform, network=service.network)
        # Provenance off: a fully cached build then gives the same image, so a service built
        # from this one is judged by its own steps alone.
        extra = ["--provenance=false"]
        oracle_images = {project.services[base].image: self.tag(base) for base in service.base_services}
        for base in service.base_services:
            extra += ["--build-context", f"{project.services[base].image}=docker-image://{self.tag(base)}"]
        for name, value in service.build_contexts.items():   # a named context for a service: the oracle's image
            ref = value.removeprefix("docker-image://")
            extra += ["--build-context", f"{name}=docker-image://{oracle_images.get(ref, ref)}"]
        # The Dockerfile from where it is, as a user's `docker buildx build -f` reads it (and its own ignore file).
        command = BuildKit().command(request, engine.default_network(), Path(service.dockerfile))
        done = subprocess.run(command[:-1] + extra + command[-1:], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              timeout=300)
        lines = done.stdout.decode(errors="replace").splitlines()
        if done.returncode != 0:   # e.g. a file COPY names was deleted: no cache could answer
            return [f"{FAILED}: " + next((line for line in reversed(lines) if line.startswith("ERROR")), "?")]
        return steps_run(lines)
