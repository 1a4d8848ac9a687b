"""Services as folders: each sub-folder of services-dir with a Dockerfile is one, named after it."""
from __future__ import annotations

from pathlib import Path

from ..errors import SettingsError
from ..settings import NAME_PATTERN, Settings
from . import MAX_REPOSITORY, Declared, arg_secrets, image_name, resolved


def declared(settings: Settings) -> dict[str, Declared | str]:
    found: dict[str, Declared | str] = {}
    for name, folder in _service_folders(settings).items():
        shown = f"{settings.services_dir}/{name}"
        image, defect = image_name(settings, name, settings.project)
        repository = image.rsplit(":", 1)[0]
        if not NAME_PATTERN.fullmatch(f"{settings.project}-{name}"):
            found[name] = (f"{shown}: '{name}' cannot be part of an image name "
                           "(use lower-case letters, digits, and . _ - between them)")
        elif len(repository) > MAX_REPOSITORY:
            found[name] = (f"{settings.services_dir}/{name[:40]}...: the image name would be {len(repository)} "
                           f"characters long, Docker allows {MAX_REPOSITORY}: use a shorter folder name")
        elif defect:
            found[name] = f"{shown}: image {image}: {defect}"
        else:
            own = settings.for_service(name)
            found[name] = Declared(
                name=name, shown=shown, folder=folder, context=folder / own.context, dockerfile=folder / own.dockerfile,
                image=image, args=own.args, target=own.target, platform=own.platform, network=own.network,
                templates=own.templates, secrets=arg_secrets(own.secret_args),
                contexts=resolved(own.contexts, folder))
    return found


def _service_folders(settings: Settings) -> dict[str, Path]:
    top = settings.root / settings.services_dir
    if not top.is_dir():
        raise SettingsError(f"services-dir '{settings.services_dir}': no such folder under {settings.root}")
    folders = {
        path.name: path for path in sorted(top.iterdir())
        if path.is_dir() and not path.name.startswith(".")
        and (path / settings.for_service(path.name).dockerfile).is_file()}
    for name in settings.services:
        if name not in folders:
            raise SettingsError(
                f"[tool.buildlib.services.{name}]: no folder {settings.services_dir}/{name} with a Dockerfile")
    return folders
