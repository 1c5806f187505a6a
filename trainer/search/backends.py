"""Where trials run: trainer processes on this machine, or Ray tasks on a cluster.

A backend only starts ``python -m trainer train ...`` command lines and says when they end;
everything else goes through the trial's run directory (metrics, status, ``stop`` commands), so
the runner, the dashboard and a person steering by hand treat every trial alike, wherever it
runs. :class:`LocalBackend` runs each trial as a child process; :class:`RayBackend` runs each as a
Ray task that starts the same process on whichever node has the trial's CPUs and GPUs free.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import threading
from pathlib import Path
from typing import Callable

from trainer.contract.launching import child_env, spawn, stop

__all__ = ["BackendError", "Launched", "LocalBackend", "RayBackend", "make_backend"]


class BackendError(RuntimeError):
    """A backend that cannot start (Ray missing, a cluster out of reach), said before any trial."""


class Launched:
    """A started trial: ``poll()`` its exit status, ``terminate()`` (checkpoint and exit), ``kill()``."""

    pid: int | None = None
    where: str = "local"

    def poll(self) -> int | None:
        raise NotImplementedError

    def wait(self, timeout: float | None = None) -> int | None:
        raise NotImplementedError

    def terminate(self) -> None:
        raise NotImplementedError

    def kill(self) -> None:
        raise NotImplementedError


class _LocalProcess(Launched):
    def __init__(self, process: subprocess.Popen):
        self.process, self.pid = process, process.pid

    def poll(self) -> int | None:
        return self.process.poll()

    def wait(self, timeout: float | None = None) -> int | None:
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def terminate(self) -> None:
        if self.process.poll() is None:
            try:
                self.process.send_signal(signal.SIGTERM)
            except ProcessLookupError:
                pass

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


class LocalBackend:
    """Each trial a child process of the sweep (:func:`trainer.contract.launching.spawn`, tied to it)."""

    name = "local"

    def __init__(self, env: dict[str, str] | None = None):
        self.env = child_env(env)

    def launch(self, argv: list[str], log_path: Path, on_exit: Callable[[], None]) -> Launched:
        process = spawn(argv, log_path, env=self.env, tied=True)
        threading.Thread(target=lambda: (process.wait(), on_exit()), daemon=True,
                         name=f"sweep-wait-{process.pid}").start()
        return _LocalProcess(process)

    def close(self) -> None:
        pass


# --------------------------------------------------------------------------- Ray


def _run_trial(argv: list[str], log_path: str, env: dict[str, str], cwd: str | None) -> dict:
    """The body of a Ray task: run one trainer to its end on this node; SIGTERM it when cancelled."""
    import platform

    # this node's environment (CUDA_VISIBLE_DEVICES from Ray) + the sweep's
    process = spawn(argv, log_path, env=child_env(env), tied=True, cwd=cwd if cwd and os.path.isdir(cwd) else None)
    try:
        rc = process.wait()
    except BaseException:  # ray.cancel: let the trainer checkpoint and exit, then make sure it did
        stop(process)
        raise
    return {"returncode": rc, "node": platform.node(), "pid": process.pid}


class _RayTask(Launched):
    def __init__(self, ray, ref, on_exit):
        self.ray, self.ref, self.result = ray, ref, None
        self.where = "ray"
        ref.future().add_done_callback(lambda _future: on_exit())

    def poll(self) -> int | None:
        if self.result is None:
            ready, _ = self.ray.wait([self.ref], timeout=0)
            if not ready:
                return None
            try:
                self.result = self.ray.get(self.ref)
            except Exception:  # cancelled, or the node died
                self.result = {"returncode": -signal.SIGTERM}
        return self.result["returncode"]

    def wait(self, timeout: float | None = None) -> int | None:
        self.ray.wait([self.ref], timeout=timeout)
        return self.poll()

    def terminate(self) -> None:
        if self.poll() is None:
            self.ray.cancel(self.ref, force=False)  # KeyboardInterrupt in the task: SIGTERM to the trainer

    def kill(self) -> None:
        if self.poll() is None:
            self.ray.cancel(self.ref, force=True)
            self.ray.wait([self.ref], timeout=10)


def _check_reachable(address: str) -> None:
    host, sep, port = address.removeprefix("ray://").rpartition(":")
    if not sep or not port.isdigit():
        raise BackendError(f"--address {address!r}: write auto or HOST:PORT (the head node's GCS port, 6379 by default)")
    try:
        socket.create_connection((host, int(port)), timeout=3).close()
    except OSError as e:
        raise BackendError(f"cannot reach the Ray cluster at {address}: {e.strerror or e}; start it with "
                           f"`ray start --head` on the head node, or check the address") from None


class RayBackend:
    """Each trial a Ray task (``num_cpus`` = ``--cpus-per-trial``, ``num_gpus`` = ``--gpus-per-trial``)
    that runs the trainer on whichever node Ray picks. ``address``: ``auto`` joins the cluster
    running on this machine, ``HOST:PORT`` a remote head node; ``None`` starts a local instance (or
    uses one this process already started). Paths must be on a folder every node shares."""

    name = "ray"

    def __init__(self, address: str | None = None, cpus_per_trial: int = 1, gpus_per_trial: float = 0.0,
                 env: dict[str, str] | None = None):
        try:
            import ray
        except ImportError:
            raise BackendError("--backend ray needs Ray: pip install 'panda-babysitter[ray]' "
                               "(or pip install -e '.[ray]' in a checkout)") from None
        self.ray = ray
        self.started = False
        if not ray.is_initialized():
            if address not in (None, "auto"):
                _check_reachable(address)
            try:
                ray.init(address=address, include_dashboard=False, log_to_driver=False, configure_logging=False)
            except ConnectionError as e:
                raise BackendError(f"cannot join the Ray cluster at {address}: {e}") from None
            self.started = True
        self.env = dict(env or {})
        self.cwd = os.getcwd()
        self.remote = ray.remote(num_cpus=cpus_per_trial, num_gpus=gpus_per_trial or 0, max_retries=0)(_run_trial)

    def launch(self, argv: list[str], log_path: Path, on_exit: Callable[[], None]) -> Launched:
        ref = self.remote.remote(list(argv), str(Path(log_path).resolve()), self.env, self.cwd)
        return _RayTask(self.ray, ref, on_exit)

    def close(self) -> None:
        if self.started:
            self.ray.shutdown()


def make_backend(settings, env: dict[str, str] | None = None):
    """The backend ``settings.backend`` names (``BackendError`` when it cannot start)."""
    if settings.backend == "ray":
        return RayBackend(settings.address, settings.threads(), settings.gpus_per_trial, env)
    return LocalBackend(env)
