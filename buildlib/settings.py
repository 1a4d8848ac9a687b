"""Settings: buildlib.toml, or [tool.buildlib] in pyproject.toml, overridden by BUILDLIB_* and doit variables."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

from .dockerfile import VARIABLE_NAME
from .errors import SettingsError

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

# Docker's own grammar for the parts of an image reference.
TAG_PATTERN = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
NAME_PATTERN = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*")
HOST_PATTERN = re.compile(r"[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*(?::[0-9]+)?")
REGISTRY_PATTERN = re.compile(rf"(?:{HOST_PATTERN.pattern})(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*")
BUILDER_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
NETWORKS = ("default", "none", "host")   # what `docker buildx build --network` takes

DEFAULT_IMAGE = "{registry}/{project}-{service}:{tag}"   # without a registry, no leading /
TEMPLATE_FIELDS = ("registry", "project", "service", "tag")
SETTINGS_FILE = "buildlib.toml"     # for repositories without a pyproject.toml; the same keys at its top

# What the command line (doit variables) and the environment may override.
OVERRIDABLE = ("tag", "registry", "force", "push", "cache", "builder")
TRUE_WORDS, FALSE_WORDS = {"1", "true", "yes", "on"}, {"0", "false", "no", "off", ""}


@dataclass(frozen=True)
class Origin:
    """Where the settings were read: named in every message about them."""
    file: str       # pyproject.toml or buildlib.toml
    table: str      # the table buildlib's keys are in: tool.buildlib, or '' for the top of buildlib.toml

    def at(self, sub: str = "") -> str:
        """'pyproject.toml [tool.buildlib.services.web]', 'buildlib.toml [services.web]', 'buildlib.toml'."""
        name = ".".join(part for part in (self.table, sub) if part)
        return f"{self.file} [{name}]" if name else self.file


@dataclass(frozen=True)
class ServiceSettings:
    """Per-service overrides from [tool.buildlib.services.<name>]; paths are relative to the service folder."""
    dockerfile: str = "Dockerfile"
    context: str = "."
    target: str | None = None
    args: Mapping[str, str] = field(default_factory=dict)
    platform: str | None = None
    templates: tuple[str, ...] = ()     # config templates (*.tpl) rendered into the folder before a build
    secret_args: tuple[str, ...] = ()   # build args whose values come from the environment and never show
    network: str | None = None          # RUN steps' network; None: the global setting
    contexts: Mapping[str, str] = field(default_factory=dict)   # named contexts: service:X, docker-image://R, folder
    image: str = ""                     # its image name template, over the source's name and the global template


@dataclass(frozen=True)
class PullSettings:
    """How base images are pulled, from [tool.buildlib.pull]."""
    attempts: int = 3              # per source, for errors worth retrying
    timeout: float = 300.0         # seconds one attempt may take, and may go without progress
    backoff: float = 1.0           # seconds before the second attempt; doubled each time, with jitter
    mirrors_first: bool = False    # try the mirrors before the upstream registry


@dataclass(frozen=True)
class Settings:
    """Everything buildlib needs to know about a repository, after all overrides."""
    root: Path
    project: str
    services_dir: str = "services"
    tag: str = "latest"
    registry: str = ""
    mirrors: Mapping[str, tuple[str, ...]] = field(default_factory=dict)   # upstream registry -> mirrors
    pull: PullSettings = PullSettings()
    force: bool = False
    push: bool = True              # with a registry: build_all pushes what it built
    cache: bool = True             # with a registry: reuse an image pushed with the same inputs hash
    services: Mapping[str, ServiceSettings] = field(default_factory=dict)
    secret_args: tuple[str, ...] = ()   # for every service
    builder: str = ""              # the buildx builder; '' lets buildx choose (BUILDX_BUILDER, `docker buildx use`)
    network: str | None = None     # RUN steps' network; None: BuildKit's default, or none on an engine without a bridge
    image_template: str = DEFAULT_IMAGE   # the image name of a service its source does not name
    compose_files: tuple[str, ...] = ()   # the compose files to read, instead of compose's own choice
    profiles: tuple[str, ...] = ()        # compose profiles whose services count too

    def image(self, service: str, project: str | None = None) -> str:
        """The reference of a service's image from its template: by default [registry/]project-service:tag."""
        template = self.for_service(service).image or self.image_template
        return template.format(registry=self.registry, project=project or self.project, service=service,
                               tag=self.tag).lstrip("/")

    def for_service(self, service: str) -> ServiceSettings:
        return self.services.get(service, ServiceSettings())


# key in the file -> (field name, expected type, description of the type for errors)
TOP_KEYS = {
    "project": ("project", str, "a string"),
    "services-dir": ("services_dir", str, "a string"),
    "tag": ("tag", str, "a string"),
    "registry": ("registry", str, "a string"),
    "mirrors": ("mirrors", (list, dict), "a list of Docker Hub mirrors, or a table of lists per registry"),
    "push": ("push", bool, "true or false"),
    "cache": ("cache", bool, "true or false"),
    "pull": ("pull", dict, "a table"),
    "services": ("services", dict, "a table"),
    "secret-args": ("secret_args", list, "a list of build arg names"),
    "builder": ("builder", str, "the name of a buildx builder"),
    "network": ("network", str, "a network mode for RUN steps (default, none, host)"),
    "image": ("image_template", str, "an image name template like {registry}/{project}-{service}:{tag}"),
    "compose-files": ("compose_files", list, "a list of compose file paths"),
    "profiles": ("profiles", list, "a list of compose profile names"),
}
PULL_KEYS = {
    "attempts": ("attempts", int, "a whole number"),
    "timeout": ("timeout", (int, float), "a number of seconds"),
    "backoff": ("backoff", (int, float), "a number of seconds"),
    "mirrors-first": ("mirrors_first", bool, "true or false"),
}
DOCKER_HUB = "docker.io"
SERVICE_KEYS = {
    "dockerfile": ("dockerfile", str, "a string"),
    "context": ("context", str, "a string"),
    "target": ("target", str, "a string"),
    "args": ("args", dict, "a table of strings"),
    "platform": ("platform", str, "a string"),
    "templates": ("templates", list, "a list of paths of *.tpl files"),
    "secret-args": ("secret_args", list, "a list of build arg names"),
    "network": ("network", str, "a network mode for RUN steps (default, none, host)"),
    "contexts": ("contexts", dict, "a table of named build contexts (service:NAME, docker-image://REF or a folder)"),
    "image": ("image", str, "an image name, or a template like {registry}/team/{service}:{tag}"),
}


def load_settings(root: Path, variables: Mapping[str, str | None], environ: Mapping[str, str]) -> Settings:
    """Read buildlib.toml or pyproject.toml under root, then apply BUILDLIB_* from environ, then doit variables."""
    table, origin = _read_table(root)
    values = _check_keys(table, TOP_KEYS, origin, "")
    if "project" not in values:
        values["project"] = default_project(root)
    values["mirrors"] = _mirrors(values.get("mirrors", []), origin)
    values["pull"] = _pull_settings(values.get("pull", {}), origin)
    values["services"] = {
        name: _service_settings(name, sub, origin) for name, sub in values.get("services", {}).items()}
    if "secret_args" in values:
        values["secret_args"] = _arg_names(values["secret_args"], f"{origin.at()} secret-args")
    for key in ("compose_files", "profiles"):
        if key in values:
            values[key] = tuple(_string_list(values[key], f"{origin.at()} {key.replace('_', '-')}"))
    if "image_template" in values:
        _check_template(values["image_template"], f"{origin.at()} image")
    for key in OVERRIDABLE:
        env_value = environ.get(f"BUILDLIB_{key.upper()}")
        if variables.get(key) is not None:
            values[key] = variables[key]
        elif env_value is not None:
            values[key] = env_value
    for key in ("force", "push", "cache"):
        if key in values:
            values[key] = _flag(values[key], key)
    settings = Settings(root=root, **values)
    _validate(settings, origin)
    return settings


def _read_table(root: Path) -> tuple[dict, Origin]:
    """buildlib's table: all of buildlib.toml, else [tool.buildlib] of pyproject.toml, else none (all defaults)."""
    own, pyproject = root / SETTINGS_FILE, root / "pyproject.toml"
    in_pyproject = read_toml(pyproject).get("tool", {}).get("buildlib") if pyproject.is_file() else None
    if own.is_file():
        if in_pyproject is not None:
            raise SettingsError(f"{root}: both {SETTINGS_FILE} and pyproject.toml [tool.buildlib] hold buildlib's "
                                "settings; keep one")
        return read_toml(own), Origin(SETTINGS_FILE, "")
    if in_pyproject is None:
        return {}, Origin(SETTINGS_FILE, "")
    if not isinstance(in_pyproject, dict):
        raise SettingsError(f"{pyproject}: tool.buildlib must be a table, not {in_pyproject!r}")
    return in_pyproject, Origin("pyproject.toml", "tool.buildlib")


def default_project(root: Path) -> str:
    """compose's default project name: the folder's name in lower case, without what an image name cannot hold."""
    name = re.sub(r"[^a-z0-9_-]", "", root.resolve().name.lower()).lstrip("_-")
    if not NAME_PATTERN.fullmatch(name):
        raise SettingsError(f"{root}: its folder name gives no valid project name (images are named "
                            "{project}-{service}): set project in buildlib.toml or pyproject.toml [tool.buildlib]")
    return name


def read_toml(path: Path) -> dict:
    """A TOML file's document; a file that cannot be read or parsed is one line."""
    try:
        with open(path, "rb") as file:
            return tomllib.load(file)
    except OSError as error:
        raise SettingsError(f"{path}: cannot read ({error.strerror})") from None
    except tomllib.TOMLDecodeError as error:
        raise SettingsError(f"{path}: not valid TOML: {error}") from None


def _check_keys(table: dict, known: dict, origin: Origin, sub: str) -> dict:
    values = {}
    for key, value in table.items():
        if key not in known:
            raise SettingsError(f"{origin.at(sub)}: unknown key '{key}' (known: {', '.join(known)})")
        name, expected, description = known[key]
        if not isinstance(value, expected) or (isinstance(value, bool) and expected in (int, (int, float))):
            raise SettingsError(f"{origin.at(sub)} {key}: must be {description}, not {value!r}")
        values[name] = value
    return values


def _string_list(value: list, where: str) -> list[str]:
    if not all(isinstance(item, str) for item in value):
        raise SettingsError(f"{where}: must be a list of strings, not {value!r}")
    return value


def _mirrors(value: list | dict, origin: Origin) -> dict[str, tuple[str, ...]]:
    """A plain list means Docker Hub's mirrors; a table names the registry each list stands in for."""
    table = value if isinstance(value, dict) else {DOCKER_HUB: value}
    mirrors = {}
    for registry, addresses in table.items():
        if not isinstance(addresses, list):
            raise SettingsError(f"{origin.at()} mirrors.{registry}: must be a list of strings")
        mirrors[registry] = tuple(_string_list(addresses, f"{origin.at()} mirrors.{registry}"))
    return mirrors


def _pull_settings(table: dict, origin: Origin) -> PullSettings:
    values = _check_keys(table, PULL_KEYS, origin, "pull")
    for key in ("attempts", "timeout"):
        if key in values and values[key] <= 0:
            raise SettingsError(f"{origin.at('pull')} {key}: must be more than 0, not {values[key]}")
    if values.get("backoff", 0) < 0:
        raise SettingsError(f"{origin.at('pull')} backoff: must not be negative, not {values['backoff']}")
    return PullSettings(**values)


def _service_settings(name: str, table: object, origin: Origin) -> ServiceSettings:
    where = origin.at(f"services.{name}")
    if not isinstance(table, dict):
        raise SettingsError(f"{where}: must be a table, not {table!r}")
    values = _check_keys(table, SERVICE_KEYS, origin, f"services.{name}")
    args = values.get("args", {})
    bad = [key for key, value in args.items() if not isinstance(value, str)]
    if bad:
        raise SettingsError(f"{where} args.{bad[0]}: must be a string, not {args[bad[0]]!r}")
    if "templates" in values:
        templates = _string_list(values["templates"], f"{where} templates")
        bad = [path for path in templates if not path.endswith(".tpl")]
        if bad:
            raise SettingsError(f"{where} templates: '{bad[0]}' does not end with .tpl")
        values["templates"] = tuple(templates)
    if "secret_args" in values:
        values["secret_args"] = _arg_names(values["secret_args"], f"{where} secret-args")
        _refuse_secret_values(values["secret_args"], args, where)
    if "image" in values:
        _check_template(values["image"], f"{where} image")
    for context, value in values.get("contexts", {}).items():
        defect = context_defect(value) if isinstance(value, str) else f"must be a string, not {value!r}"
        if defect:
            raise SettingsError(f"{where} contexts.{context}: {defect}")
    return ServiceSettings(**values)


IMAGE_CONTEXTS = ("service:", "docker-image://")


def context_defect(value: str) -> str:
    """Why a named build context is not one buildlib builds with ('' when it is)."""
    kind, _, rest = value.partition(":")
    if value.startswith(IMAGE_CONTEXTS):
        return "" if rest.strip("/") else f"'{value}' names no {kind}"
    if "://" in value or value.startswith("git@"):
        return (f"'{value}' is not supported by buildlib yet (it takes service:NAME, docker-image://REF and "
                "folders, not URLs)")
    return ""


def is_folder(value: str) -> bool:
    """A named build context that is a folder, not an image."""
    return not value.startswith(IMAGE_CONTEXTS)


def _check_template(template: str, where: str) -> None:
    """An image name template names only the fields buildlib fills in, in {braces}."""
    try:
        template.format(**{name: name for name in TEMPLATE_FIELDS})
    except (KeyError, IndexError, ValueError) as error:
        field_name = f"{{{error.args[0]}}}" if isinstance(error, KeyError) else f"a malformed {{...}} ({error})"
        raise SettingsError(f"{where}: '{template}' names {field_name}; a template may name "
                            f"{', '.join('{' + name + '}' for name in TEMPLATE_FIELDS)}") from None


def _arg_names(value: list, where: str) -> tuple[str, ...]:
    bad = [name for name in _string_list(value, where) if not VARIABLE_NAME.fullmatch(name)]
    if bad:
        raise SettingsError(f"{where}: '{bad[0]}' is not a build arg name")
    return tuple(value)


def _flag(value: object, name: str) -> bool:
    if isinstance(value, bool):
        return value
    word = str(value).strip().lower()
    if word in TRUE_WORDS | FALSE_WORDS:
        return word in TRUE_WORDS
    raise SettingsError(f"{name}={value}: must be 1 or 0")


def _validate(settings: Settings, origin: Origin) -> None:
    if not NAME_PATTERN.fullmatch(settings.project):
        raise SettingsError(
            f"project '{settings.project}': not a valid image name (lower-case letters, digits, and . _ - between them)")
    if not TAG_PATTERN.fullmatch(settings.tag):
        raise SettingsError(
            f"tag '{settings.tag}': not a valid image tag (letters, digits, _ . -, at most 128, not starting with . or -)")
    if settings.registry and not REGISTRY_PATTERN.fullmatch(settings.registry):
        raise SettingsError(f"registry '{settings.registry}': not a registry address like host[:port][/path]")
    for mirror in (address for addresses in settings.mirrors.values() for address in addresses):
        if not REGISTRY_PATTERN.fullmatch(mirror):
            raise SettingsError(f"mirror '{mirror}': not a registry address like host[:port][/path]")
    if settings.builder and not BUILDER_PATTERN.fullmatch(settings.builder):
        raise SettingsError(f"builder '{settings.builder}': not a buildx builder name (letters, digits, _ . -)")
    for where, network in [(origin.at(), settings.network)] + [
            (origin.at(f"services.{name}"), service.network) for name, service in settings.services.items()]:
        if network is not None and network not in NETWORKS:
            raise SettingsError(f"{where} network: '{network}' is not one of {', '.join(NETWORKS)}")
    for name, service in settings.services.items():
        _refuse_secret_values(settings.secret_args, service.args, origin.at(f"services.{name}"))


def _refuse_secret_values(secret_args: tuple[str, ...], args: Mapping[str, str], where: str) -> None:
    shown = next((name for name in secret_args if name in args), None)
    if shown:
        raise SettingsError(f"{where} args.{shown}: a secret build arg takes its value "
                            "from the environment, never from this file")
