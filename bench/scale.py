"""`shelfcast bench scale`: what a night costs as the number of series grows.

For each size, a fresh home (SQLite registry, artifacts) gets generated sales of that many
series, then two nights run as a user runs them, each `shelfcast` command in its own process:
ingest the history, a cold night, ingest the next day's drop, a warm night. The wall time of
every command, the phases the registry recorded for each night (`timings_s`), and the peak
memory of each command's whole process tree (sampled, Dask workers included: the summed
resident memory, which counts pages the processes share once per process, and the summed
proportional set size, which shares them out) are written to `results.json` and `results.md`,
with a plot of cost against series.

No Prefect here: the nights run in child processes exactly as `shelfcast nightly` runs them,
by default each on the local Dask cluster it starts. `--dask-address` (with PREFECT_API_URL
reaching a Prefect server) and `--artifact-store` send them to a cluster and a store the user
runs; `--cluster loopback` starts one on this machine for the run
(`scripts/multi-machine-loopback.sh --cluster-only`: a Prefect server, moto's S3 server, a Dask
scheduler and two workers) and always stops it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

HISTORY_START = "2013-01-01"
LAST_DAY = dt.date(2017, 12, 31)
CLUSTERS = ("local", "loopback")
LOOPBACK_SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "multi-machine-loopback.sh"
LOOPBACK_START_S = 300.0
DASK_SCHEMES = ("tcp", "tls")


@dataclass(frozen=True)
class Cluster:
    """Where the nights run: the local Dask cluster each night starts (no address), or a
    scheduler the user runs (`dask_address`), with the artifact store the workers reach (None:
    each size's folder) and what else the nights' processes need in their environment (the
    Prefect API, the store's credentials: never written to the results)."""

    name: str = "local"
    dask_address: str | None = None
    artifact_store: str | None = None
    env: dict[str, str] = field(default_factory=dict, repr=False)

    @property
    def shown(self) -> str:
        """What the results say of it: the mode and the store's kind, no addresses."""
        store = "folder" if not self.artifact_store else \
            "file" if self.artifact_store.startswith("file://") else \
            self.artifact_store.partition("://")[0]
        return f"{self.name}, {store} store"


def check_cluster(*, cluster: str | None = None, dask_address: str | None = None,
                  artifact_store: str | None = None,
                  environ: dict[str, str] | None = None) -> Cluster:
    """The cluster of the options, checked: `cluster` one of CLUSTERS (`loopback` alone, it
    brings its own scheduler and store); `dask_address` a `tcp://` or `tls://` host and port,
    with PREFECT_API_URL set for the workers to report to; `artifact_store` a folder or a store
    URL. Raises ValueError naming the bad option."""
    environ = os.environ if environ is None else environ
    if cluster is not None and cluster not in CLUSTERS:
        raise ValueError(f"--cluster {cluster!r}: expected one of {', '.join(CLUSTERS)}")
    if cluster == "loopback":
        if dask_address or artifact_store:
            raise ValueError("--cluster loopback starts its own scheduler and object store: "
                             "drop --dask-address and --artifact-store")
        return Cluster("loopback")
    if dask_address:
        parts = urlsplit(dask_address)
        try:
            port = parts.port
        except ValueError:
            port = None
        if parts.scheme not in DASK_SCHEMES or not parts.hostname or port is None:
            raise ValueError(f"--dask-address {dask_address!r}: expected a scheduler's address, "
                             "e.g. tcp://10.0.0.5:8786")
        if not environ.get("PREFECT_API_URL"):
            raise ValueError(f"--dask-address {dask_address}: set PREFECT_API_URL to a Prefect "
                             "server the workers reach (see docs/operations.md)")
    if artifact_store:
        from storage.errors import RegistryError
        from storage.store import as_url

        try:
            artifact_store = as_url(artifact_store)
        except RegistryError as exc:
            raise ValueError(f"--artifact-store: {exc}") from None
    return Cluster("remote" if dask_address else "local", dask_address, artifact_store)


@contextlib.contextmanager
def loopback_cluster(folder: Path, progress=lambda message: None) -> Iterator[Cluster]:
    """A Prefect server, moto's S3 server, a Dask scheduler and two workers on 127.0.0.1, as
    `scripts/multi-machine-loopback.sh --cluster-only` starts them, for the block; stopped after
    it whatever happens (the script stops what it started when it gets SIGTERM). Its output goes
    to `folder`/loopback.log."""
    folder.mkdir(parents=True, exist_ok=True)
    settings, log = folder / "loopback.env", folder / "loopback.log"
    settings.unlink(missing_ok=True)
    progress("loopback cluster: starting a Prefect server, an S3 server, a Dask scheduler and "
             "two workers ...")
    with log.open("ab") as out:
        script = subprocess.Popen(["bash", str(LOOPBACK_SCRIPT), "--cluster-only", str(settings)],
                                  stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + LOOPBACK_START_S
        while not settings.exists():
            if script.poll() is not None or time.monotonic() > deadline:
                tail = log.read_text(errors="replace").strip().splitlines()[-1:] or [""]
                raise RuntimeError(f"the loopback cluster did not start (see {log}): "
                                   f"{tail[0][:300]}")
            time.sleep(1)
        env = dict(line.split("=", 1) for line in settings.read_text().splitlines() if line)
        settings.unlink()  # the store's credentials stay in memory only
        progress(f"loopback cluster: up, Dask at {env['SHELFCAST_DASK_ADDRESS']}")
        yield Cluster("loopback", env.pop("SHELFCAST_DASK_ADDRESS"),
                      env.pop("SHELFCAST_ARTIFACT_STORE"), env)
    finally:
        _stop(script)
        progress("loopback cluster: stopped")


def _stop(script: subprocess.Popen, wait_s: float = 90.0) -> None:
    """Ask the script to stop its roles (SIGTERM); its whole process group at once if it has
    not ended in `wait_s`."""
    if script.poll() is None:
        script.send_signal(signal.SIGTERM)
    try:
        script.wait(wait_s)
    except subprocess.TimeoutExpired:
        os.killpg(script.pid, signal.SIGKILL)
        script.wait()


@dataclass
class Command:
    """One `shelfcast` command of a size's run: its wall time and peak memory."""

    name: str
    wall_s: float
    peak_rss_mib: float
    peak_pss_mib: float
    start: str | None = None  # a night's: warm or cold
    phases_s: dict[str, float] = field(default_factory=dict)  # a night's, from the registry


@dataclass
class SizeResult:
    series: int
    stores: int
    items: int
    rows: int
    profile: str
    commands: list[Command]
    cluster: str = "local, folder store"

    def night(self, start: str) -> Command | None:
        return next((c for c in self.commands if c.start == start), None)


def shape_for(series: int) -> tuple[int, int]:
    """stores x items for a number of series: the article's 5 x 10 at 50, 10 stores above."""
    stores = 5 if series <= 50 else 10 if series <= 1000 else 20
    if series % stores:
        raise ValueError(f"--series {series}: must be a multiple of {stores} (the stores it "
                         "is generated over)")
    return stores, series // stores


def parse_sizes(text: str) -> list[int]:
    try:
        sizes = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise ValueError(f"--series {text!r}: expected numbers of series, e.g. 50,200,500") \
            from None
    if not sizes or any(size < 1 for size in sizes):
        raise ValueError(f"--series {text!r}: expected positive numbers of series")
    for size in sizes:
        shape_for(size)
    return sizes


class PeakMemory:
    """The largest summed resident memory (RSS) and proportional set size (PSS: each shared
    page divided among the processes that map it) of a process and all its descendants.

    RSS is sampled every `every_s`. PSS costs the kernel a walk of each process's memory map
    (75 ms for a TensorFlow worker here: sampled as often as RSS, the sampler took more than a
    core; a 500-series cold night it measured took 367 s, 322 s without it), so it is read
    when the RSS sum is within 5 % of its peak so far, and then not again for `pss_pause`
    times as long as the read took (a sampler busy at most about 1 / `pss_pause` of the
    time)."""

    def __init__(self, pid: int, every_s: float = 0.2, pss_pause: float = 20.0):
        self.pid, self.every_s, self.pss_pause = pid, every_s, pss_pause
        self.peak = self.peak_pss = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        import psutil

        try:
            root = psutil.Process(self.pid)
        except psutil.NoSuchProcess:
            return
        next_pss = 0.0
        while not self._stop.is_set():
            try:
                processes = [root, *root.children(recursive=True)]
            except psutil.Error:
                return
            rss = sum(_memory(process, "rss") for process in processes)
            self.peak = max(self.peak, rss)
            started = time.monotonic()
            if rss >= 0.95 * self.peak and started >= next_pss:
                self.peak_pss = max(self.peak_pss,
                                    sum(_memory(process, "pss") for process in processes))
                finished = time.monotonic()
                next_pss = finished + self.pss_pause * (finished - started)
            self._stop.wait(self.every_s)

    def stop(self) -> tuple[float, float]:
        """(peak summed RSS, peak summed PSS) in MiB."""
        self._stop.set()
        self._thread.join()
        return self.peak / 2**20, self.peak_pss / 2**20


def _memory(process, kind: str) -> int:
    """A process's resident (`rss`) or proportional (`pss`) memory in bytes; 0 once it ended."""
    import psutil

    try:
        return process.memory_info().rss if kind == "rss" else process.memory_full_info().pss
    except psutil.Error:
        return 0


def _run(argv: list[str], env: dict[str, str], log: Path) -> tuple[float, float, float]:
    """Run one command to its end; (wall seconds, peak RSS MiB, peak PSS MiB). Its output
    goes to `log`."""
    started = time.perf_counter()
    with log.open("ab") as out:
        out.write(f"\n$ {' '.join(argv)}\n".encode())
        out.flush()
        process = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT)
        memory = PeakMemory(process.pid)
        code = process.wait()
    wall, (peak, peak_pss) = time.perf_counter() - started, memory.stop()
    if code != 0:
        tail = log.read_text(errors="replace").strip().splitlines()[-1:] or [""]
        raise RuntimeError(f"`{' '.join(argv[1:3])}` exited {code} (see {log}): {tail[0][:300]}")
    return round(wall, 2), round(peak, 1), round(peak_pss, 1)


def _night_record(database: Path, as_of: dt.date) -> tuple[str | None, dict[str, float]]:
    """The start (warm/cold) and phase timings the registry holds for the night `as_of`."""
    from sqlalchemy import select

    from storage.db import make_engine, session_factory
    from storage.models import TrainingRun

    engine = make_engine(f"sqlite:///{database}")
    try:
        with session_factory(engine)() as session:
            run = session.scalars(select(TrainingRun).where(TrainingRun.as_of == as_of)
                                  .order_by(TrainingRun.id.desc())).first()
            if run is None:
                return None, {}
            return getattr(run, "start", None), dict(run.timings_s or {})
    finally:
        engine.dispose()


def run_size(series: int, *, profile: str, work: Path, progress,
             cluster: Cluster = Cluster()) -> SizeResult:
    from storage.store import join
    from storage.synthetic import generate_sales, write_sales_csv

    stores, items = shape_for(series)
    home = work / f"series-{series}"
    home.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHELFCAST_")}
    env.update(cluster.env, SHELFCAST_HOME=str(home), PYTHONUNBUFFERED="1")
    if cluster.dask_address:
        env["SHELFCAST_DASK_ADDRESS"] = cluster.dask_address
    if cluster.artifact_store:  # a prefix per size: a run's sizes never share a store's files
        env["SHELFCAST_ARTIFACT_STORE"] = join(cluster.artifact_store, f"series-{series}")
    shelfcast = [sys.executable, "-m", "flows.cli"]
    log = home / "commands.log"

    progress(f"{series} series ({stores} stores x {items} items): generating sales ...")
    sales = generate_sales(stores=stores, items=items, start=HISTORY_START,
                           end=LAST_DAY.isoformat(), seed=series)
    history, drop = home / "history.csv", home / f"sales-{LAST_DAY}.csv"
    last = sales["date"] == sales["date"].max()
    write_sales_csv(sales[~last], history)
    write_sales_csv(sales[last], drop)
    first_night = LAST_DAY - dt.timedelta(days=1)

    commands: list[Command] = []

    def step(name: str, argv: list[str], night: dt.date | None = None) -> None:
        progress(f"{series} series: {name} ...")
        wall, peak, peak_pss = _run(shelfcast + argv, env, log)
        start, phases = _night_record(home / "registry.sqlite", night) if night else (None, {})
        commands.append(Command(name, wall, peak, peak_pss, start, phases))
        progress(f"{series} series: {name}: {wall:.1f} s, peak {peak:,.0f} MiB RSS, "
                 f"{peak_pss:,.0f} MiB PSS"
                 + (f", {start} start" if start else ""))

    step("ingest history", ["ingest", str(history)])
    step("night 1", ["nightly", "--as-of", str(first_night), "--profile", profile, "--cold"],
         first_night)
    step("ingest drop", ["ingest", str(drop)])
    step("night 2", ["nightly", "--as-of", str(LAST_DAY), "--profile", profile], LAST_DAY)
    return SizeResult(series, stores, items, len(sales), profile, commands, cluster.shown)


def scale_bench(sizes: list[int], *, profile: str, out: Path, keep: bool,
                progress=lambda message: None, cluster: Cluster = Cluster()) -> list[SizeResult]:
    """A cold and a warm night at each size, on `cluster` (for `loopback`: started for the run
    and stopped after it)."""
    out.mkdir(parents=True, exist_ok=True)
    results: list[SizeResult] = []
    work_dir = out / "work" if keep else Path(tempfile.mkdtemp(prefix="shelfcast-scale-"))
    try:
        with loopback_cluster(out, progress) if cluster.name == "loopback" else \
                contextlib.nullcontext(cluster) as running:
            for series in sizes:
                results.append(run_size(series, profile=profile, work=work_dir,
                                        progress=progress, cluster=running))
                write_results(results, out)  # a long run keeps what it measured so far
    finally:
        if not keep:
            import shutil

            shutil.rmtree(work_dir, ignore_errors=True)
    (out / "cost.png").write_bytes(cost_plot_png(results))
    return results


def write_results(results: list[SizeResult], out: Path) -> None:
    (out / "results.json").write_text(json.dumps([asdict(r) for r in results], indent=2))
    (out / "results.md").write_text(results_markdown(results))


def _phase_columns(results: list[SizeResult]) -> list[str]:
    names: list[str] = []
    for result in results:
        for command in result.commands:
            names += [name for name in command.phases_s if name not in names]
    return names


def unaccounted_s(command: Command) -> float | None:
    """A night's wall time outside the phases it recorded (process start, imports, Prefect's
    API start-up, the night's bookkeeping); the summed task seconds (`*_task_s`) are inside
    the build's wall and do not count, nor do figures other than seconds (MiB, workers)."""
    from policy.summary import is_wall_time

    walls = [seconds for name, seconds in command.phases_s.items() if is_wall_time(name)]
    return round(command.wall_s - sum(walls), 1) if walls else None


def _column(phase: str) -> str:
    """A phase's column head: `build_s` as `build s`, `store_read_mib` as `store_read MiB`."""
    from policy.summary import timing_unit

    unit = timing_unit(phase)
    return phase.removesuffix("_s") + " s" if unit == "s" else \
        f"{phase.removesuffix('_' + unit.lower())} {unit}".rstrip()


def results_markdown(results: list[SizeResult]) -> str:
    phases = _phase_columns(results)
    head = ["series", "cluster", "night", "start", "wall s", *[_column(p) for p in phases],
            "other s", "peak RSS MiB", "peak PSS MiB", "s per series"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for result in results:
        for command in result.commands:
            other = unaccounted_s(command)
            cells = [str(result.series), result.cluster, command.name, command.start or "",
                     f"{command.wall_s:.1f}",
                     *[f"{command.phases_s[p]:.1f}" if p in command.phases_s else ""
                       for p in phases], "" if other is None else f"{other:.1f}",
                     f"{command.peak_rss_mib:,.0f}", f"{command.peak_pss_mib:,.0f}",
                     f"{command.wall_s / result.series:.2f}"]
            lines.append("| " + " | ".join(cells) + " |")
    profile = results[0].profile if results else ""
    lines.append(f"\nProfile `{profile}`; history {HISTORY_START}..{LAST_DAY}; each command a "
                 "separate process; peak memory is the summed resident memory (RSS) and "
                 "proportional set size (PSS, shared pages divided among the processes) of the "
                 "command's process tree, sampled every 0.2 s. The `*_task` columns sum the "
                 "seconds of the build's tasks (in parallel on the Dask workers, so more than the "
                 "build's wall); `store_*` are the store's reads and writes from the split to the "
                 "saved artifacts, by the flow and the workers; `steps_task` sums the wall of the "
                 "build's steps on the workers (their store transfers included) and "
                 "`overhead_task` is the rest of the workers' time in the build (workers x build "
                 "wall less the steps: Prefect's and Dask's work per task, waits on dependencies, "
                 "idle workers); `other` is a night's wall outside its recorded phases (process "
                 "start, imports, Prefect's API start-up).")
    return "\n".join(lines) + "\n"


def cost_plot_png(results: list[SizeResult]) -> bytes:
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (wall, per_series) = plt.subplots(1, 2, figsize=(10, 4))
    for label in ("night 1", "night 2", "ingest history"):
        points = [(r.series, c) for r in results for c in r.commands if c.name == label]
        if not points:
            continue
        name = label if label.startswith("ingest") else \
            f"{label} ({points[0][1].start or '?'} start)"
        xs = [series for series, _ in points]
        wall.plot(xs, [c.wall_s / 60 for _, c in points], marker="o", label=name)
        per_series.plot(xs, [c.wall_s / s for s, c in points], marker="o", label=name)
    wall.set(xlabel="series", ylabel="wall time (minutes)", title="Cost of a night")
    per_series.set(xlabel="series", ylabel="seconds per series", title="Cost per series")
    sizes = sorted({r.series for r in results})
    profile = results[0].profile if results else ""
    for axes in (wall, per_series):
        axes.set_xscale("log")
        axes.set_xticks(sizes, [f"{size:,}" for size in sizes])
        axes.minorticks_off()
        axes.grid(alpha=0.3)
        axes.legend(fontsize=8)
    fig.suptitle(f"bench scale, profile {profile}: each size a fresh home, a cold then a warm "
                 "night", fontsize=10)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    return buffer.getvalue()
