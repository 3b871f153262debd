"""Executors: where the decoder's chunks of images are computed.

``runtime.executor: local`` (the default) computes every chunk in this process.
``runtime.executor: dask`` sends partitions of consecutive chunks to the workers of a
Dask distributed cluster. Each worker process builds one :class:`~medxai.pipeline.decoder.Decoder`
per run (so it loads the model once) and computes its partitions with
:meth:`Decoder.process`, the same code as the local executor. The workers write the
maps into ``output.dir`` (a shared file system on a cluster). The client gathers
the index rows, journals them and writes ``index.csv``.

An executor is a context manager with ``describe() -> dict`` (for ``run.json``) and
``run(decoder, chunks, done)``, which calls ``done(images, rows)`` once per finished
group of chunks, in any order.

A Dask worker that dies (killed, out of memory, a pre-empted node) has its task run
again by the scheduler on another worker (up to ``distributed.scheduler.allowed-failures``
times); the client gets one result per task, so no row is journaled twice. A partition
whose tasks kept killing workers becomes error rows, and the run goes on. A worker
whose map writes find the disk full returns the images it finished; the client
journals them and stops the run (:class:`~medxai.pipeline.decoder.RunStoppedError`).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import platform
import signal
import sys
import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Protocol

from medxai.errors import StudyError
from medxai.io import ManifestRow
from medxai.io.writers import DiskFullError, is_disk_full
from medxai.pipeline.config import Config, DaskSection

Done = Callable[[list[ManifestRow], list[dict[str, Any]]], None]
Chunks = Sequence[Sequence[ManifestRow]]


class ChunkProcessor(Protocol):
    """What an executor needs of a :class:`~medxai.pipeline.decoder.Decoder`."""

    config: Config
    fingerprint: str

    def process(self, chunks: Chunks, done: Done) -> None: ...

    def error_rows(self, row: ManifestRow, message: str) -> list[dict[str, Any]]: ...


#: Decoders built by this process (each loads the model once); a Dask worker reports it.
_LOADS = 0
_CACHE: dict[str, tuple[Any, threading.Lock]] = {}
_CACHE_LOCK = threading.Lock()


class LocalExecutor:
    """Computes every chunk in this process, one after the other (the default executor)."""

    name = "local"
    #: The chunks are computed in this process (so progress can move within a chunk).
    in_process = True

    def __enter__(self) -> LocalExecutor:
        return self

    def __exit__(self, *exc: Any) -> None:
        return None

    def describe(self) -> dict[str, Any]:
        """What ``run.json`` records under ``executor``."""
        return {"name": self.name}

    def run(self, decoder: ChunkProcessor, chunks: Chunks, done: Done) -> None:
        """Compute ``chunks`` in order; ``done`` gets each chunk as its maps are written."""
        decoder.process(chunks, done)


def make_executor(config: Config) -> LocalExecutor | DaskExecutor:
    """The executor that ``runtime.executor`` names (connects to nothing yet).

    Raises:
        medxai.pipeline.decoder.StudyError: ``dask`` is asked for and dask/distributed is not installed.
    """
    if config.runtime.executor == "dask":
        return DaskExecutor(config.runtime.dask)
    return LocalExecutor()


def partition_chunks(chunks: Chunks, size: int) -> list[list[Sequence[ManifestRow]]]:
    """Consecutive whole chunks, at most ``size`` images per partition (at least one chunk)."""
    parts: list[list[Sequence[ManifestRow]]] = []
    images = 0
    for chunk in chunks:
        if parts and images + len(chunk) <= size:
            parts[-1].append(chunk)
            images += len(chunk)
        else:
            parts.append([chunk])
            images = len(chunk)
    return parts


class DaskExecutor:
    """Computes partitions of chunks on a Dask distributed cluster, one task per partition.

    Args:
        settings: ``runtime.dask``: ``address`` (``local`` starts a ``LocalCluster`` of
            ``workers`` processes, one thread each), ``partition_size`` and ``timeout``.

    Raises:
        medxai.pipeline.decoder.StudyError: dask/distributed is not installed.
    """

    name = "dask"

    def __init__(self, settings: DaskSection):
        try:
            import distributed
        except ImportError as err:
            raise StudyError(
                "runtime.executor: 'dask' needs the dask and distributed packages: pip install medxai[dask] "
                f'(or pip install "dask[distributed]"); {err}'
            ) from err
        self.distributed = distributed
        self.settings = settings
        self.client: Any = None
        self.cluster: Any = None
        self.address = settings.address
        self.partitions = 0
        self.workers: dict[str, dict[str, Any]] = {}
        self._decoder: ChunkProcessor | None = None

    def __enter__(self) -> DaskExecutor:
        settings, distributed = self.settings, self.distributed
        try:
            if settings.address == "local":
                with _children_ignore_ctrl_c():
                    self.cluster = distributed.LocalCluster(
                        n_workers=settings.workers, threads_per_worker=1, processes=True, dashboard_address=":0"
                    )
                self.address = self.cluster.scheduler_address
            self.client = distributed.Client(self.address, timeout=settings.timeout, set_as_default=False)
        except (OSError, TimeoutError, ValueError) as err:
            self.__exit__()
            what = (
                "cannot start a local Dask cluster"
                if settings.address == "local"
                else "cannot reach the Dask scheduler at"
            )
            target = "" if settings.address == "local" else f" {settings.address}"
            raise StudyError(f"runtime.dask.address: {what}{target}: {err or type(err).__name__}") from err
        for address, info in _scheduler_workers(self.client).items():
            host, nthreads = info.get("host"), info.get("nthreads")
            self.workers[address] = {"address": address, "host": host, "nthreads": nthreads, "partitions": 0}
        print(f"medxai: Dask scheduler {self.address}, {len(self.workers)} workers", file=sys.stderr)
        if not self.workers:
            print("medxai: no Dask workers yet; the tasks wait until workers join", file=sys.stderr)
        return self

    def __exit__(self, *exc: Any) -> None:
        for resource in (self.client, self.cluster):
            if resource is not None:
                with contextlib.suppress(Exception):
                    resource.close()
        self.client = self.cluster = None

    def describe(self) -> dict[str, Any]:
        """What ``run.json`` records under ``executor``: the scheduler, the partitions and the workers."""
        return {
            "name": self.name,
            "address": self.address,
            "local_cluster": self.settings.address == "local",
            "partition_size": self.settings.partition_size,
            "partitions": self.partitions,
            "workers": sorted(self.workers.values(), key=lambda w: str(w["address"])),
        }

    def run(self, decoder: ChunkProcessor, chunks: Chunks, done: Done) -> None:
        """One task per partition; ``done`` gets each partition's rows as its task completes.

        On any exception (Ctrl-C included) the remaining tasks are cancelled; the
        partitions already handed to ``done`` stay done.
        """
        parts = partition_chunks(chunks, self.settings.partition_size)
        self.partitions = len(parts)
        if not parts:
            return
        self._decoder = decoder
        run_key = _run_key(decoder.config, decoder.fingerprint)
        token = uuid.uuid4().hex[:12]
        futures, part_of = [], {}
        for i, part in enumerate(parts):
            args = (type(decoder), decoder.config, decoder.fingerprint, run_key, part)
            future = self.client.submit(_compute_partition, *args, key=f"medxai-partition-{token}-{i}", pure=False)
            futures.append(future)
            part_of[future.key] = part
        try:
            for future in self.distributed.as_completed(futures, loop=self.client.loop):
                self._deliver(future, part_of[future.key], done)
        except BaseException:
            with contextlib.suppress(Exception):
                self.client.cancel(futures)
            raise

    def _deliver(self, future: Any, part: Chunks, done: Done) -> None:
        """Hand a finished task's rows to ``done``; a partition that killed its workers becomes error rows."""
        images = [row for chunk in part for row in chunk]
        try:
            rows, record = future.result()
        except self._killed_worker as err:
            try:
                detail = str(err)
            except Exception:  # noqa: BLE001 - the text is a courtesy; never fail on it
                detail = type(err).__name__
            message = (
                f"the Dask workers computing this image's partition died ({detail}); "
                "see the workers' logs (out of memory?), then run again to retry it"
            )
            assert self._decoder is not None
            done(images, [r for image in images for r in self._decoder.error_rows(image, message)])
            return
        worker = self.workers.setdefault(str(record["address"]), {"address": record["address"], "partitions": 0})
        worker.update(host=record["host"], pid=record["pid"], model_loads=record["model_loads"])
        worker["partitions"] += 1
        stopped = record.get("stopped")
        if stopped is None:
            done(images, rows)
            return
        finished = {row["image_id"] for row in rows}
        done([image for image in images if image.image_id in finished], rows)
        full = DiskFullError(stopped["errno"], stopped["message"])
        full.path, full.needed, full.free = stopped["path"], stopped["needed"], stopped["free"]
        raise full

    @property
    def _killed_worker(self) -> type[BaseException]:
        try:
            from distributed.scheduler import KilledWorker
        except ImportError:  # pragma: no cover - every supported distributed has it
            return _Never
        return KilledWorker


@contextlib.contextmanager
def _children_ignore_ctrl_c() -> Iterator[None]:
    """Processes started here ignore Ctrl-C: the client alone handles it, cancels and stops them."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _scheduler_workers(client: Any) -> dict[str, dict[str, Any]]:
    try:
        info = client.scheduler_info(n_workers=-1)
    except TypeError:  # distributed before the n_workers argument
        info = client.scheduler_info()
    return dict(info.get("workers", {}))


def _run_key(config: Config, fingerprint: str) -> str:
    """What a worker's cached decoder must match: the whole config and the model's fingerprint."""
    text = json.dumps(config.to_dict(), sort_keys=True, default=str) + fingerprint
    return hashlib.sha256(text.encode()).hexdigest()


# ------------------------------------------------------------------ on the workers
def _worker_decoder(
    build: Callable[[Config], ChunkProcessor], config: Config, fingerprint: str, run_key: str
) -> tuple[ChunkProcessor, threading.Lock]:
    """This process's decoder for the run: built by ``build`` (model loaded) on the first task, reused after."""
    global _LOADS
    with _CACHE_LOCK:
        if run_key not in _CACHE:
            if "tensorflow" not in sys.modules:
                from medxai.pipeline.quiet import import_tensorflow_quietly

                import_tensorflow_quietly()  # hide TensorFlow's C++ start-up messages, as `medxai run` does
            _CACHE.clear()  # one run's model at a time
            try:
                decoder = build(config)
            except StudyError as err:
                raise StudyError(f"{err} (on Dask worker host {platform.node()})") from err
            _LOADS += 1
            if decoder.fingerprint != fingerprint:
                raise StudyError(
                    f"model.path: {config.model.path} on Dask worker host {platform.node()} is not the client's "
                    "model file (a different SHA-256); give every worker the same file"
                )
            _CACHE[run_key] = (decoder, threading.Lock())
        return _CACHE[run_key]


def _compute_partition(
    build: Callable[[Config], ChunkProcessor], config: Config, fingerprint: str, run_key: str, chunks: Chunks
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """A Dask task: compute a partition's chunks; return their index rows and who computed them.

    ``build`` is the client's decoder class (sent by reference): the worker builds its own.

    The maps are written into ``output.dir`` with atomic renames under fixed names, so a
    task run again (its worker died) rewrites the same files and returns the same rows.
    """
    decoder, lock = _worker_decoder(build, config, fingerprint, run_key)
    rows: list[dict[str, Any]] = []
    stopped = None
    with lock:  # a worker with several threads computes one partition at a time
        try:
            decoder.process(chunks, lambda _images, image_rows: rows.extend(image_rows))
        except OSError as err:
            if not is_disk_full(err):
                raise
            # the images finished before still reach the client's journal
            stopped = {
                "errno": err.errno if err.errno is not None else errno.ENOSPC, "message": err.strerror or str(err),
                "path": getattr(err, "path", None) or err.filename or "", "needed": getattr(err, "needed", None),
                "free": getattr(err, "free", None),
            }  # fmt: skip
    record = _worker_record()
    if stopped is not None:
        record["stopped"] = stopped
    return rows, record


class _Never(Exception):
    """An exception nothing raises."""


def _worker_record() -> dict[str, Any]:
    address = None
    with contextlib.suppress(ImportError, ValueError):
        from distributed import get_worker

        address = get_worker().address
    return {"address": address, "host": platform.node(), "pid": os.getpid(), "model_loads": _LOADS}


def worker_loads() -> int:
    """How many decoders (model loads) this process has built; ``client.run(worker_loads)`` asks every worker."""
    return _LOADS
