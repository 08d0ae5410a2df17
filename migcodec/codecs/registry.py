"""Finding codecs: stevedore over the ``migcodec.codecs`` entry-point namespace.

stevedore is the one discovery path. It lists the namespace's entry points (from its cache,
which reads the installed packages' metadata again only when ``sys.path`` or an entry-point
file on it changed) and loads plugins: ``DriverManager`` one by name, ``NamedExtensionManager``
every listed one, each load failure handed to a callback. Listing names imports no plugin
module, so a plugin's dependencies are imported when it is first used; one broken plugin is
reported with its error and the package to install, and never hides the others. A name that
several plugins register is reported, naming them, and none of them is imported.

stevedore keeps the list it read for the life of the process. Listings
(:func:`available_codecs`, :func:`plugin_statuses`) have it read again, and so does a lookup
by name when the list in hand gives no codec: a plugin installed or removed while a process
runs is found, or reported as gone, and a lookup that succeeds reads nothing.
"""

from __future__ import annotations

import functools
import importlib.metadata
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from stevedore import DriverManager, ExtensionManager, NamedExtensionManager, _cache
from stevedore.exception import NoMatches

from migcodec.codecs.base import Codec, Probe
from migcodec.codecs.encoded import CodecKind, CodecPath
from migcodec.codecs.errors import CodecError, CodecNotFound, CodecUnavailable, OutdatedPlugin
from migcodec.interrupts import from_signal

EntryPoint = importlib.metadata.EntryPoint

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


class _ImportAborted(Exception):
    """Carries (as ``__cause__``) what ended a plugin's import that stevedore would not hand
    to its failure callback: an exception outside ``Exception`` (``SystemExit`` from a
    module that calls ``sys.exit()``, a ``BaseException`` of the plugin's own) or an
    ``AssertionError``, which stevedore re-raises. Either ended every command that loads
    plugins (``migcodec codecs`` exited silently with the plugin's status)."""


class _Guarded:
    """A stevedore manager whose plugin imports end in its failure callback, whatever
    they raise, except Ctrl-C and SIGTERM (a ``KeyboardInterrupt``), which end the command.

    stevedore has no option for this; its ``_load_one_plugin`` is the one call around
    ``EntryPoint.load`` in every manager (stevedore 3 to 5)."""

    def _load_one_plugin(self, ep: EntryPoint, *args: Any, **kwargs: Any) -> Any:
        load = super()._load_one_plugin  # type: ignore[misc]
        try:  # watched as a call of the plugin's (see get_codec)
            return _watched(ep.name, load, ep, *args, **kwargs)
        except BaseException as exc:
            if from_signal(exc) or (
                isinstance(exc, Exception) and not isinstance(exc, AssertionError)
            ):
                raise
            raise _ImportAborted() from exc


def _watched(name: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
    """``fn(*args, **kwargs)``, plugin ``name``'s own code (its import, probe or
    constructor), watched as a call of it: in a bounded unit, one that never returns is
    named (see :mod:`migcodec.codecs.bounded`, which imports this module)."""
    from migcodec.codecs.bounded import BUILDING, codec_watch

    return codec_watch().calling(name, BUILDING, functools.partial(fn, *args, **kwargs))


class _Driver(_Guarded, DriverManager):
    """:class:`DriverManager` whose plugin imports cannot end the process."""


class _Named(_Guarded, NamedExtensionManager):
    """:class:`NamedExtensionManager` whose plugin imports cannot end the process."""


def _load_failure(exc: BaseException) -> BaseException:
    """What ended a plugin's load, as the failure callback reports it."""
    return exc.__cause__ if isinstance(exc, _ImportAborted) and exc.__cause__ else exc


def _listed() -> list[EntryPoint]:
    """The namespace's entry points as stevedore holds them for this process (read on first
    use). A manager asked for no names loads nothing: it only lists."""
    manager = NamedExtensionManager(NAMESPACE, names=(), on_missing_entrypoints_callback=None)
    return manager.list_entry_points()


#: the list of entry points stevedore holds, and for it (entry point name, target) -> the
#: distribution that registers it; ``None`` until a message or a stream first names a
#: package. Kept with the list it describes: whoever makes stevedore read again (this
#: module, or a process that clears stevedore's caches) gets a new list, and the old
#: providers are not answered for it
_providers: tuple[object, dict[tuple[str, str], str]] | None = None


def _read_again() -> list[EntryPoint]:
    """Have stevedore read the namespace's entry points again, and make every manager
    created from now on use them.

    stevedore keeps one list per namespace (``ExtensionManager.ENTRY_POINT_CACHE``) and one
    per ``sys.path`` for the life of the process, and has no public call to read again. A
    fresh ``stevedore._cache.Cache`` (the class behind both) skips them and answers from
    stevedore's on-disk cache, whose key covers ``sys.path`` and the entry-point files on it
    (their times to about two minutes), so a package installed or removed since is seen.
    That stats every installed package's entry-point file, which is why a lookup that finds
    its codec does not call this."""
    eps = list(_cache.Cache().get_group_all(NAMESPACE))
    ExtensionManager.ENTRY_POINT_CACHE[NAMESPACE] = eps
    return eps


def _provider(ep: EntryPoint) -> str | None:
    """The distribution that registers ``ep`` (``migcodec-rle``), or ``None`` if none is
    known. stevedore's list holds names and targets only, so this reads the installed
    packages' metadata: once for each list stevedore reads, and only when a message or a
    stream names a package (reading every package's metadata is slow)."""
    global _providers
    listed = ExtensionManager.ENTRY_POINT_CACHE.get(NAMESPACE)
    if _providers is None or _providers[0] is not listed:
        providers: dict[tuple[str, str], str] = {}
        for candidate in importlib.metadata.entry_points(group=NAMESPACE):
            dist = getattr(candidate, "dist", None)
            if dist is not None:
                providers.setdefault((candidate.name, candidate.value), dist.name)
        _providers = (listed, providers)
    return _providers[1].get((ep.name, ep.value))


def _named(name: str, eps: Sequence[EntryPoint]) -> list[EntryPoint]:
    """The entry points registered as ``name``: one, or several when plugins collide."""
    return [ep for ep in eps if ep.name == name]


def _collision(entries: Sequence[EntryPoint]) -> str:
    """Why a name that several plugins register is refused, naming each (ordered by target,
    whatever the order of installation) and what to do. A stream names its codecs, so both
    ends must mean the same codec by a name; loading one of them (stevedore picks one by
    order or raises, depending on the manager and its version) could make them differ."""
    plugins = " and ".join(
        f"{ep.value!r} from {_provider(ep) or 'an unknown package'}"
        for ep in sorted(entries, key=lambda ep: ep.value)
    )
    return (
        f"registered by {len(entries)} plugins ({plugins}); a stream names codecs by name, "
        "so uninstall all but one"
    )


def available_codecs() -> list[str]:
    """Names of every registered plugin, loaded or not (no plugin module is imported), as
    stevedore reads them now."""
    return sorted({ep.name for ep in _read_again()})


def codec_package(codec: Codec | str) -> str | None:
    """The Python distribution whose ``migcodec.codecs`` entry point registers ``codec``'s
    name (``migcodec-rle``), or ``None`` for migcodec's own codecs, for a codec not
    registered through an installed package and for a name several plugins register. A
    stream names it so that a destination without the plugin can say what to install.
    migcodec's own codecs are told by their module, without reading the installed packages'
    metadata; a codec given by its name (one not built yet) is looked up by it."""
    if isinstance(codec, str):
        return _registering_package(codec)
    if type(codec).__module__.split(".")[0] == "migcodec":
        return None
    return _registering_package(codec.name)


def _registering_package(name: str) -> str | None:
    """The one distribution other than migcodec that registers ``name``, else ``None``."""
    entries = _named(name, _listed())
    package = _provider(entries[0]) if len(entries) == 1 else None
    if not package or package.lower().replace("_", "-") == _OWN_DISTRIBUTION:
        return None
    return package


def install_hint(exc: BaseException, ep: EntryPoint | None = None) -> str:
    """What to install to fix a plugin that failed to load: the missing module's package,
    a version of a plugin written for an earlier codec contract that is written for this
    one, else the package that registers ``ep``."""
    if isinstance(exc, OutdatedPlugin):
        package = _provider(ep) if ep is not None else None
        if package:
            return f"install a version written for this migcodec: pip install --upgrade {package}"
        return "update the plugin as the message says"
    missing = getattr(exc, "name", None) if isinstance(exc, ImportError) else None
    if missing:
        top = missing.split(".")[0]
        package = _PIP_NAMES.get(top, top)
        return f"pip install {package}"
    package = _provider(ep) if ep is not None else None
    if package:
        return f"reinstall the package that provides it: pip install --force-reinstall {package}"
    return "reinstall the package that provides it"


def load_codec_class(name: str) -> type[Codec]:
    """The plugin class registered as ``name``; errors name the fix.

    The list stevedore holds is tried first. When it gives no codec (the name is not there,
    its plugin fails to load, or plugins collide) the list is read again and tried again,
    unless the name's entry points are the same (loading them again would fail the same
    way): so a plugin installed or removed while the process runs is found, or reported as
    not installed, and a lookup that succeeds costs no read."""
    listed = _listed()
    try:
        return _load(name, listed)
    except CodecError:
        fresh = _read_again()
        entries = _named(name, fresh)
        if entries and entries == _named(name, listed):
            raise
    return _load(name, fresh)


def _not_found(name: str, listed: Sequence[EntryPoint]) -> CodecNotFound:
    """An unknown name: which codecs are installed, and how a third-party one is added.
    The error keeps the name (``exc.name``): a codec whose fall-back is missing raises the
    fall-back's, and a caller telling which package to install must know whose it is."""
    known = ", ".join(sorted({ep.name for ep in listed})) or "none"
    base, colon, _ = name.partition(":")
    if colon and _named(base, listed):  # a configuration where a name belongs
        exc = CodecNotFound(
            f"{name!r} is a configuration of codec {base!r}; this takes a codec's name alone "
            f"({base!r}), with its default parameters"
        )
    else:
        exc = CodecNotFound(
            f"no codec named {name!r} is installed (installed: {known}); a third-party codec "
            f"is installed as a package with a {NAMESPACE!r} entry point"
        )
    exc.name = name
    return exc


def _load(name: str, listed: Sequence[EntryPoint]) -> type[Codec]:
    """Load ``name`` from ``listed`` (stevedore's current list) through a DriverManager."""
    entries = _named(name, listed)
    if not entries:
        raise _not_found(name, listed)
    if len(entries) > 1:  # refused before stevedore's conflict handling loads either
        raise CodecUnavailable(f"codec {name!r} is {_collision(entries)}")
    failures: list[BaseException] = []
    try:
        cls = _Driver(
            NAMESPACE,
            name,
            on_load_failure_callback=lambda _manager, _ep, exc: failures.append(_load_failure(exc)),
            on_missing_entrypoints_callback=None,
        ).driver
    except NoMatches:  # nothing loaded: the failure callback said why, if it was called
        if not failures:  # another thread had stevedore read a list without the name
            raise _not_found(name, _listed()) from None
    if failures:
        exc = failures[0]
        raise CodecUnavailable(
            f"codec {name!r} failed to load ({type(exc).__name__}: {exc}); "
            f"{install_hint(exc, entries[0])}"
        ) from exc
    wrong = _not_a_codec(name, cls)
    if wrong:
        raise CodecUnavailable(f"entry point {name!r} {wrong}; {faulty_plugin_hint(name)}")
    return cls


def _not_a_codec(name: str, cls: Any) -> str | None:
    """Why what the entry point ``name`` loaded cannot be its codec, or ``None``. A class
    whose ``name`` is not the entry point's made every stream fail on its own config
    (``from_config`` refuses a config naming another codec), and a stream's two ends
    resolve codecs by that name."""
    if not (isinstance(cls, type) and issubclass(cls, Codec)):
        return f"does not name a migcodec Codec subclass ({cls!r})"
    own = getattr(cls, "name", None)
    if own != name:
        return (
            f"names codec class {cls.__module__}.{cls.__qualname__}, whose name is {own!r}; "
            "a codec class's name must be the name it is registered under"
        )
    return None


def faulty_plugin_hint(name: str) -> str:
    """What to do about codec ``name`` whose own code does what the codec contract does
    not allow: upgrade or uninstall the package that registers it (reinstalling the same
    code changes nothing), or, for a codec no single package registers, use another."""
    package = _registering_package(name)
    if package is None:
        return "use another codec"
    return f"upgrade the package that provides it, or uninstall it: pip uninstall {package}"


def probe_of(cls: type[Codec], name: str) -> Probe:
    """``cls.probe()`` of plugin ``name``, or an unavailable :class:`Probe` saying why it
    failed: a probe that raises or returns something else than a ``Probe`` must not hide
    the other plugins, nor end a command in a traceback (nor, raising ``SystemExit(0)``,
    end it silently with success). Ctrl-C and SIGTERM still end the command."""
    try:
        probe = _watched(name, cls.probe)
    except BaseException as exc:
        if from_signal(exc):
            raise
        return Probe(False, CodecPath.UNAVAILABLE, f"probe failed: {type(exc).__name__}: {exc}")
    if not isinstance(probe, Probe):
        return Probe(
            False,
            CodecPath.UNAVAILABLE,
            f"probe failed: it returned {type(probe).__name__}, not a migcodec Probe",
        )
    return probe


def get_codec(spec: str | dict[str, Any] | Codec, **params: Any) -> Codec:
    """A codec from a name (``"lz4"``), a config dict (``{"name": "zstd", "level": -3}``) or
    an instance (returned as is). Unavailable plugins raise :class:`CodecUnavailable`."""
    if isinstance(spec, Codec):
        return spec
    if not isinstance(spec, str | dict):  # None failed as "not a mapping"
        raise CodecNotFound(
            f"a codec is named by a string (e.g. 'lz4') or a config dict (e.g. {{'name': "
            f"'zstd', 'level': 3}}), got {type(spec).__name__} {spec!r}"
        )
    config = {"name": spec, **params} if isinstance(spec, str) else {**spec, **params}
    name = config.get("name")
    if not isinstance(name, str):
        raise CodecNotFound(f"codec config {config!r} has no 'name'")
    return _watched(name, _built, name, config)


def _built(name: str, config: dict[str, Any]) -> Codec:
    """:func:`get_codec` of a config that names its codec."""
    cls = load_codec_class(name)
    probe = probe_of(cls, name)
    if not probe.available:
        raise CodecUnavailable(f"codec {name!r} cannot run here: {probe.reason}")
    try:
        codec = cls.from_config(config)
        config_of = codec.get_config()  # its params(), the plugin's code too
    except (ValueError, CodecError):  # a config the codec refuses: said by the codec
        raise
    except BaseException as exc:  # a SystemExit(0) among them ended commands with success
        if from_signal(exc):
            raise
        raise CodecUnavailable(
            f"codec {name!r} failed to start ({type(exc).__name__}: {exc}); "
            f"{faulty_plugin_hint(name)}"
        ) from exc
    _check_json_config(codec, config_of)
    return codec


def _check_json_config(codec: Codec, config: dict[str, Any]) -> None:
    """Refuse a codec whose config (``codec.get_config()``) does not come back equal from
    JSON: a stream's preamble and a trace carry it as JSON, so writing one failed in a
    traceback (an object, bytes), or the other end built a codec unequal to this one
    (NaN, a tuple)."""
    try:
        same = json.loads(json.dumps(config, allow_nan=False)) == config
    except (TypeError, ValueError) as exc:
        same, why = False, f": {exc}"
    else:
        why = ""
    if not same:
        raise CodecUnavailable(
            f"codec {codec.name!r} has a config that is not plain JSON ({config!r}{why}); "
            f"streams carry codec configs as JSON; {faulty_plugin_hint(codec.name)}"
        )


def plugin_statuses() -> list[PluginStatus]:
    """Every registered plugin with availability, path and reason, failures and collisions
    included, as stevedore reads them now. Plugins whose name another plugin also registers
    are reported, not imported."""
    by_name: dict[str, list[EntryPoint]] = {}
    for ep in _read_again():
        by_name.setdefault(ep.name, []).append(ep)
    failures: dict[str, BaseException] = {}
    manager = _Named(
        NAMESPACE,
        names=[name for name, entries in by_name.items() if len(entries) == 1],
        on_load_failure_callback=lambda _manager, ep, exc: failures.setdefault(
            ep.name, _load_failure(exc)
        ),
        on_missing_entrypoints_callback=None,
    )
    loaded = {ext.name: ext.plugin for ext in manager.extensions}
    statuses = []
    for name in sorted(by_name):
        entries = by_name[name]
        source = ", ".join(sorted(ep.value for ep in entries))
        if len(entries) > 1:
            reason = _collision(entries)
        elif name in failures:
            exc, hint = failures[name], install_hint(failures[name], entries[0])
            reason = f"failed to load: {type(exc).__name__}: {exc}; {hint}"
        elif name not in loaded:  # the list changed while loading: reported, never raised
            reason = "not loaded: the installed packages changed while loading"
        else:
            statuses.append(_status(name, loaded[name], source))
            continue
        statuses.append(PluginStatus(name, "?", False, CodecPath.UNAVAILABLE, reason, source))
    return statuses


def _status(name: str, cls: Any, source: str) -> PluginStatus:
    """A loaded plugin's status: its probe's answer, or why it cannot be a codec."""
    if not (isinstance(cls, type) and issubclass(cls, Codec)):
        return PluginStatus(name, "?", False, CodecPath.UNAVAILABLE, "not a Codec subclass", source)
    wrong = _not_a_codec(name, cls)
    if wrong:
        reason = f"the entry point {wrong}; {faulty_plugin_hint(name)}"
        return PluginStatus(name, "?", False, CodecPath.UNAVAILABLE, reason, source)
    probe = probe_of(cls, name)
    return PluginStatus(name, cls.kind, probe.available, probe.path, probe.reason, source)
