"""Finding codecs: stevedore over the ``migcodec.codecs`` entry-point namespace.

Listing names reads entry-point metadata only, so it never imports a plugin's dependencies.
Loading is per plugin: one broken plugin is reported with its error and the package to
install, and never hides the others.
"""

from __future__ import annotations

import importlib.metadata
import os
import sys
from dataclasses import asdict, dataclass
from typing import Any

from stevedore import DriverManager, ExtensionManager
from stevedore.exception import NoMatches

from migcodec.codecs.base import Codec, Probe
from migcodec.codecs.encoded import CodecKind, CodecPath
from migcodec.codecs.errors import CodecNotFound, CodecUnavailable

NAMESPACE = "migcodec.codecs"
#: the distribution of migcodec itself: its codecs need no package named on the wire
_OWN_DISTRIBUTION = "migcodec"

#: import name -> pip package, for "install X" hints
_PIP_NAMES = {
    "zlib_ng": "zlib-ng",
    "lz4": "lz4",
    "zstandard": "zstandard",
    "numpy": "numpy",
    "xxhash": "xxhash",
    "sklearn": "scikit-learn",
}


@dataclass(frozen=True)
class PluginStatus:
    """One plugin as ``migcodec codecs`` reports it."""

    name: str
    #: the codec's kind (a plugin may give the plain string); ``?`` when it did not load
    kind: CodecKind | str
    available: bool
    path: CodecPath
    reason: str
    source: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


#: the last scan of the entry points, and the state of ``sys.path`` it was made in
_scan: tuple[tuple, dict[str, importlib.metadata.EntryPoint]] | None = None


def _path_state() -> tuple:
    """``sys.path`` and the modification time of each of its directories: installing or
    removing a distribution adds or removes a ``.dist-info`` entry in one of them, which
    changes its time (stevedore keys its own on-disk cache the same way)."""
    state = []
    for entry in sys.path:
        try:
            state.append((entry, os.stat(entry or ".").st_mtime_ns))
        except OSError:
            state.append((entry, None))
    return tuple(state)


def _entry_points() -> dict[str, importlib.metadata.EntryPoint]:
    """The registered plugins by name (the first of a name wins). Scanning every installed
    distribution's metadata costs tens of milliseconds, and every stream's two ends resolve
    their codecs, so the scan is kept until ``sys.path`` or one of its directories
    changes. Callers must not modify the returned mapping."""
    global _scan
    state = _path_state()
    scan = _scan
    if scan is not None and scan[0] == state:
        return scan[1]
    eps: dict[str, importlib.metadata.EntryPoint] = {}
    for ep in importlib.metadata.entry_points(group=NAMESPACE):
        eps.setdefault(ep.name, ep)
    _scan = (state, eps)
    return eps


def available_codecs() -> list[str]:
    """Names of every registered plugin, loaded or not (no plugin module is imported)."""
    return sorted(_entry_points())


def codec_package(codec: Codec) -> str | None:
    """The Python distribution whose ``migcodec.codecs`` entry point registers ``codec``'s
    name (``migcodec-rle``), or ``None`` for migcodec's own codecs and for a codec whose
    distribution is unknown (not registered through an installed package). A stream names
    it so that a destination without the plugin can say what to install. migcodec's own
    codecs are told by their module, without reading the installed packages' metadata."""
    if type(codec).__module__.split(".")[0] == "migcodec":
        return None
    ep = _entry_points().get(codec.name)
    dist = getattr(ep, "dist", None)
    package = getattr(dist, "name", None) if dist is not None else None
    if not package or package.lower().replace("_", "-") == _OWN_DISTRIBUTION:
        return None
    return package


def install_hint(exc: BaseException, ep: importlib.metadata.EntryPoint | None = None) -> str:
    """What to install to fix a plugin that failed to load."""
    missing = getattr(exc, "name", None) if isinstance(exc, ImportError) else None
    if missing:
        top = missing.split(".")[0]
        package = _PIP_NAMES.get(top, top)
        return f"pip install {package}"
    dist = getattr(ep, "dist", None) if ep is not None else None
    if dist is not None:
        return f"reinstall the package that provides it: pip install --force-reinstall {dist.name}"
    return "reinstall the package that provides it"


def load_codec_class(name: str) -> type[Codec]:
    """The plugin class registered as ``name``; errors name the fix."""
    eps = _entry_points()
    if name not in eps:
        known = ", ".join(sorted(eps)) or "none"
        raise CodecNotFound(
            f"no codec named {name!r} is installed (installed: {known}); a third-party codec "
            f"is installed as a package with a {NAMESPACE!r} entry point"
        )
    failure: list[BaseException] = []

    def on_failure(_manager, _ep, exc):
        failure.append(exc)

    try:
        manager = DriverManager(
            NAMESPACE, name, invoke_on_load=False, on_load_failure_callback=on_failure
        )
        cls = manager.driver
    except NoMatches:  # stevedore cached the entry points before this plugin was installed
        cls = _load_late(eps[name], failure)
    except Exception as exc:  # stevedore wraps some failures in its own errors
        failure.append(exc)
        cls = None
    if failure or cls is None:
        exc = failure[0] if failure else RuntimeError("plugin did not load")
        raise CodecUnavailable(
            f"codec {name!r} failed to load ({type(exc).__name__}: {exc}); "
            f"{install_hint(exc, eps[name])}"
        ) from (exc if failure else None)
    if not (isinstance(cls, type) and issubclass(cls, Codec)):
        raise CodecUnavailable(
            f"entry point {name!r} does not name a migcodec Codec subclass ({cls!r})"
        )
    return cls


def _load_late(ep: importlib.metadata.EntryPoint, failure: list[BaseException]) -> Any:
    """Load a plugin that ``importlib.metadata`` lists but stevedore's per-process entry
    point cache does not (installed while this process runs); record a failure instead of
    raising, as stevedore's callback would."""
    try:
        return ep.load()
    except Exception as exc:
        failure.append(exc)
        return None


def get_codec(spec: str | dict[str, Any] | Codec, **params: Any) -> Codec:
    """A codec from a name (``"lz4"``), a config dict (``{"name": "zstd", "level": -3}``) or
    an instance (returned as is). Unavailable plugins raise :class:`CodecUnavailable`."""
    if isinstance(spec, Codec):
        return spec
    config = {"name": spec, **params} if isinstance(spec, str) else {**spec, **params}
    name = config.get("name")
    if not isinstance(name, str):
        raise CodecNotFound(f"codec config {config!r} has no 'name'")
    cls = load_codec_class(name)
    probe = cls.probe()
    if not probe.available:
        raise CodecUnavailable(f"codec {name!r} cannot run here: {probe.reason}")
    return cls.from_config(config)


def plugin_statuses() -> list[PluginStatus]:
    """Every registered plugin with availability, path and reason, failures included."""
    eps = _entry_points()
    failures: dict[str, BaseException] = {}

    def on_failure(_manager, ep, exc):
        failures[ep.name] = exc

    manager = ExtensionManager(NAMESPACE, invoke_on_load=False, on_load_failure_callback=on_failure)
    statuses = []
    for name in sorted(eps):
        source = eps[name].value
        if name not in failures and name not in manager:  # installed after stevedore's cache
            late_failure: list[BaseException] = []
            cls = _load_late(eps[name], late_failure)
            if late_failure:
                failures[name] = late_failure[0]
        elif name not in failures:
            cls = manager[name].plugin
        if name in failures:
            exc = failures[name]
            statuses.append(
                PluginStatus(
                    name,
                    "?",
                    False,
                    CodecPath.UNAVAILABLE,
                    f"failed to load: {type(exc).__name__}: {exc}; {install_hint(exc, eps[name])}",
                    source,
                )
            )
            continue
        if not (isinstance(cls, type) and issubclass(cls, Codec)):
            statuses.append(
                PluginStatus(
                    name, "?", False, CodecPath.UNAVAILABLE, "not a Codec subclass", source
                )
            )
            continue
        try:
            probe = cls.probe()
        except Exception as exc:  # a probe must never hide the other plugins
            probe = Probe(
                False, CodecPath.UNAVAILABLE, f"probe failed: {type(exc).__name__}: {exc}"
            )
        statuses.append(
            PluginStatus(name, cls.kind, probe.available, probe.path, probe.reason, source)
        )
    return statuses
