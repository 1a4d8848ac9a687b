"""Classic builds: the engine's own /build endpoint through docker-py, where no buildx answers.

Deprecated since Docker 23: it cannot build RUN --mount, COPY --chmod/--link, heredocs or
FROM --platform=$BUILDPLATFORM, and it writes build arg values into the image history; so
secret build args reach it as build args only in stages the image merely copies from.
The context goes without what the ignore file BuildKit would follow excludes, as it was hashed.
"""
from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping

from .. import engine
from ..context import dockerignore_patterns
from ..dockerfile import analyse, with_labels
from ..errors import BuildlibError
from . import BuildRequest, one_by_one


@dataclass(frozen=True)
class Classic:
    name: str = "classic"

    def build(self, request: BuildRequest, output: Callable[[str], object]) -> Mapping:
        files = [name for name, source in request.secret_sources.items() if source.startswith("src=")]
        wanted = {"named build contexts": list(request.contexts), "secrets from files": files, "ssh": list(request.ssh),
                  "more tags": list(request.tags)}
        for what, names in wanted.items():
            if names:
                raise BuildlibError(f"{request.dockerfile_path}: {what} ({', '.join(names)}) need BuildKit, "
                                    "and no buildx answers here")
        inherited = analyse(request.dockerfile, request.dockerfile_path, request.args, request.target).inherited_args
        kept = next((name for name in request.secrets if name in inherited), None)
        if kept:
            raise BuildlibError(f"{request.dockerfile_path}: secret build arg {kept} is declared in a stage the image "
                                "is made of, and the classic builder writes build arg values into the image history; "
                                "declare it only in a stage the image copies from (COPY --from), or install buildx")
        # One LABEL line: the classic builder makes each label passed through its API a step of its own.
        dockerfile = with_labels(request.dockerfile, request.dockerfile_path, request.labels, request.target)
        with tempfile.TemporaryDirectory(prefix="buildlib-") as folder:
            # Outside the context, so that docker-py sends it under a name of its own.
            sent = Path(folder) / "Dockerfile"
            sent.write_bytes(dockerfile)
            exclude = dockerignore_patterns(Path(request.context), Path(request.dockerfile_path))
            engine.build(request.context, str(sent), request.image, exclude=exclude,
                         args={**request.args, **request.secrets}, target=request.target,
                         platform=request.platform, network=request.network, nocache=request.nocache, output=output)
        attrs = engine.inspect(request.image)
        if attrs is None:
            raise BuildlibError(f"build {request.image} ended without an image in the engine")
        return attrs

    def build_many(self, requests, outputs):
        return one_by_one(self, requests, outputs)
