"""One clear warning for an untested host version, and a clear error when a plugin feature is used on it."""

from __future__ import annotations

import sys
from importlib import metadata

from vr_plugins.errors import UserError

_warned: set[str] = set()


class UntestedHostError(UserError, RuntimeError):
    """A plugin feature was used on a host version it was not tested with."""


def host_version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def is_tested(dist: str, tested: tuple[str, ...]) -> bool:
    return host_version(dist) in tested


def warn_if_untested(dist: str, tested: tuple[str, ...]) -> bool:
    """Print one warning per process for an untested version; return whether the version is tested."""
    version = host_version(dist)
    if version in tested:
        return True
    _warn_once(dist, f"{dist} {version} is not a tested version (tested: {', '.join(tested)}); "
               "variational-reasoning features are disabled for it.")
    return False


def warn_untested_dependency(dist: str, tested: tuple[str, ...]) -> bool:
    """One warning per process when a library the plugin relies on (not patches) is outside its tested set.

    Unlike :func:`warn_if_untested` nothing is disabled: the version is only reported, so a user on another
    release knows which numbers were not checked there.
    """
    version = host_version(dist)
    if version is None or version in tested:
        return True
    _warn_once(dist, f"{dist} {version} is not a version variational-reasoning was tested with (tested: "
               f"{', '.join(tested)}; docs/install.md lists the tested combinations).")
    return False


def _warn_once(dist: str, message: str) -> None:
    if dist not in _warned:
        _warned.add(dist)
        sys.stderr.write(f"[vr_plugins] warning: {message}\n")


def require_tested(dist: str, tested: tuple[str, ...], feature: str) -> None:
    if not is_tested(dist, tested):
        raise UntestedHostError(
            f"{feature} needs {dist} {' or '.join(tested)} (found {host_version(dist)}). Install a tested "
            f"version, e.g. pip install '{dist}=={tested[-1]}'."
        )
