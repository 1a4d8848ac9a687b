"""A repository's services: where they are, what each is built from, and in which order."""
from __future__ import annotations

import hashlib
import os
import platform
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

from .dockerfile import analyse, may_have_triggers
from .errors import BuildlibError
from .settings import Settings, is_folder
from .sources import Declared, arg_secrets, declared_services
from .templates import SUFFIX, Template

# What BUILDPLATFORM (and TARGETPLATFORM, unless a platform is set) name: this machine's platform.
NATIVE_PLATFORM = "linux/" + {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm/v7"}.get(
    platform.machine(), platform.machine())
DIGEST_FOLDER = Path(".buildlib") / "digests"


@dataclass(frozen=True)
class ExternalImage:
    """A base image that comes from a registry, not from a service of this repository."""
    ref: str
    platform: str | None


@dataclass(frozen=True)
class Service:
    """One image to build: everything its build and its inputs hash need, picklable for doit."""
    name: str
    image: str                          # the full reference it is tagged with
    context: str                        # absolute paths
    dockerfile: str
    target: str | None
    platform: str | None
    build_args: Mapping[str, str]       # what the engine gets
    hashed_args: Mapping[str, str]      # the part BuildKit's cache sees (Analysis.seen_args), which enters the hash
    base_images: tuple[str, ...]        # every image it uses, external or built here
    external_images: tuple[ExternalImage, ...]
    base_services: tuple[str, ...]      # services whose images it uses
    templates: tuple[Template, ...] = ()
    context_sources: tuple[str, ...] | None = None   # what COPY and ADD take; None: the whole context
    whole_context: str = ""                          # why they cannot narrow the context, when they cannot
    digest_cache: str | None = None                  # the file that remembers its files' digests
    secrets: Mapping[str, str] = field(default_factory=dict)   # id -> env=VARIABLE or src=/path, those it uses
    network: str | None = None                       # RUN steps' network; None: the builder's default
    instructions_digest: str = ""                    # what of the Dockerfile enters the hash (Analysis)
    dockerfile_sha256: str = ""                      # of the bytes analysed: a build sends exactly those
    has_triggers: bool = False                       # ONBUILD lines: its image's config carries triggers
    build_contexts: Mapping[str, str] = field(default_factory=dict)   # name -> docker-image://REF, for the build
    folder_contexts: Mapping[str, str] = field(default_factory=dict)  # name -> a folder's absolute path: inputs too
    labels: Mapping[str, str] = field(default_factory=dict)           # the source's labels, hashed with the image
    tags: tuple[str, ...] = ()                                        # more references, hashed with the image
    ssh: tuple[str, ...] = ()                                         # --ssh values: never hashed

    @property
    def internal_images(self) -> tuple[str, ...]:
        """The images of its base services: the base images that are not external."""
        external = {image.ref for image in self.external_images}
        return tuple(ref for ref in self.base_images if ref not in external)


@dataclass(frozen=True)
class Project:
    settings: Settings
    services: Mapping[str, Service]     # services that can be built, by name
    broken: Mapping[str, str]           # service name -> the one line that says why it cannot be built
    images: Mapping[str, str] = field(default_factory=dict)   # service name -> its image, broken ones too

    def image(self, name: str) -> str:
        """The reference a service's image is tagged with, as its source names it."""
        return self.images.get(name) or self.settings.image(name)

    @property
    def names(self) -> list[str]:
        return sorted([*self.services, *self.broken])

    @property
    def external_images(self) -> tuple[ExternalImage, ...]:
        """Each external image once, by reference (the first platform asked for wins)."""
        unique: dict[str, ExternalImage] = {}
        for name in sorted(self.services):
            for image in self.services[name].external_images:
                if unique.get(image.ref) is None or unique[image.ref].platform is None:
                    unique[image.ref] = image
        return tuple(unique[ref] for ref in sorted(unique))


def load_project(settings: Settings) -> Project:
    """Find and analyse every service; a service that cannot be analysed is recorded, not fatal."""
    declared = declared_services(settings)
    images: dict[str, str] = {}
    for name, record in sorted(declared.items()):
        if isinstance(record, Declared) and record.image in images:
            # Two builds under one tag would replace each other's image on every run.
            declared[name] = (f"{record.shown}: its image {record.image} is also {images[record.image]}'s; "
                              "give each service an image of its own")
        elif isinstance(record, Declared):
            images[record.image] = name
    services, broken, real_folders = {}, {}, {}
    for name, record in declared.items():
        if isinstance(record, str):
            broken[name] = record
            continue
        try:
            services[name] = _service(settings, record, images, real_folders)
        except BuildlibError as error:
            broken[name] = str(error)
    for name, why in _cycles(services).items():
        broken[name] = why
        del services[name]
    return Project(settings, services, broken, {ref_name: ref for ref, ref_name in images.items()})


def _service(settings: Settings, declared: Declared, images: Mapping[str, str], real_folders: dict[str, str]) -> Service:
    dockerfile, context = declared.dockerfile, declared.context
    shown = dockerfile.relative_to(settings.root).as_posix() if dockerfile.is_relative_to(settings.root) else str(dockerfile)
    build_args = {**declared.args, "REGISTRY": f"{settings.registry}/" if settings.registry else "",
                  "TAG": settings.tag}
    try:
        data = dockerfile.read_bytes()
    except OSError as error:
        raise BuildlibError(f"{shown}: cannot read ({error.strerror})") from None
    analysis = analyse(data, shown, build_args, declared.target, declared.platform, NATIVE_PLATFORM)
    # A secret reaches a build as a BuildKit secret (or, with the classic builder, as a build arg).
    secrets = {id_: source for id_, source in {**arg_secrets(settings.secret_args), **declared.secrets}.items()
               if id_ in analysis.declared_args | analysis.secret_ids}
    contexts = _image_contexts(declared, images)
    folders = {name: value for name, value in declared.contexts.items() if is_folder(value)}
    # BuildKit puts a named context's image where FROM, --from or --mount=from= name it; a folder is no image.
    uses = [(contexts.get(use.ref, use.ref), use.platform) for use in analysis.images if use.ref not in folders]
    refs = sorted({ref for ref, _ in uses})
    externals: dict[str, ExternalImage] = {}
    for ref, wanted in uses:
        if ref not in images and externals.get(ref, ExternalImage(ref, None)).platform is None:
            externals[ref] = ExternalImage(ref, wanted)
    name = declared.name
    return Service(
        name=name, image=declared.image, context=_resolved(context, real_folders),
        dockerfile=_resolved(dockerfile, real_folders),
        target=declared.target, platform=declared.platform, build_args=build_args,
        hashed_args={key: value for key, value in build_args.items() if key in analysis.seen_args},
        base_images=tuple(refs), external_images=tuple(externals[ref] for ref in sorted(externals)),
        base_services=tuple(sorted({images[ref] for ref in refs if ref in images})),
        templates=tuple(_template(settings, declared, path) for path in declared.templates),
        context_sources=None if analysis.unresolved else analysis.context_sources,
        whole_context=f"whole context: {analysis.unresolved}" if analysis.unresolved else "",
        digest_cache=str(settings.root / DIGEST_FOLDER / f"{name}.json"), secrets=secrets,
        network=declared.network or settings.network, instructions_digest=analysis.instructions_digest,
        dockerfile_sha256=hashlib.sha256(data).hexdigest(), has_triggers=may_have_triggers(data),
        build_contexts={name: f"docker-image://{ref}" for name, ref in contexts.items()}, folder_contexts=folders,
        labels=dict(declared.labels), tags=declared.tags, ssh=declared.ssh)


def _resolved(path: Path, folders: dict[str, str]) -> str:
    """What Path.resolve gives, with each folder resolved once for all its entries (it costs an lstat a part)."""
    parent = str(path.parent)
    if parent not in folders:
        folders[parent] = os.path.realpath(parent)
    joined = os.path.join(folders[parent], path.name)
    folders[str(path)] = os.path.realpath(joined) if path.name == ".." or os.path.islink(joined) else joined
    return folders[str(path)]


def _image_contexts(declared: Declared, images: Mapping[str, str]) -> dict[str, str]:
    """Each named build context -> the image it stands for: another service's, or the one it names."""
    own_images = {name: ref for ref, name in images.items()}
    found = {}
    for name, value in declared.contexts.items():
        kind, _, rest = value.partition(":")
        if is_folder(value):
            continue
        if kind != "service":
            found[name] = rest.removeprefix("//")
        elif rest in own_images:
            found[name] = own_images[rest]
        else:
            raise BuildlibError(f"{declared.shown}: build context {name} is service:{rest}, which is not a service "
                                "buildlib builds here")
    return found


def _template(settings: Settings, declared: Declared, path: str) -> Template:
    source = declared.folder / path
    shown = source.relative_to(settings.root).as_posix()
    if not source.is_file():
        raise BuildlibError(f"{shown}: template not found (named in [tool.buildlib.services.{declared.name}] templates)")
    return Template(str(source.resolve()), str(source.resolve())[:-len(SUFFIX)], shown)


def _cycles(services: Mapping[str, Service]) -> dict[str, str]:
    """Services that are, through their bases, built from themselves."""
    found: dict[str, str] = {}
    explored: set[str] = set()

    def visit(name: str, path: list[str]) -> None:
        if name in path:
            loop = path[path.index(name):] + [name]
            for member in loop[:-1]:
                found[member] = f"{member}: its images are built from each other ({' -> '.join(loop)})"
            return
        if name in explored or name not in services:
            return
        for base in services[name].base_services:
            visit(base, path + [name])
        explored.add(name)

    for name in services:
        visit(name, [])
    return found
