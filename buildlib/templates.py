"""Config templates: `{{ NAME }}` replaced by values from .env and the environment, and nothing else.

A template is text with placeholders; rendering substitutes values and never evaluates
anything, so neither a template nor .env can run code. `.env` holds KEY=VALUE lines (no
expansion, no command substitution); when a repository has no `.env`, its `.env.example` is
read instead, so the samples build out of the box. The environment wins over both.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from .errors import TemplateError

SUFFIX = ".tpl"
ENV_FILES = (".env", ".env.example")
NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")


@dataclass(frozen=True)
class Template:
    source: str    # absolute path of the .tpl file
    output: str    # absolute path of the file it renders to: the same path without .tpl
    shown: str     # the source relative to the repository, for messages


def env_file(root: Path) -> Path | None:
    """The file values come from: .env, else .env.example, else none."""
    return next((root / name for name in ENV_FILES if (root / name).is_file()), None)


def read_env(path: Path) -> dict[str, str]:
    """KEY=VALUE lines; blank lines and # comments skipped, `export ` and matching quotes dropped."""
    values = {}
    for number, line in enumerate(_read(path).splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, equals, value = line.removeprefix("export ").partition("=")
        key, value = key.strip(), value.strip()
        if not equals or not NAME.fullmatch(key):
            raise TemplateError(f"{path.name}:{number}: not a KEY=VALUE line")
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[key] = value
    return values


def values(root: Path, environ: Mapping[str, str]) -> dict[str, str]:
    """What placeholders are replaced by: the env file's values, the environment's over them."""
    path = env_file(root)
    return {**(read_env(path) if path else {}), **environ}


def render(text: str, known: Mapping[str, str], shown: str) -> str:
    """The text with every placeholder replaced; a name without a value is an error naming its line."""
    lines = []
    for number, line in enumerate(text.splitlines(keepends=True), 1):
        def value(match: re.Match, number=number) -> str:
            name = match.group(1)
            if name not in known:
                raise TemplateError(f"{shown}:{number}: variable {name} has no value (set it in .env or the environment)")
            return known[name]
        lines.append(PLACEHOLDER.sub(value, line))
    return "".join(lines)


def out_of_date(templates: tuple[Template, ...], known: Mapping[str, str]) -> list[tuple[Template, str]]:
    """Each template whose output on disk is not what it renders to now, with that text."""
    stale = []
    for template in templates:
        text = render(_read(Path(template.source)), known, template.shown)
        output = Path(template.output)
        if not output.is_file() or _read(output) != text:
            stale.append((template, text))
    return stale


def write(templates: tuple[Template, ...], known: Mapping[str, str]) -> list[str]:
    """Render each template whose output differs; returns the outputs written."""
    written = []
    for template, text in out_of_date(templates, known):
        output = Path(template.output)
        temporary = output.with_name(f".{output.name}.tmp")
        try:
            temporary.write_text(text, encoding="utf-8")
            os.chmod(temporary, Path(template.source).stat().st_mode & 0o7777)
            os.replace(temporary, output)
        except OSError as error:
            raise TemplateError(f"{output}: cannot write ({error.strerror})") from None
        written.append(template.output)
    return written


def render_in_place(templates: tuple[Template, ...], root: Path, environ: Mapping[str, str]) -> dict:
    """Render a service's templates with the repository's values; what the state file keeps."""
    return {"written": write(templates, values(root, environ))}


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise TemplateError(f"{path}: not UTF-8 text") from None
    except OSError as error:
        raise TemplateError(f"{path}: cannot read ({error.strerror})") from None
