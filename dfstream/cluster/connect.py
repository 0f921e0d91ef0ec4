"""Joining a Ray cluster from the driver, with one-line errors.

``--ray auto`` joins the cluster this machine belongs to (the one ``ray start`` last started
or joined here, or ``RAY_ADDRESS``), ``--ray HOST:PORT`` the cluster whose head listens there
(the address ``ray start --head`` prints), ``--ray ray://HOST:PORT`` goes through Ray Client
(needs ``ray[client]``). Ray itself retries a dead address for minutes, so the address is
first probed with a plain TCP connection, and ``ray.init`` is given ``CONNECT_TIMEOUT_S``: an
unreachable cluster is a ``SourceError`` (exit code 3), as is a missing Ray.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
from types import ModuleType
from typing import Any

from dfstream import __version__
from dfstream.errors import ExitCode, SourceError, UsageError
from dfstream.scan.executor import WorkerStartError

CONNECT_TIMEOUT_S = 30.0
PROBE_TIMEOUT_S = 5.0
INSTALL_HINT = "pip install 'dfstream[ray]'"


def import_ray() -> ModuleType:
    """The ``ray`` module, or a ``SourceError`` saying how to install it."""
    try:
        import ray
    except ImportError as exc:
        raise SourceError(
            f"--ray: Ray is not installed here ({exc.name or 'ray'} missing): {INSTALL_HINT}"
        ) from exc
    return ray


def parse_address(address: str) -> tuple[str, int]:
    """``HOST:PORT`` (optionally ``ray://HOST:PORT``) -> (host, port); ``UsageError`` else."""
    text = address.removeprefix("ray://")
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise UsageError(
            f"--ray {address}: expected auto or HOST:PORT (the address `ray start --head` "
            "prints, e.g. 10.0.0.5:6379)"
        )
    return host.strip("[]"), int(port)


def _auto_address(ray: ModuleType) -> str:
    """The address ``auto`` stands for, found the way Ray finds it."""
    try:
        from ray._private.services import canonicalize_bootstrap_address

        found = canonicalize_bootstrap_address("auto")
    except ConnectionError:
        found = None  # Ray's "Could not find any running Ray instance"
    except Exception as exc:  # Ray's own lookup failed otherwise: say so in one line
        raise SourceError(
            f"--ray auto: cannot look for a Ray cluster here ({' '.join(str(exc).split())}); "
            "pass --ray HOST:PORT"
        ) from exc
    if not found:
        raise SourceError(
            "--ray auto: no running Ray cluster found on this machine; start one with "
            "`ray start --head`, or pass --ray HOST:PORT"
        )
    return str(found)


def probe(address: str) -> None:
    """Raise ``SourceError`` unless something accepts TCP connections at ``address``."""
    host, port = parse_address(address)
    try:
        with socket.create_connection((host, port), timeout=PROBE_TIMEOUT_S):
            pass
    except OSError as exc:
        why = exc.strerror or type(exc).__name__
        raise SourceError(
            f"--ray {address}: no Ray cluster answers there ({why}); start one with "
            "`ray start --head --port PORT` or check the address"
        ) from exc


def connect(address: str, *, timeout_s: float = CONNECT_TIMEOUT_S) -> ModuleType:
    """Join the cluster at ``address`` (see the module docstring); returns the ``ray`` module."""
    ray = import_ray()
    if ray.is_initialized():
        return ray
    target = _auto_address(ray) if address == "auto" else address
    probe(target)
    failure: list[BaseException] = []
    done = threading.Event()

    def init() -> None:
        try:
            ray.init(
                address=target,
                logging_level=logging.ERROR,
                log_to_driver=False,
                namespace="dfstream",
            )
        except BaseException as exc:  # noqa: BLE001 - reported on the caller's thread
            failure.append(exc)
        finally:
            done.set()

    # ray.init waits minutes for a port that is open but is not a Ray head: bound it.
    threading.Thread(target=init, name="ray-connect", daemon=True).start()
    if not done.wait(timeout_s):
        raise SourceError(
            f"--ray {address}: connected to {target} but no Ray cluster answered within "
            f"{timeout_s:g} s; is it the address `ray start --head` printed?"
        )
    if failure:
        text = " ".join(str(failure[0]).split())[:300]
        raise SourceError(f"--ray {address}: cannot join the Ray cluster at {target} ({text})")
    return ray


def kill_actor(ray: ModuleType, handle: object) -> None:
    """Kill an actor for good (no restart); one that is already gone is fine."""
    if handle is None:
        return
    with contextlib.suppress(Exception):
        ray.kill(handle, no_restart=True)


def check_started(info: dict[str, Any], name: str) -> None:
    """Raise ``WorkerStartError`` when an actor reports that it could not load its model
    (``info["error"]``: exit code and message), or runs another dfstream than the driver."""
    error = info.get("error")
    if error is not None:
        code, message = error
        raise WorkerStartError(f"{name} on {info.get('host')}: {message}", int(code))
    if info.get("version") != __version__:
        raise WorkerStartError(
            f"node {info.get('host')} runs dfstream {info.get('version')} but this driver runs "
            f"{__version__}: install the same version on every node",
            int(ExitCode.BACKEND),
        )


def raise_if_init_failed(exc: BaseException, name: str) -> None:
    """An actor whose constructor raised (dfstream missing or broken on its node, say) would
    fail the same way everywhere: raise ``WorkerStartError`` instead of replacing it."""
    if getattr(exc, "actor_init_failed", False):
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        raise WorkerStartError(f"{name} could not start on its node: {lines[-1] if lines else exc}")
