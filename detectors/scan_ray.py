"""`bitmark scan --engine ray`: the same manifest as the local engine, scored by Ray Data actors.

The driver (this process) does what must happen once: it lists the inputs (folders, a list of paths, or a
Parquet table with a `path` column and optionally the images' `bytes`), locks the manifest, checks its
header, and drops the paths already scored (resume). Ray Data then streams the remaining paths through a
pool of actors; each actor builds the encoder and detector once and scores a batch at a time with the
local engine's own `score_files`, so verdicts are identical. A file that cannot be read is an error row;
a batch that fails as a whole is scored again file by file, so one bad file never fails a task or costs
the others their rows. The driver appends each finished batch to the manifest (flushed, fsync-ed) as it
arrives, so killing the job loses at most the batches in flight.

Resources: the actors reserve `cpus_per_worker` (and `gpus_per_worker`) each; a local Ray is started with
one logical CPU more than the actors need, for Ray Data's own reading and splitting tasks, which would
otherwise wait for a CPU the actors hold (the pipeline starves). `RAY_ADDRESS` joins a running cluster.
Ray is imported here only, when a Ray scan runs.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from bitmark.detectors.manifest import encoder_identity, make_header, norm_path, path_fields
from bitmark.detectors.scan import list_inputs, open_manifest, score_files

log = logging.getLogger(__name__)


class RayMissing(ImportError):
    """The `ray` extra is not installed."""


class RayScanError(RuntimeError):
    """The Ray job itself failed (not one file: those get error rows); the rows written so far are kept."""


@dataclass(frozen=True)
class EncoderSpec:
    """How each worker builds its encoder: a shipped tokenizer by name ("photos") or a weights path."""

    data: str = "photos"

    def build(self):
        from bitmark.models import load_tokenizer

        return load_tokenizer(self.data)


def import_ray():
    try:
        import ray
        import ray.data  # the extra is ray[data]: both must import
    except ImportError as e:
        raise RayMissing(f"--engine ray needs the ray extra: pip install 'bitmark[ray]' ({e})") from None
    return ray


def read_path_table(path: str | Path) -> tuple[list[str], bool]:
    """The `path` column of a Parquet table (as os strs) and whether it also has a `bytes` column."""
    import pyarrow.parquet as pq

    schema = pq.read_schema(path)
    if "path" not in schema.names:
        raise ValueError(f"{path}: a table of inputs needs a `path` column (it has {schema.names})")
    col = pq.read_table(path, columns=["path"]).column("path").to_pylist()
    return [os.fsdecode(p) for p in col], "bytes" in schema.names


class _Scorer:
    """One per Ray worker: holds the tokenizer and detector, scores one batch of files per call."""

    def __init__(self, key_dict: dict, fpr: float, batch_size: int, encoder: Any, identity: dict, threads: int,
                 resync: bool = True, data: str | None = "photos", null: str | None = None,
                 detector: dict | None = None):
        import torch

        from bitmark.core.keys import WatermarkConfig, WatermarkKey
        from bitmark.detectors.watermark_filter import WatermarkFilter

        torch.set_num_threads(max(1, threads))
        key = WatermarkKey(bytes.fromhex(key_dict["secret"]), WatermarkConfig.from_dict(key_dict["config"]))
        encoder = encoder.build() if isinstance(encoder, EncoderSpec) else encoder
        found = encoder_identity(encoder)
        if found != identity:
            raise RuntimeError(f"this worker's encoder {found} is not the driver's {identity}; install the same weights")
        self.filt = WatermarkFilter(key, fpr=fpr, encoder=encoder, batch_size=batch_size, resync=resync, data=data, null=null)
        found = make_header(key, fpr, encoder, self.filt.detector.bits)["detector"]
        if detector is not None and found != detector:
            raise RuntimeError(f"this worker's detector {found} is not the driver's {detector}; install the same detector card")

    def __call__(self, batch: dict[str, Any]) -> dict[str, list[str]]:
        paths = [os.fsdecode(bytes(b)) for b in batch["path_bytes"]]
        data = [None if b is None else bytes(b) for b in batch["bytes"]] if "bytes" in batch else None
        try:
            rows = score_files(self.filt, paths, data)
        except Exception:  # whatever broke the batch, each file still gets its own row
            log.exception("a batch of %d failed; scoring its files one by one", len(paths))
            rows = []
            for i, p in enumerate(paths):
                try:
                    rows += score_files(self.filt, [p], None if data is None else [data[i]])
                except Exception as e:  # noqa: BLE001
                    rows.append({**path_fields(p), "error": f"scoring failed: {type(e).__name__}: {e}"})
        return {"row": [json.dumps(r) for r in rows]}


def _start(ray, workers: int | None, cpus_per_worker: float, gpus_per_worker: float) -> tuple[int, bool]:
    """Join RAY_ADDRESS's cluster or start a local Ray sized to the actors plus one CPU for reading."""
    started = False
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False  # the driver's own bar counts rows as they reach the manifest
    ctx.print_on_execution_start = False
    if not log.isEnabledFor(logging.INFO):
        for name in ("ray", "ray.data"):
            logging.getLogger(name).setLevel(logging.WARNING)
    if not ray.is_initialized():
        if os.environ.get("RAY_ADDRESS"):
            ray.init(log_to_driver=False)
        else:
            n = workers or max(1, (os.cpu_count() or 2) - 1)
            ray.init(address="local", num_cpus=math.ceil(n * cpus_per_worker) + 1, include_dashboard=False, log_to_driver=False,
                     configure_logging=False)
            started = True
    if workers is None:
        cpus = ray.cluster_resources().get("CPU", 2)
        workers = max(1, int((cpus - 1) // cpus_per_worker))
    return workers, started


def scan_ray(
    key, inputs: Iterable[str | Path], manifest: str | Path, fpr: float = 0.01, keep_list: str | Path | None = None,
    limit: int | None = None, batch_size: int = 64, encoder=None, progress: bool = True, workers: int | None = None,
    cpus_per_worker: float = 1.0, gpus_per_worker: float = 0.0, paths_from: str | Path | None = None,
    encoder_spec: EncoderSpec | None = None, resync: bool = True, data: str | Path | None = "photos",
    null: str | None = None,
) -> dict[str, Any]:
    """`scan` on Ray Data. `encoder` (an object, pickled to each worker) or `encoder_spec` (each worker
    builds it; default the shipped "photos" tokenizer). `paths_from`: a text list (one path a line) or a
    `.parquet` table (`path`, optional `bytes`). Returns the local engine's counts plus `workers`."""
    ray = import_ray()
    from bitmark.detectors.resync import ResyncDetector
    from bitmark.detectors.watermark_filter import WatermarkFilter

    spec = encoder if encoder is not None else (encoder_spec or EncoderSpec())
    data = spec.data if isinstance(spec, EncoderSpec) else data
    local_encoder = encoder if encoder is not None else spec.build()  # the driver names it in the header
    local = WatermarkFilter(key, fpr=fpr, encoder=local_encoder, resync=resync, data=data, null=null).detector
    header = make_header(key, fpr, local_encoder, local.bits, resync=isinstance(local, ResyncDetector))
    inputs, has_bytes = list(inputs), False
    if paths_from is not None and str(paths_from).endswith(".parquet"):
        table_paths, has_bytes = read_path_table(paths_from)
        if has_bytes and inputs:
            raise ValueError("a Parquet table of image bytes is scanned on its own, without folders")
        paths = list(dict.fromkeys(list_inputs(inputs) + [norm_path(p) for p in table_paths]))
    else:
        from bitmark.detectors.manifest import read_path_list

        paths = list_inputs(inputs + (read_path_list(paths_from) if paths_from is not None else []))

    with open_manifest(manifest, header) as m:
        todo = [p for p in paths if p not in m.done]
        remaining = len(todo) - (limit if limit is not None else len(todo))
        todo = todo[:limit] if limit is not None else todo
        if not todo:
            return {**m.summary(remaining, keep_list), "engine": "ray", "workers": 0}
        t0 = time.perf_counter()
        workers, started = _start(ray, workers, cpus_per_worker, gpus_per_worker)
        first: tuple[float, int] | None = None  # (seconds, rows) when the first batch reached the manifest
        try:
            ds = _dataset(ray, todo, paths_from if has_bytes else None, batch_size)
            ds = ds.map_batches(
                _Scorer, batch_size=batch_size, batch_format="numpy",
                compute=ray.data.ActorPoolStrategy(size=workers),
                num_cpus=cpus_per_worker, num_gpus=gpus_per_worker or None,
                fn_constructor_args=(key.to_dict(), fpr, batch_size, spec, header["encoder"], int(cpus_per_worker), resync,
                                     None if data is None else str(data), null, header["detector"]),
            )
            with tqdm(total=len(todo), desc=f"scan (ray, {workers} workers)", unit="img",
                      disable=not progress or None) as bar:
                try:
                    for out in ds.iter_batches(batch_size=None, batch_format="numpy"):
                        rows = [json.loads(r) for r in out["row"]]
                        m.append(rows)
                        bar.update(len(rows))
                        first = first or (time.perf_counter() - t0, len(rows))
                except ray.exceptions.RayError as e:
                    raise RayScanError(f"the Ray scan stopped after {m.new} new rows (kept in {m.path}; a rerun "
                                       f"resumes): {str(e).strip().splitlines()[-1]}") from e
        finally:
            if started:
                ray.shutdown()
        total = time.perf_counter() - t0
        summary = m.summary(remaining, keep_list)
    timing = {"total_s": round(total, 3), "first_rows_s": round(first[0], 3) if first else None,
              "first_rows": first[1] if first else 0}
    return {**summary, "engine": "ray", "workers": workers, "timing": timing}


def _dataset(ray, todo: Sequence[str], bytes_table: str | Path | None, batch_size: int):
    """The rows to score: `path_bytes` (the exact name), and `bytes` when the images come in a table."""
    blocks = max(1, min(len(todo) // batch_size + 1, 200))
    if bytes_table is None:
        return ray.data.from_items([{"path_bytes": os.fsencode(p)} for p in todo], override_num_blocks=blocks)
    wanted = set(todo)
    cwd = os.getcwd()

    def pick(batch: dict[str, Any]) -> dict[str, Any]:
        names = [os.path.normpath(os.path.join(cwd, os.fsdecode(p))) for p in batch["path"]]
        keep = [i for i, p in enumerate(names) if p in wanted]
        return {"path_bytes": [os.fsencode(names[i]) for i in keep], "bytes": [batch["bytes"][i] for i in keep]}

    return ray.data.read_parquet(str(bytes_table)).select_columns(["path", "bytes"]).map_batches(pick, batch_format="numpy")
