"""Finding the object a process should serve: `module:attr` or `path/to/file.py:attr`."""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path
from typing import Any

from llama_agents.errors import ConfigurationError


def load_target(target: str) -> Any:
    """Import `module:attr` or `file.py:attr` and return the attribute.

    A zero-argument callable that is not itself a service is called, so a module can offer
    a factory (`build_service`) instead of building its objects at import time.
    """
    module_part, sep, attr = target.rpartition(":")
    if not sep or not module_part or not attr:
        raise ConfigurationError(
            f"{target!r} is not a target: use 'package.module:attribute' or "
            "'path/file.py:attribute'"
        )
    module = _import(module_part)
    obj: Any = module
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise ConfigurationError(f"{module_part!r} has no attribute {attr!r}") from None
    return obj


def _import(name: str) -> Any:
    if name.endswith(".py") or "/" in name:
        path = Path(name).resolve()
        if not path.is_file():
            raise ConfigurationError(f"no such file: {path}")
        module_name = f"llama_agents_target_{path.stem}"
        spec = importlib.util.spec_from_file_location(module_name, path)
        if spec is None or spec.loader is None:
            raise ConfigurationError(f"cannot import {path}")
        # Let the file import its siblings (services/ modules share helpers).
        sys.path.insert(0, str(path.parent))
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        spec.loader.exec_module(module)
        return module
    if "" not in sys.path and str(Path.cwd()) not in sys.path:
        sys.path.insert(0, str(Path.cwd()))
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        raise ConfigurationError(f"cannot import {name!r}: {exc}") from exc


def resolve(obj: Any, *kinds: type) -> Any:
    """`obj` if it is one of `kinds`, else the result of calling it (a factory)."""
    if isinstance(obj, kinds):
        return obj
    if callable(obj):
        made = obj()
        if isinstance(made, kinds):
            return made
        obj = made
    names = " or ".join(kind.__name__ for kind in kinds)
    raise ConfigurationError(f"expected a {names} (or a function returning one), got {obj!r}")
