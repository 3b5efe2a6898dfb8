"""Beyond one machine: a Dask cluster for the stages' parallel loops and the training tasks, and
several local devices for one stream (issue 21; ``docs/scale.md`` is the how-to).

**A Dask cluster.**  One option selects it: ``scheduler("tcp://host:8786")`` (an existing
cluster: ``dask scheduler`` on one machine, ``dask worker tcp://host:8786 --nthreads 1`` on each of
the others) or ``scheduler("local:N")`` (a ``LocalCluster`` of N single-threaded worker processes on
this machine); the CLI's ``--scheduler`` and the series' ``scheduler`` parameter are the same
thing.  Inside ``with scheduler(...):``

- every stage loop that runs through :func:`mexpr._io.parallel` (pre-processing, flow,
  augmentation, the baselines' features) sends its tasks to the cluster through joblib's own Dask
  backend (:func:`joblib_backend`): the same tasks, not new loops;
- training and evaluation submit one Dask future per (protocol, fold, stream, seed) task
  (:func:`run_tasks`; :func:`mexpr.train.train_many`, :func:`mexpr.evaluate.evaluate`), and the
  baselines one per (fold, TIM length) SVM fit.

Without it (``scheduler(None)``, the default everywhere) nothing changes: the same code path as
before.  Every task is seeded by its own key (seed, fold, stream), never by the worker or the order
it runs in, so the results are those of the serial run, to the byte, as long as TensorFlow uses as
many threads as the serial run did (its CPU kernels add in another order with another thread count:
workers keep TensorFlow's default, all cores of their machine, as a serial run does; set
``TF_NUM_INTRAOP_THREADS`` for both to trade that for less over-subscription).  A worker that dies
mid-task has its task run again on another worker (Dask reschedules the tasks of a lost worker, up
to ``distributed.scheduler.allowed-failures`` times); every file on a task's path is written under a
temporary name and renamed into place (:func:`mexpr._io.replacing`), so a killed task leaves nothing
half-written, and a training task resumes from its last finished epoch.

**Several devices.**  :func:`strategy` gives the ``tf.distribute.MirroredStrategy`` over all local
GPUs (or, with none, all logical CPU devices) that :func:`mexpr.train.train_stream` builds a stream
under when its config has ``devices="all"`` (or a count): one replica per device, the batch size
scaled with the device count.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
from pathlib import Path

#: How a scheduler is named, for messages.
FORMS = "tcp://host:port (an existing Dask scheduler; also tls://) or local:N (a LocalCluster of N single-threaded worker processes here)"

_ADDRESS = re.compile(r"^(tcp|tls)://(?P<host>\[[0-9a-fA-F:.]+\]|[A-Za-z0-9._-]+):(?P<port>\d+)/?$")

_ACTIVE: list = []  # the clients of the open scheduler() blocks, innermost last


class ScaleError(ValueError):
    """A scheduler address or a device setting that cannot be used; the message says why."""


def parse(address: str | None) -> tuple[str, str | int] | None:
    """``None`` (no scheduler), ``("local", N)`` or ``("address", "tcp://host:port")``; a malformed
    address is a :class:`ScaleError` naming what is wrong with it."""
    if address is None or str(address).strip() == "":
        return None
    s = str(address).strip()
    if s.startswith("local"):
        n = s[len("local") :].lstrip(":")
        if not s.startswith("local:") or not n.isdigit() or int(n) < 1:
            raise ScaleError(f"scheduler {address!r}: a local cluster is local:N with N >= 1 worker processes, e.g. local:2")
        return ("local", int(n))
    if "://" not in s:
        hint = f"; did you mean tcp://{s}?" if re.match(r"^[A-Za-z0-9._-]+:\d+$", s) else ""
        raise ScaleError(f"scheduler {address!r} has no protocol{hint} (valid: {FORMS})")
    scheme = s.split("://", 1)[0]
    if scheme not in ("tcp", "tls"):
        raise ScaleError(f"scheduler {address!r}: protocol {scheme}:// is not supported (valid: {FORMS})")
    m = _ADDRESS.match(s)
    if not m:
        raise ScaleError(f"scheduler {address!r} is not {scheme}://host:port (a host name or IP address, a colon, a port number)")
    port = int(m["port"])
    if not 1 <= port <= 65535:
        raise ScaleError(f"scheduler {address!r}: port {port} is not in 1..65535 (Dask's default is 8786)")
    return ("address", s.rstrip("/"))


def current():
    """The Dask ``Client`` of the innermost open :func:`scheduler` block, or ``None``."""
    return _ACTIVE[-1] if _ACTIVE else None


def describe() -> dict:
    """Where the work runs, for a stage's record: ``{}`` here, or ``{"scheduler": address, "workers": N}``."""
    client = current()
    if client is None:
        return {}
    return {"scheduler": client.scheduler.address, "workers": len(client.nthreads())}


def code_fingerprint() -> str:
    """A digest of this ``mexpr``'s source files: a worker must run the same code as the client."""
    root = Path(__file__).resolve().parent
    h = hashlib.blake2b(digest_size=8)
    for f in sorted(root.rglob("*.py")):
        h.update(str(f.relative_to(root)).encode() + b"\0" + f.read_bytes())
    return h.hexdigest()


def _check_workers(client) -> None:
    """Every worker imports ``mexpr`` from the same code as this process, or a :class:`ScaleError`
    lists those that do not (and what they run)."""

    def probe():  # defined here, so that it travels by value: a worker without mexpr can still answer
        try:
            from mexpr import scale

            return scale.code_fingerprint(), str(Path(scale.__file__).parent)
        except Exception as e:  # noqa: BLE001 - reported, not raised, on the worker
            return None, f"cannot import mexpr: {type(e).__name__}: {e}"

    mine = code_fingerprint()
    wrong = {addr: where for addr, (fp, where) in client.run(probe).items() if fp != mine}
    if wrong:
        lines = "; ".join(f"{a}: {w}" for a, w in sorted(wrong.items()))
        raise ScaleError(
            f"{len(wrong)} Dask worker(s) do not run this mexpr ({Path(__file__).resolve().parent}): {lines}. "
            "Install the same mexpr on every worker (or put the same checkout on PYTHONPATH) and restart them"
        )


def local_cluster(n_workers: int, **kwargs):
    """A ``LocalCluster`` of ``n_workers`` worker processes with one task thread each (one task at a
    time per process; TensorFlow inside keeps its default threads, as a serial run does), no
    dashboard, quiet logs; ``kwargs`` go to ``LocalCluster``."""
    import logging

    from distributed import LocalCluster

    opts = {"n_workers": int(n_workers), "threads_per_worker": 1, "processes": True, "dashboard_address": None, "silence_logs": logging.ERROR}
    return LocalCluster(**(opts | kwargs))


@contextlib.contextmanager
def scheduler(address: str | None, check: bool = True, timeout: float = 30):
    """Run the ``mexpr`` stages called inside the block on a Dask cluster (see the module text):
    ``address`` is ``"tcp://host:8786"``, ``"local:N"``, or ``None`` (nothing changes; yields
    ``None``).  Yields the ``distributed.Client``.  A ``local:N`` cluster lives as long as the block;
    an existing cluster is only disconnected from.  ``check``: refuse workers that do not import
    this same ``mexpr`` (:func:`code_fingerprint`).

    >>> with scheduler("local:2"):                      # doctest: +SKIP
    ...     evaluate.evaluate(run_dir, config)          # folds and streams as Dask tasks
    """
    spec = parse(address)
    if spec is None:
        yield None
        return
    from distributed import Client

    kind, value = spec
    cluster = None
    try:
        if kind == "local":
            cluster = local_cluster(value)
            client = Client(cluster, set_as_default=False)
        else:
            try:
                client = Client(value, timeout=timeout, set_as_default=False)
            except (OSError, TimeoutError) as e:
                raise ScaleError(
                    f"no Dask scheduler answers at {value} within {timeout:g} s ({type(e).__name__}: {e}); start one with: dask scheduler"
                ) from e
    except BaseException:
        if cluster is not None:
            cluster.close()
        raise
    try:
        if check:
            _check_workers(client)
        _ACTIVE.append(client)
        try:
            yield client
        finally:
            _ACTIVE.remove(client)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


_KERNEL = contextlib.ExitStack()  # the cluster a notebook's kernel uses until it ends (use())


def use(address: str | None):
    """For a notebook (:meth:`mexpr.run.Run.open`'s ``scheduler``): what ``with scheduler(address)``
    does, for the rest of this process (the kernel), so that every stage the notebook calls runs on
    the cluster.  ``None`` changes nothing; calling it again with the address in use does nothing
    (a re-run setup cell); another address replaces the first.  Returns the client or ``None``."""
    import atexit

    if parse(address) is None:
        return None
    if _ACTIVE and getattr(_ACTIVE[-1], "_mexpr_address", None) == address:
        return _ACTIVE[-1]
    _KERNEL.close()
    client = _KERNEL.enter_context(scheduler(address))
    client._mexpr_address = address
    if not getattr(use, "_registered", False):
        atexit.register(_KERNEL.close)
        use._registered = True
    return client


def joblib_backend():
    """A context in which joblib's ``Parallel`` uses the active cluster (joblib's own Dask backend),
    or, outside :func:`scheduler`, one that changes nothing."""
    client = current()
    if client is None:
        return contextlib.nullcontext()
    import joblib

    return joblib.parallel_config(backend="dask", client=client)


def task_key(kind: str, *parts) -> str:
    """A Dask task key that names the task (``"train-paper-s0-fold1-dtscnn64-<digest>"``); the digest
    of ``parts`` keeps two different tasks with the same name apart."""
    digest = hashlib.blake2b(repr(parts).encode(), digest_size=5).hexdigest()
    readable = "-".join(str(p) for p in parts if isinstance(p, (int, str)) and len(str(p)) < 24)
    return f"mexpr-{kind}-{readable}-{digest}"


def run_tasks(
    fn, calls: list[tuple], keys: list[str] | None = None, desc: str = "", progress: bool = False, costs: list[float] | None = None
) -> list:
    """``[fn(*args) for args in calls]``: here, one after another, without a scheduler; inside
    :func:`scheduler`, one Dask future per call (named by ``keys``), run by the cluster's workers
    in any order and gathered in the order of ``calls``.  ``costs`` (one per call, any unit): the
    costliest tasks start first (Dask priorities), so that a short task, not a long one, ends the
    run (longest-processing-time-first, within 4/3 of the best schedule).  The first task that
    fails cancels the others and its error is raised here."""
    if costs is not None and len(costs) != len(calls):
        raise ValueError(f"{len(costs)} costs for {len(calls)} tasks")
    client = current()
    if client is None:
        return [fn(*args) for args in calls]
    from distributed import as_completed
    from tqdm.auto import tqdm

    keys = keys or [task_key(getattr(fn, "__name__", "task"), i, *args) for i, args in enumerate(calls)]
    # costliest first (equal costs: the order of calls), both in submission (an idle worker starts the first task
    # it is sent) and in Dask's priorities (higher runs first) for the tasks that wait
    order = sorted(range(len(calls)), key=lambda i: (-float(costs[i]), i)) if costs is not None else list(range(len(calls)))
    submitted = {i: client.submit(fn, *calls[i], key=keys[i], priority=len(calls) - r) for r, i in enumerate(order)}
    futures = [submitted[i] for i in range(len(calls))]
    try:
        with tqdm(total=len(futures), desc=desc, unit="task", disable=not progress) as bar:
            for fut in as_completed(futures, loop=client.loop):
                if fut.status == "error":
                    fut.result()  # raises the task's own error
                bar.update(1)
        return client.gather(futures)
    except BaseException:
        client.cancel(futures)
        raise


def share(values: dict) -> dict:
    """``values`` (name -> large object, e.g. a feature matrix) as tasks should receive them: on a
    cluster, sent to the workers once (``Client.scatter``: a task gets a reference, its worker
    fetches the data once); without one, unchanged."""
    client = current()
    if client is None:
        return values
    return {k: client.scatter(v, hash=False) for k, v in values.items()}


# --------------------------------------------------------------------------------------------
# several devices


def check_devices(devices) -> int | str:
    """``devices`` as :class:`mexpr.train.Config` keeps it: ``1`` (one device, the default: no
    strategy), ``"all"``, or a count >= 2; anything else is a :class:`ScaleError`."""
    if isinstance(devices, str):
        s = devices.strip().lower()
        if s == "all":
            return "all"
        if not s.isdigit():
            raise ScaleError(f"devices must be 'all' or a number of devices >= 1, not {devices!r}")
        devices = int(s)
    if isinstance(devices, bool) or not isinstance(devices, int) or devices < 1:
        raise ScaleError(f"devices must be 'all' or a number of devices >= 1, not {devices!r}")
    return devices


def local_devices() -> list[str]:
    """The logical devices a stream can be spread over: the GPUs, or with none, the CPU devices
    (one, unless the CPU was split with ``tf.config.set_logical_device_configuration``)."""
    import tensorflow as tf

    gpus = tf.config.list_logical_devices("GPU")
    return [d.name for d in (gpus or tf.config.list_logical_devices("CPU"))]


def strategy(devices):
    """The ``tf.distribute.MirroredStrategy`` over ``devices`` (``"all"`` or a count; :func:`local_devices`),
    or ``None`` for one device.  On CPU devices the gradients are summed on one device
    (``ReductionToOneDevice``; NCCL is for GPUs).  Asking for more devices than there are is a
    :class:`ScaleError` naming those there are."""
    import tensorflow as tf

    devices = check_devices(devices)
    if devices == 1:
        return None
    found = local_devices()
    if devices != "all":
        if devices > len(found):
            raise ScaleError(f"{devices} devices asked for, but this machine has {len(found)}: {', '.join(found)}")
        found = found[:devices]
    if len(found) == 1:
        return None  # "all" of one device is one device
    cpu = all("CPU" in d.upper().split("/")[-1] for d in found)
    if cpu and os.environ.get("TF_ENABLE_ONEDNN_OPTS", "1") != "0":
        # measured with tensorflow-cpu 2.21: the oneDNN kernels fail on the second replica
        # ("input and filter must have the same depth: 3 vs 16") when the CPU is split into devices
        raise ScaleError(
            f"training across {len(found)} logical CPU devices needs TensorFlow's oneDNN kernels off: "
            "set TF_ENABLE_ONEDNN_OPTS=0 before TensorFlow starts (GPUs need nothing)"
        )
    cross = tf.distribute.ReductionToOneDevice() if cpu else None
    return tf.distribute.MirroredStrategy(devices=found, cross_device_ops=cross)
