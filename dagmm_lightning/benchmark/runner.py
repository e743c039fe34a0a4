"""``dagmm benchmark``: configs x data sets x seeds, resumable, with shallow reference rows; or, with
``--suite DIR``, DAGMMDetector settings (``--detector``) and four shallow detectors over a folder of .npz
tables (one-class protocol, or ``--suite-protocol contaminated``; ROC AUC; see
dagmm_lightning/benchmark/suite.py), also resumable.

    dagmm benchmark --configs configs/dagmm.yaml configs/vae.yaml --data configs/paper/thyroid.yaml
        --seeds 0-2 --epochs 500 --jobs 2 --baselines --out results/thyroid

writes ``<out>.csv`` (one row per run; started again, finished runs are skipped, a run of the same configs
made with other ``--epochs``, ``--set`` or selection settings, or whose configs resolve to other settings
now (the ``resolved`` column), is refused, and so is a method (a model config's file name and ``--tag``)
on a data set the file holds its runs of made by other configs (a config of that name elsewhere, or with
another data config: the report averages a method's runs; give another ``--tag`` or ``--out``); runs of
other methods are added; ``--baselines`` added later adds only the baseline rows (once per data
set, protocol and seed, whichever config is beside them), and
``--recon-inference`` added later is refused: its rows come from the trained model), ``<out>.md``
(mean and std over seeds of P/R/F1 at the data set's rho and ROC AUC) and ``<out>.png`` (F1 per method
with error bars). Each run trains on the protocol's training rows and is scored on its test rows, with
validation and checkpointing off, or, with ``--select-on METRIC``, validating every ``--val-every``
epochs and testing the checkpoint with the best validation value (val rows never reach test);
``--baselines`` adds scikit-learn's IsolationForest and a GaussianMixture (as many components as the first
config's model) fitted on the scaled training rows of the normal-only split (a mixed or positive-unlabeled
config's split made normal-only: the same rows whichever config comes first), scored on its test rows.
``--tag`` names a grid (for example a ``--set data.train_contamination=0.02`` sweep) so that several share
one CSV; ``--matrix CSV ...`` writes F1 at rho as a methods x data sets table from finished results files
(of one protocol per data set).
"""

from __future__ import annotations

import dataclasses
import hashlib
import inspect
import json
import logging
import multiprocessing
import os
import signal
import sys
import tempfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from dagmm_lightning.benchmark.report import (
    FIELDS,
    GRID_BASELINES,
    METRICS,
    PERCENTILES,
    add_columns,
    append_rows,
    changed_settings,
    is_baseline,
    read_rows,
    summarize_matrix,
    variant_source,
    write_reports,
)
from dagmm_lightning.benchmark.suite import (
    SUITE_FIELDS,
    is_suite_file,
    results_header,
    run_suite,
    suite_tables,
    write_suite_reports,
)
from dagmm_lightning.callbacks.metrics import AnomalyMetrics, anomaly_metrics
from dagmm_lightning.cli import (
    MAX_SEED,
    OneLineErrorParser,
    build_cli,
    check_settings,
    config_file_problem,
    contamination_mismatch,
    parse_settings,
    read_config,
)
from dagmm_lightning.data.datamodule import TABLE
from dagmm_lightning.detector import LABELLED_VARIANTS, DAGMMDetector
from dagmm_lightning.errors import ConfigurationError, did_you_mean, home_expanded, own_warnings_as_lines
from dagmm_lightning.labels import LABELLED_ANOMALY
from dagmm_lightning.scoring import ScoreCalibration

Selectable = Literal["f1_rho", "roc_auc", "average_precision"]
RECON = "+recon_inference"


@dataclass(frozen=True)
class Job:
    configs: tuple[str, ...]
    seed: int
    protocol: str
    epochs: int | None
    extra: tuple[str, ...]
    baselines: bool
    recon_inference: bool
    threads: int
    select_on: str | None = None
    val_every: int = 5
    checkpoint_dir: str = ""
    tag: str = ""
    train: bool = True  # False: the baseline rows only (added to a grid that ran without them)
    resolved: str = ""  # the run's settings, defaults filled in (resolved_config), for its rows

    @property
    def method(self) -> str:
        return Path(self.configs[0]).stem + self.tag

    @property
    def settings(self) -> str:
        """What besides method, configs, protocol and seed sets the run's result (a results file's column)."""
        pairs = sorted(f"{key[2:]}={value}" for key, value in zip(self.extra[::2], self.extra[1::2], strict=True))
        chosen = {"epochs": self.epochs, "set": pairs, "select_on": self.select_on}
        return json.dumps(chosen | ({"val_every": self.val_every} if self.select_on else {}), sort_keys=True)


def parse_seeds(text: str) -> list[int]:
    """``"0-2"`` -> [0, 1, 2]; ``"0,3,5"`` -> [0, 3, 5]."""
    seeds: list[int] = []
    for part in str(text).split(","):
        if part.strip().startswith("-") and part.strip()[1:].strip().isdigit():  # -1: not a range without a start
            raise ConfigurationError(f"--seeds {text!r}: seeds are in [0, {MAX_SEED}]")
        lo, dash, hi = part.partition("-")
        try:
            first, last = int(lo), int(hi) if dash else int(lo)  # a range without an end (0-) is an error
        except ValueError:
            raise ConfigurationError(f"--seeds takes ranges and lists such as 0-4 or 0,3,5; got {text!r}") from None
        if last < first:
            raise ConfigurationError(f"--seeds {text!r}: a range goes from low to high ({last}-{first})")
        if first < 0 or last > MAX_SEED:
            raise ConfigurationError(f"--seeds {text!r}: seeds are in [0, {MAX_SEED}]")
        seeds += list(range(first, last + 1))
    if not seeds or len(set(seeds)) != len(seeds):
        raise ConfigurationError(f"--seeds {text!r} names no seed, or one twice")
    return seeds


def _metric_row(metrics: dict) -> dict:
    return {k: metrics[k] for k in METRICS if k in metrics}


def _cli_args(job: Job) -> list[str]:
    args = [a for c in job.configs for a in ("--config", c)]
    args += ["--seed_everything", str(job.seed), "--data.protocol", job.protocol]
    if job.epochs is not None:
        args += ["--trainer.max_epochs", str(job.epochs)]
    if job.select_on is None:  # a config's own checkpoint monitor must not wait for validations that never come
        args += "--trainer.limit_val_batches 0 --checkpoint.save_top_k 0 --checkpoint.monitor null".split()
    else:  # keep the checkpoint of the best validation (val rows only; test rows are never looked at)
        args += ["--trainer.check_val_every_n_epoch", str(job.val_every), "--checkpoint.dirpath", job.checkpoint_dir]
        args += f"--checkpoint.save_top_k 1 --checkpoint.mode max --checkpoint.monitor val/{job.select_on}".split()
        # (validations at epochs' ends: a config's own schedule of steps, improved.yaml's 1,000, had been
        # refused by Lightning on a table of fewer batches an epoch)
        args += ["--checkpoint.save_on_train_epoch_end", "false", "--trainer.val_check_interval", "null"]
    quiet = "--trainer.logger false --trainer.enable_progress_bar false --trainer.enable_model_summary false"
    quiet += " --checkpoint.save_last false"  # no last.ckpt left under logs/
    return args + quiet.split() + list(job.extra)


RESOLVED_PARTS = ("model", "data", "trainer", "optimizer", "lr_scheduler", "metrics")


def resolved_config(cli_args: list[str]) -> str:
    """JSON of what a run of ``cli_args`` trains and tests with, as ``dagmm fit`` would read them, the defaults
    filled in (the seed, the checkpoint's folder and the config files' names aside). A positive-unlabeled
    run with ``--select-on``, which ``_run_job`` runs without selection, records the options it was given."""
    config = parse_settings(cli_args).as_dict()
    resolved = {part: config.get(part) for part in RESOLVED_PARTS}
    data = config.get("data") or {}
    path = home_expanded(data.get("path"))  # (as the data module reads it)
    if data.get("dataset") == TABLE and path and Path(path).is_file():  # (changed under its name)
        resolved[DATA_FILE] = file_digest(Path(path))
    source = variant_source((config.get("model") or {}).get("class_path", ""))
    if source is not None:  # a variant of one's own: its code may change between runs of one results file
        resolved["model_source"] = source
    return json.dumps(resolved, sort_keys=True, default=str)


DATA_FILE = "data_file"  # a table's file in a run's resolved settings: its bytes' digest


def file_digest(path: Path) -> str:
    """The first 16 hexadecimal digits of the SHA-256 of the file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


def check_grid_rows(csv_path: Path, rows: list[dict], job: Job, resolved: str) -> None:
    """Refuse to add ``job``'s method's runs to its ``rows`` in ``csv_path`` (the same configs and protocol,
    any seed) where those were made with other options (``--epochs``, ``--set``, selection) or with configs
    or defaults that resolved to other settings (a file's means would mix them); a setting only one side
    names is told, not refused (``changed_settings``)."""
    configs, name = " ".join(job.configs), " ".join((job.method, *job.configs[1:]))
    own = [r for r in rows if (r["method"], r["configs"], r["protocol"]) == (job.method, configs, job.protocol)]
    for row in own:
        if row.get("settings") and json.loads(row["settings"]) != json.loads(job.settings):
            raise ConfigurationError(
                f"{csv_path} holds {name} seed {row['seed']} run with other settings ({row['settings']}, now "
                f"{job.settings}); give another --out, or --tag"
            )
    now = json.loads(resolved)
    path = (now.get("data") or {}).get("path")
    if now.get(DATA_FILE) is not None:  # any method's rows (the baselines beside them too) of that file
        for row in rows:
            then = json.loads(row["resolved"]) if row.get("resolved") else {}
            there = (then.get("data") or {}).get("path")
            if (
                there
                and Path(there).resolve() == Path(path).resolve()
                and then.get(DATA_FILE, now[DATA_FILE]) != now[DATA_FILE]
            ):
                raise ConfigurationError(  # (had: the runs of the file as it was then reported beside the new ones)
                    f"{csv_path} holds runs of {path} as it was then ({row['method']} seed {row['seed']}): the file "
                    "has changed since (other bytes); give another --out"
                )
    changed, one_sided = changed_settings({r["resolved"] for r in own if r.get("resolved")}, resolved)
    if changed:
        raise ConfigurationError(
            f"{csv_path} holds {name} runs whose configs resolved to other settings than now, the configs', "
            "the defaults' or what this version of dagmm benchmark sets (or, model_source, a variant's code) "
            f"({changed}); give another --out, or --tag"
        )
    if one_sided:
        print(f"({csv_path}'s {name} runs and this version name different settings: {one_sided})", flush=True)


def dataset_label(configs: tuple[str, ...], extra: tuple[str, ...]) -> str:
    """The data set configs (under ``--set`` pairs) train on, as a results row names it (``table:flows``)."""
    dataset, path, _ = json.loads(own_data(configs, extra))
    return f"table:{Path(path).stem}" if dataset == TABLE else dataset


def check_one_configs_per_method(
    csv_path: Path, named: dict, method: str, protocol: str, dataset: str, configs: tuple[str, ...]
) -> None:
    """Refuse a grid's ``method`` (a model config's file name and ``--tag``) on ``dataset`` where ``named``
    ((method, protocol, data set) -> (configs, "file" or "grid"): the results file's rows, then the grid's
    runs) holds it made by other configs: a report would average both as one method. Adds the grid's."""
    text = " ".join(configs)
    earlier, source = named.setdefault((method, protocol, dataset), (text, "grid"))
    if earlier == text:
        return
    if [os.path.abspath(c) for c in earlier.split(" ")] == [os.path.abspath(c) for c in configs]:
        raise ConfigurationError(f"{csv_path} names these configs {earlier}: give them so, and its runs resume")
    if source == "grid":
        raise ConfigurationError(
            f"this grid runs {method} on {dataset} twice ({earlier}; {text}): a report would average them as one "
            "method (its name is the model config's file name); run them as two grids, each with its own --tag"
        )
    raise ConfigurationError(
        f"{csv_path} holds {method} runs on {dataset} of {earlier}, and this grid's {method} is {text}: a report "
        "would average them as one method (its name is the model config's file name and --tag); give another "
        "--tag or --out (a config since moved: write its new path in the file's configs column)"
    )


def run_job(job: Job) -> list[dict]:
    """Train and test one config on one seed (and the baselines on its split); rows for the CSV."""
    torch.set_num_threads(job.threads)
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)  # the progress line says enough
    with tempfile.TemporaryDirectory() as checkpoint_dir:
        return _run_job(dataclasses.replace(job, checkpoint_dir=checkpoint_dir))


def _run_job(job: Job) -> list[dict]:
    settings = job.settings  # as asked, also where PU's split turns the selection off below
    cli = build_cli(_cli_args(job), run=False, save_config=False)
    if job.train and job.select_on is not None and cli.datamodule.split == "positive_unlabeled":
        # its val rows are labelled normal rows (for c): no anomaly metric to select on, so the last epoch
        print(
            f"{job.method}: no anomalies in positive-unlabeled val rows; --select-on ignored, last epoch tested",
            flush=True,
        )
        job = dataclasses.replace(job, select_on=None)
        cli = build_cli(_cli_args(job), run=False, save_config=False)
    dm, model, trainer = cli.datamodule, cli.model, cli.trainer
    baseline_components = model.hparams.n_components or 4  # a K chosen from the data sizes DAGMM's rows, not F
    dataset = f"table:{Path(dm.path).stem}" if dm.dataset == TABLE else dm.dataset  # told apart by their files
    base = {"dataset": dataset, "protocol": job.protocol, "seed": job.seed, "configs": " ".join(job.configs)}
    base["settings"] = settings
    if not job.train:
        dm.setup("fit")
        baselines = run_baselines(baseline_data(dm), job.seed, int(baseline_components), base)
        return [dict(row, method=row["method"] + job.tag) for row in baselines]
    rows = []
    start = time.perf_counter()
    try:
        trainer.fit(model, datamodule=dm)
        seconds = time.perf_counter() - start
        mismatch = contamination_mismatch(model, dm, "--set model.init_args.contamination=null")  # (fit warns)
        if mismatch is not None:  # (what it moves: the P / R / F1 at the stored threshold)
            print(f"{job.method} seed {job.seed}: {mismatch}")
        loss = model.last_training_loss  # train/loss is logged every n steps only
        metrics_cb = next(c for c in trainer.callbacks if isinstance(c, AnomalyMetrics))
        selected = ""
        best = trainer.checkpoint_callback.best_model_path if job.select_on is not None else ""
        if job.select_on is not None and not best:
            print(f"{job.method}: no validation before the last epoch (--val-every {job.val_every}); testing it")
        if best:
            selected = torch.load(best, weights_only=False)["epoch"] + 1
            trainer.test(model, datamodule=dm, verbose=False, ckpt_path="best", weights_only=False)
        else:
            trainer.test(model, datamodule=dm, verbose=False)
        common = dict(base, epochs=trainer.current_epoch, selected_epoch=selected, seconds=round(seconds, 1))
        common["resolved"] = job.resolved
        common["final_loss"] = loss
        main_row = {**common, "method": job.method, "status": "ok", **_metric_row(metrics_cb.last_metrics["test"])}
        if hasattr(model.model, "c"):  # the positive-unlabeled estimate of p(labelled | normal)
            main_row["c"] = float(model.model.c)
            if main_row.get("recall_threshold") == 0:  # (dagmm fit's summary says so of the training rows)
                print(
                    f"{job.method} seed {job.seed}: c/2 flags no anomaly among the test rows (c {main_row['c']:.4f}): "
                    "the classifier has not learned to tell them apart; train longer"
                )
        rows.append(main_row)
        # only where the score is the plain energy: other scores (PU's 1 - h) the rescoring would not change
        if job.recon_inference and model.score_is_energy:
            rescored = rescore_with_reconstruction(model, dm, metrics_cb.reference(trainer) == "train+evaluated")
            rescored["roc_auc_energy"] = metrics_cb.last_metrics["test"]["roc_auc"]  # (the same weights' energy)
            rows.append({**common, "method": job.method + RECON, "status": "ok", **_metric_row(rescored)})
    except FloatingPointError as err:
        status, seconds = f"non-finite: {err}"[:200], round(time.perf_counter() - start, 1)
        rows.append(dict(base, method=job.method, status=status, seconds=seconds, resolved=job.resolved))
    if job.baselines:
        baselines = run_baselines(baseline_data(dm), job.seed, int(baseline_components), base)
        rows += [dict(row, method=row["method"] + job.tag) for row in baselines]
    return rows


@torch.no_grad()
def _energy_and_error(model, x: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    model.eval()
    outs = [model.model(model.model.as_input(torch.as_tensor(x[i : i + 8192]))) for i in range(0, len(x), 8192)]
    energy = torch.cat([o.energy for o in outs], dim=-1)
    return energy, torch.cat([o.error for o in outs], dim=-1).to(energy.dtype)


def rescore_with_reconstruction(model, dm, pooled_reference: bool) -> dict[str, float]:
    """Test metrics of the same weights scored with the study's modified inference (energy +
    reconstruction error, normalised and thresholded on the training rows)."""
    x_train, train_labels = dm.arrays("train")
    hp = model.hparams
    members = hp.get("members", 1)
    contamination = model.model.calibration.contamination  # (null in the config: the labels' share, taken at setup)
    calibration = ScoreCalibration("energy+reconstruction", hp.reconstruction_weight, contamination, members)
    train_scores = calibration.fit(*_energy_and_error(model, x_train[train_labels != LABELLED_ANOMALY]))
    x_test, y_test = dm.arrays("test")
    scores = calibration(*_energy_and_error(model, x_test)).numpy()
    reference = np.r_[train_scores.numpy(), scores] if pooled_reference else None
    return anomaly_metrics(scores, y_test, PERCENTILES, float(calibration.threshold), reference, dm.rho)


def baseline_data(dm):
    """The baselines' rows: ``dm`` (set up) where it is of the normal-only split, else its data set,
    protocol, seed and ``train_contamination`` in that split, set up here (the table read a second time),
    whatever split the config they run beside trains on (had: a positive-unlabeled config listed first gave
    them its unlabelled anomalies to train on, under the same names)."""
    if dm.split == "normal_only":
        return dm
    accepted = inspect.signature(type(dm)).parameters  # (hparams hold the CLI's _instantiator besides)
    settings = {key: value for key, value in dm.hparams.items() if key in accepted}
    normal = type(dm)(**{**settings, "split": "normal_only", "labelled_anomalies": None, "labelled_fraction": None})
    normal.setup("fit")
    return normal


def run_baselines(dm, seed: int, n_components: int, base: dict) -> list[dict]:
    """IsolationForest and GaussianMixture on the data module's scaled training rows, scored on its test
    rows; the percentile reference follows the protocol as for the trained models."""
    from sklearn.ensemble import IsolationForest
    from sklearn.mixture import GaussianMixture

    x_train, train_labels = dm.arrays("train")
    x_fit = x_train[train_labels != LABELLED_ANOMALY]  # never the labelled anomalies of a mixed split
    x_test, y_test = dm.arrays("test")
    forest = IsolationForest(random_state=seed, n_jobs=1)
    mixture = GaussianMixture(n_components, covariance_type="full", reg_covar=1e-6, random_state=seed)
    detectors = dict(zip(GRID_BASELINES, (forest, mixture), strict=True))
    rows = []
    for name, detector in detectors.items():
        start = time.perf_counter()
        try:
            detector.fit(x_fit)
        except ValueError as err:  # e.g. GaussianMixture's collapsed component: a result, not the grid's end
            status = f"failed: {err}"[:200]
            rows.append(dict(base, method=name, epochs=0, seconds=round(time.perf_counter() - start, 1), status=status))
            continue
        seconds = time.perf_counter() - start
        scores = -detector.score_samples(x_test)
        reference = np.r_[-detector.score_samples(x_fit), scores] if dm.protocol == "reimplementation" else None
        metrics = anomaly_metrics(scores, y_test, PERCENTILES, None, reference, dm.rho)
        rows.append(dict(base, method=name, epochs=0, seconds=round(seconds, 1), status="ok", **_metric_row(metrics)))
    return rows


OPTIONS: dict[str, dict] = {
    "--configs": dict(nargs="+", help="model configs (one method each)"),
    "--report": dict(nargs="+", metavar="CSV", help="only rewrite the table and figure of these results files"),
    "--matrix": dict(nargs="+", metavar="CSV", help="write <out>.md: F1 at rho, methods x data sets, from these files"),
    "--data": dict(nargs="*", default=[None], help="data configs composed with each model config"),
    "--seeds": dict(type=str, default="0-2", help="e.g. 0-4 or 0,3,7"),
    "--protocol": dict(type=Literal["paper", "reimplementation"], default="paper"),
    "--epochs": dict(type=int | None, default=None, help="override the configs' max_epochs"),
    "--jobs": dict(type=int, default=1, help="runs in parallel (processes)"),
    "--threads": dict(
        type=int | None,
        default=None,
        help="torch threads per run (default: cores / jobs; with --suite: the detector's n_jobs, 1 unless set)",
    ),
    "--baselines": dict(action="store_true", help="add IsolationForest and GaussianMixture rows"),
    "--recon-inference": dict(action="store_true", help="also score energy-scored models with energy+reconstruction"),
    "--select-on": dict(type=Selectable | None, default=None, help="test the checkpoint best on this val metric"),
    "--val-every": dict(type=int, default=5, help="epochs between validations with --select-on"),
    "--out": dict(
        type=str | None,
        default=None,
        help="results path without suffix (a dot in the name stays: res/lr0.01 writes res/lr0.01.csv)",
    ),
    "--tag": dict(type=str, default="", help="appended to every method name (sweeps over --set share a CSV)"),
    "--set": dict(action="append", default=[], metavar="KEY=VALUE", help="a `dagmm fit` option for every run"),
    "--suite": dict(type=str | None, default=None, help="a folder of .npz tables (X, y): DAGMMDetector vs baselines"),
    "--detector": dict(type=dict, default={}, help="DAGMMDetector settings for --suite, e.g. '{\"epochs\": 50}'"),
    "--tables": dict(
        type=str | None, default=None, help="with --suite: only these tables, comma-separated (e.g. 14_glass,29_Pima)"
    ),
    "--suite-protocol": dict(
        type=Literal["one-class", "contaminated"] | None,
        default=None,
        help="with --suite: train on half the normal rows (one-class; null, not given, is one-class), or on half "
        "the normal rows and half the anomalies, unlabelled (contaminated); the other rows test",
    ),
}


# options of --configs runs, with their defaults: given with --suite, they would be silently ignored
CONFIGS_ONLY = {
    "--configs": None,
    "--data": [None],
    "--protocol": "paper",
    "--epochs": None,
    "--jobs": 1,
    "--baselines": False,
    "--recon-inference": False,
    "--select-on": None,
    "--val-every": 5,
    "--set": [],
}


def check_model_config(path: Path, parser: OneLineErrorParser) -> None:
    """A ``--configs`` file must exist and be a method: name a model class, include a config, or train."""
    problem = config_file_problem(path)
    if problem is not None:
        parser.error(problem)
    content = read_config(path)
    model = content.get("model") if isinstance(content, dict) else None
    if isinstance(content, dict) and set(content) <= {"data", "model"} and "data" in content:
        if isinstance(model, dict) and "class_path" not in model:  # data and a threshold: configs/data/*
            parser.error(f"{path} sets no model class nor training (a data config? give it with --data)")


def data_config_problem(path: Path) -> str | None:
    """What keeps a readable ``--data`` file from being a data config: a model class or an included
    config (a method: its results would carry the ``--configs`` method's name), or None."""
    content = read_config(path)
    model = content.get("model")
    if (isinstance(model, dict) and "class_path" in model) or "config" in content:
        return f"{path} sets a model class or includes a config (a method): give it with --configs"
    return None


def own_data(path: Path | tuple[str, ...], extra: list[str] | tuple[str, ...]) -> str:
    """The data set a ``--configs`` file trains on (its own or one it includes; or configs composed, a
    config and a ``--data`` one), under ``--set``, as comparable text."""
    configs = (str(path),) if isinstance(path, Path) else path
    data = parse_settings([*(a for c in configs for a in ("--config", c)), *extra])["data"]
    return json.dumps([str(data.get(key)) for key in ("dataset", "path", "data_dir")])


def _stop_workers(pool: ProcessPoolExecutor) -> None:
    """Kill the pool's workers and drop its queued runs. SIGKILL: a worker within ``trainer.fit`` takes
    SIGTERM as Lightning's request to stop after the batch, and would then run the run queued for it."""
    workers = getattr(pool, "_processes", None)  # (private: the executor names its processes nowhere else)
    for process in list(workers.values() if workers is not None else multiprocessing.active_children()):
        process.kill()
    pool.shutdown(wait=True, cancel_futures=True)


TERMINATED = threading.Event()  # set by sigterm_as_interrupt's handler: this benchmark got SIGTERM


@contextmanager
def sigterm_as_interrupt():
    """SIGTERM (a scheduler's stop, `timeout`) ends a benchmark as Ctrl-C does: its runs under way stopped,
    the finished runs' report written, exit 143 (had: the process died at once, the grid's workers trained
    on, orphaned, and no report was written)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGTERM)

    def stop(signum, frame):
        if TERMINATED.is_set():  # (a second one while the runs stop)
            return
        TERMINATED.set()
        raise KeyboardInterrupt

    TERMINATED.clear()
    signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _end_interrupted(csv_path: Path, write) -> None:
    """After Ctrl-C or SIGTERM: the finished runs' report (``write``), how to go on, exit code 130 or 143."""
    how = "stopped by SIGTERM" if TERMINATED.is_set() else "interrupted"
    if read_rows(csv_path):
        write(csv_path)
        reports = f"{csv_path.with_suffix('.md')} and {csv_path.with_suffix('.png')}"
        print(f"\n{how}: wrote {reports} of the runs so far; the command resumes")
    else:
        print(f"\n{how} before a run ended: nothing written; the command starts again")
    raise SystemExit(128 + (signal.SIGTERM if TERMINATED.is_set() else signal.SIGINT)) from None


def _start_worker() -> None:
    """A worker's start: Ctrl-C (sent to the whole process group) is the main process's to handle (it stops
    the workers itself); our warnings printed as the command's own, ``dagmm: warning: ...`` (had: Python's
    format, naming concurrent/futures/process.py as their source)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    own_warnings_as_lines()


def out_path(out: str, suffix: str) -> Path:
    """The results file ``--out`` names with ``suffix``: the name as given (a dot in it, as in res/lr0.01, is
    no suffix), a .csv, .md or .png given with it taken off first."""
    path = home_expanded(Path(out))  # (quoted, or --out=~/...: no shell expands it)
    if path.suffix in (".csv", ".md", ".png"):
        path = path.with_suffix("")
    return path.with_name(path.name + suffix)


def cannot_write(path: Path) -> str | None:
    """Why the results file ``path`` cannot be written, or None: an existing file is opened for appending
    (unchanged), else a scratch file is made and removed in its nearest existing folder (nothing made that
    stays: a later check's refusal leaves no folder behind)."""
    try:
        if path.exists():
            with open(path, "a"):
                pass
        else:
            folder = next(parent for parent in path.absolute().parents if parent.exists())
            with tempfile.NamedTemporaryFile(dir=folder, prefix=f".{path.name}."):
                pass
    except OSError as err:
        return err.strerror or str(err)
    return None


def build_parser() -> OneLineErrorParser:
    parser = OneLineErrorParser(prog="dagmm benchmark", description=__doc__, allow_abbrev=False)
    for flag, options in OPTIONS.items():
        parser.add_argument(flag, **options)
    return parser


def main(argv: list[str] | None = None) -> None:
    with sigterm_as_interrupt():
        try:
            _main(argv)
        except KeyboardInterrupt:  # SIGTERM outside a run's loop (its setup, the reports): no report to write
            if not TERMINATED.is_set():
                raise
            print("dagmm: stopped by SIGTERM", file=sys.stderr)
            raise SystemExit(128 + signal.SIGTERM) from None


def _main(argv: list[str] | None) -> None:
    sys.stdout.reconfigure(line_buffering=True)  # progress lines reach a log file as they come
    parser = build_parser()
    args = parser.parse_args(argv)
    for name in ("jobs", "threads"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1, got {getattr(args, name)}")
    modes = [flag for flag in ("--configs", "--suite", "--report", "--matrix") if getattr(args, flag[2:])]
    if len(modes) > 1:  # (had: all but one ignored without a word)
        parser.error(
            f"{' and '.join(modes)}: one at a time (--configs or --suite runs; --report rewrites results files' "
            "reports; --matrix combines results files)"
        )
    typed = {token.split("=", 1)[0] for token in (sys.argv[1:] if argv is None else argv)}  # (no abbreviations)
    if args.report or args.matrix:
        run_only = [*CONFIGS_ONLY, "--seeds", "--threads", "--tag", "--detector", "--tables", "--suite-protocol"]
        given = [flag for flag in run_only if flag in typed]
        if given:
            parser.error(
                f"{', '.join(given)}: for --configs and --suite runs; --{'report' if args.report else 'matrix'} "
                "reads the results files as they are"
            )
    missing = [p for p in (args.report or []) + (args.matrix or []) if not Path(p).is_file()]
    if missing:
        csv = [f"{p}.csv" for p in missing if Path(f"{p}.csv").is_file()]  # (the --out name given, without .csv)
        parser.error(
            f"no such results file: {', '.join(missing)}" + (f" (did you mean {', '.join(csv)}?)" if csv else "")
        )
    other = [p for p in (args.report or []) + (args.matrix or []) if Path(p).suffix != ".csv"]
    if other:
        parser.error(f"--report and --matrix take the results .csv that --out wrote, not {', '.join(other)}")
    columns = (set(FIELDS[:4]), set(SUITE_FIELDS[:3]))  # a --configs or a --suite run's first columns
    foreign = [
        p for p in (args.report or []) + (args.matrix or []) if not any(c <= set(results_header(p)) for c in columns)
    ]
    if foreign:
        parser.error(f"not a results file that --out wrote: {', '.join(foreign)}")
    if args.out is not None:
        if args.out.endswith(("/", os.sep)):  # (a Path drops the slash: res/ had written res.csv beside res)
            parser.error(f"--out {args.out}: a folder; --out names results files to write (e.g. {args.out}run1)")
        written = out_path(args.out, ".md" if args.matrix else ".csv")
        above = next((parent for parent in written.absolute().parents if parent.exists()), Path("/"))
        if not above.is_dir() or written.is_dir():
            parser.error(
                f"--out {args.out}: {written if above.is_dir() else above} is "
                f"{'a folder' if above.is_dir() else 'a file'}; --out names results files to write"
            )
        unwritable = cannot_write(written)
        if unwritable:  # (had: found after the first run had trained, as a traceback)
            parser.error(f"--out {args.out}: cannot write {written}: {unwritable}")
    if args.suite:
        args.suite = home_expanded(args.suite)  # (quoted, or --suite=~/...: no shell expands it)
        if args.out is None:
            parser.error("--suite needs --out")
        given = [  # (given at its default too: --protocol paper had run the suite's one-class split without a word)
            flag
            for flag, default in CONFIGS_ONLY.items()
            if flag in typed or getattr(args, flag[2:].replace("-", "_")) != default
        ]
        if given == ["--baselines"]:
            parser.error(
                "--suite always runs the baselines (IsolationForest, k-NN, LOF, GaussianMixture): leave out --baselines"
            )
        if "--protocol" in given:
            parser.error(
                "--protocol is for --configs runs; the suite's is --suite-protocol (one-class or contaminated)"
            )
        given = [flag for flag in given if flag != "--baselines"]  # (alone: refused above; the suite runs them)
        if given:
            message = f"{', '.join(given)}: for --configs runs, not --suite"
            if "--jobs" in given:
                message += " (it runs one table at a time; --threads sets a run's threads)"
            if set(given) - {"--jobs"}:
                message += """; the detector's settings go in --detector (e.g. '{"epochs": 50}')"""
            parser.error(message)
        csv_path = out_path(args.out, ".csv")
        if csv_path.is_file() and not set(SUITE_FIELDS[:3]) <= set(results_header(csv_path)):
            parser.error(f"--out {args.out}: {csv_path} is no --suite results file; give another --out")
        method = "dagmm_detector" + args.tag
        settings = dict(args.detector)
        only = None
        if args.tables is not None:
            only = [name.strip().removesuffix(".npz") for name in args.tables.split(",")]
            if not all(only):
                parser.error(f"--tables {args.tables!r}: table names separated by commas (e.g. 14_glass,29_Pima)")
        known = list(DAGMMDetector().get_params())
        unknown = sorted(set(settings) - set(known))
        if unknown:
            hint = did_you_mean(unknown[0], known)
            raise ConfigurationError(f"--detector: {unknown} are not DAGMMDetector settings{hint}; see its docstring")
        if "random_state" in settings:  # each seed's run takes the seed: one fixed state would repeat one run
            parser.error("--detector: random_state is each run's seed; give the seeds with --seeds")
        if args.threads is not None and settings.get("n_jobs") is not None:  # (had: n_jobs taken, unsaid)
            parser.error("--threads and --detector's n_jobs both set the detector's threads: give one")
        try:
            kind = DAGMMDetector(**settings)._kind  # (the variant's name, or pu / dagmm for a class)
        except ConfigurationError as err:  # (a dotted path that does not import)
            raise ConfigurationError(f"--detector: {err}") from None
        if kind in LABELLED_VARIANTS:  # (had: a failed row per table, every mean blank)
            raise ConfigurationError(
                f"--detector: variant {settings['variant']!r} trains on labelled rows; the suite gives the detector "
                "none (its training rows are unlabelled): compare dagmm, vae or vqvae there"
            )
        try:  # (--threads: the detector's, through joblib's setting, which its n_jobs None reads)
            run_suite(
                Path(args.suite),
                parse_seeds(args.seeds),
                settings,
                method,
                True,
                csv_path,
                only,
                args.threads,
                args.suite_protocol or "one-class",
            )
        except (KeyboardInterrupt, SystemExit) as stop:  # (the report lists the tables not reached)
            if isinstance(stop, SystemExit) and not TERMINATED.is_set():  # (the detector's fit ends on SIGTERM
                raise  # with SystemExit 143: Lightning's stop)
            covered = suite_tables(Path(args.suite), only)
            _end_interrupted(csv_path, lambda path: write_suite_reports(path, covered))
        write_suite_reports(csv_path)
        print(f"wrote {csv_path}, {csv_path.with_suffix('.md')}, {csv_path.with_suffix('.png')}")
        return
    suite_only = [
        flag
        for flag, value in (
            ("--detector", args.detector != {}),
            ("--tables", args.tables is not None),
            ("--suite-protocol", args.suite_protocol is not None),
        )
        if value
    ]
    if suite_only:  # (had: ignored without a word)
        parser.error(f"{' and '.join(suite_only)}: only with --suite (DAGMMDetector over a folder of .npz tables)")
    suite_files = [p for p in args.matrix or [] if is_suite_file(Path(p))]
    if suite_files:
        parser.error(f"{', '.join(suite_files)}: --suite results (ROC AUC per table); --matrix combines --configs runs")
    if args.report:
        if args.out is not None:
            parser.error("--report rewrites each results file's own .md and .png; leave out --out")
        for path in map(Path, args.report):
            (write_suite_reports if is_suite_file(path) else write_reports)(path)
            print(f"wrote {path.with_suffix('.md')}, {path.with_suffix('.png')}")
        return
    if args.matrix:
        if args.out is None:
            parser.error("--matrix needs --out")
        twice = sorted({p for p in args.matrix if args.matrix.count(p) > 1})
        if twice:  # (had: "seed 0 is twice in" the file)
            parser.error(f"--matrix: {', '.join(twice)} given twice")
        out = out_path(args.out, ".md")
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(summarize_matrix([(Path(p), read_rows(Path(p))) for p in args.matrix]))
        print(f"wrote {out}")
        return
    if not args.configs or args.out is None:
        parser.error(
            "give --configs CONFIG ... --out PATH, --suite DIR --out PATH, --report CSV ..., or --matrix CSV ... "
            "--out PATH"
        )
    csv_path = out_path(args.out, ".csv")
    extra: tuple[str, ...] = ()
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep:
            parser.error(f"--set takes KEY=VALUE, got {item!r}")
        extra += (f"--{key.lstrip('-')}", value)
    owned = {"data.protocol": "--protocol", "seed_everything": "--seeds", "trainer.max_epochs": "--epochs"}
    for key in (e[2:] for e in extra[::2]):
        if key in owned:
            parser.error(f"--set {key}: the benchmark sets it per run; use {owned[key]}")
    if args.epochs is not None and args.epochs < 1:
        parser.error(f"--epochs must be at least 1, got {args.epochs}")
    twice = sorted({c for c in args.configs if args.configs.count(c) > 1})
    if twice:  # (had: run twice, each seed's rows counted twice in the means)
        parser.error(f"--configs: {', '.join(twice)} given twice")
    if "--val-every" in typed and args.select_on is None:
        parser.error("--val-every: the epochs between validations of --select-on; without it, no run validates")
    for config in args.configs:
        check_model_config(Path(config), parser)
    problems = (config_file_problem(Path(data)) or data_config_problem(Path(data)) for data in args.data if data)
    problem = next((p for p in problems if p is not None), None)
    if problem is not None:
        names = [Path(d).name for d in args.data if d and not Path(d).exists()]  # (--data thyroid: a data set's
        named = [Path("configs/data", n if n.endswith(".yaml") else f"{n}.yaml") for n in names]  # name)
        near = [str(path) for path in named if path.is_file()]
        parser.error(f"--data: {problem}" + (f" (did you mean {', '.join(near)}?)" if near else ""))
    threads = args.threads or max(1, (os.cpu_count() or 1) // max(args.jobs, 1))
    for config in args.configs:  # refused here, not in a worker (there: a long remote traceback)
        for data in args.data:
            configs = (config,) if data is None else (config, data)
            check_settings(_cli_args(Job(configs, 0, args.protocol, args.epochs, extra, False, False, 1)))
    if csv_path.is_file() and is_suite_file(csv_path):
        parser.error(f"--out {args.out}: {csv_path} holds --suite results; give another --out")
    rows_done = read_rows(csv_path)
    done = {(r["method"], r["configs"], r["protocol"], int(r["seed"])): r for r in rows_done}
    data_keys: dict[tuple, str] = {}

    def data_of(configs: tuple[str, ...], settings: tuple[str, ...]) -> str:
        """The data set a run reads (its configs under its --set pairs), as comparable text."""
        if (configs, settings) not in data_keys:
            try:
                if not all(Path(c).is_file() for c in configs):
                    raise FileNotFoundError(configs)
                data_keys[configs, settings] = own_data(configs, settings)
            except (Exception, SystemExit):  # an earlier row's config since moved or changed: its names stand in
                data_keys[configs, settings] = " ".join(configs)
        return data_keys[configs, settings]

    def row_settings(row: dict) -> tuple[str, ...]:
        pairs = json.loads(row["settings"]).get("set", []) if row.get("settings") else []
        return tuple(a for pair in pairs for a in ("--" + pair.partition("=")[0], pair.partition("=")[2]))

    baselined = {  # the baselines of a data set, protocol and seed are run once, whatever the config beside them
        (data_of(tuple(r["configs"].split(" ")), row_settings(r)), int(r["seed"]), r["protocol"])
        for r in rows_done
        if r["method"] == GRID_BASELINES[0] + args.tag
    }
    named = {  # a report's line averages a method name's runs on a data set: made by one configs each
        (r["method"].removesuffix(RECON), r["protocol"], r["dataset"]): (r["configs"], "file")
        for r in rows_done
        if not is_baseline(r)
    }
    resolved_of: dict[tuple[str, ...], str] = {}  # (one parse per configs: the seed plays no part)
    jobs, skipped, unchecked = [], 0, 0
    for config in args.configs:
        for data in args.data:
            configs = (config,) if data is None else (config, data)
            method = Job(configs, 0, args.protocol, None, (), False, False, 1, tag=args.tag).method
            label = dataset_label(configs, extra)
            check_one_configs_per_method(csv_path, named, method, args.protocol, label, configs)
            protocols = sorted({r["protocol"] for r in rows_done if r.get("dataset") == label} - {args.protocol})
            if protocols:  # (--matrix refuses a data set under two protocols in its files: it had been added)
                raise ConfigurationError(
                    f"{csv_path} holds {label} runs of the {' and '.join(protocols)} protocol; its runs of the "
                    f"{args.protocol} protocol go in a results file of their own: give another --out"
                )
            for seed in parse_seeds(args.seeds):
                data_and_seed = (data_of(configs, extra), seed, args.protocol)
                baselines = args.baselines and data_and_seed not in baselined  # once per data set and seed
                baselined.add(data_and_seed)
                options = (args.recon_inference, threads, args.select_on, args.val_every)
                job = Job(configs, seed, args.protocol, args.epochs, extra, baselines, *options, tag=args.tag)
                if configs not in resolved_of:  # the method's rows of every seed made as this grid makes its own
                    resolved_of[configs] = resolved_config(_cli_args(job))
                    check_grid_rows(csv_path, rows_done, job, resolved_of[configs])
                job = dataclasses.replace(job, resolved=resolved_of[configs])
                key = (job.method, " ".join(configs), args.protocol, seed)
                row = done.get(key)
                unchecked += row is not None and not row.get("resolved")
                scored = row is not None and row.get("status") == "ok" and row.get("roc_auc_energy") in ("", None)
                if args.recon_inference and scored and (job.method + RECON, *key[1:]) not in done:
                    raise ConfigurationError(
                        f"{csv_path} holds {' '.join((job.method, *configs[1:]))} seed {seed} run without "
                        "--recon-inference (its rows come from the trained model: they cannot be added later); "
                        "give another --out, or --tag"
                    )
                if row is None:
                    jobs.append(job)
                elif baselines:  # --baselines added to a grid that ran without
                    jobs.append(dataclasses.replace(job, train=False))
                else:
                    skipped += 1
    print(f"{len(jobs)} run{'' if len(jobs) == 1 else 's'} to do, {skipped} already in {csv_path}", flush=True)
    if skipped and any("settings" not in r for r in done.values()):
        print(f"({csv_path} predates the settings column: runs made with other settings are not told apart)")
    elif unchecked:
        print(f"({csv_path} holds runs of before the resolved column: their configs' settings are not checked)")
    if jobs and csv_path.is_file():
        add_columns(csv_path, FIELDS)  # (a file of before the resolved column: its rows blank there)
    started = time.perf_counter()
    pool = ProcessPoolExecutor(
        max_workers=max(args.jobs, 1), mp_context=get_context("spawn"), initializer=_start_worker
    )
    try:
        futures = {pool.submit(run_job, job): job for job in jobs}
        for i, future in enumerate(as_completed(futures), 1):
            job = futures[future]
            rows = future.result()
            append_rows(csv_path, rows)
            f1 = rows[0].get("f1_rho")
            summary = (
                f"F1@rho {f1:.4f}, ROC AUC {rows[0]['roc_auc']:.4f}" if isinstance(f1, float) else rows[0]["status"]
            )
            elapsed = f"{rows[0].get('seconds')} s; {(time.perf_counter() - started) / 60:.1f} min elapsed"
            name = job.method if job.train else f"{rows[0]['method']} (baselines added)"
            run = " ".join([name, *job.configs[1:]])  # (a config alone: its own data set)
            print(f"[{i}/{len(jobs)}] {run} seed {job.seed}: {summary} ({elapsed})")
    except BaseException as err:  # Ctrl-C, or a failed run: the runs under way stopped, not waited for
        handler = signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not stop the clean-up
        try:
            _stop_workers(pool)
        finally:
            signal.signal(signal.SIGINT, handler)
        if isinstance(err, KeyboardInterrupt) or TERMINATED.is_set():
            _end_interrupted(csv_path, write_reports)
        raise
    pool.shutdown()
    write_reports(csv_path)
    print(f"wrote {csv_path}, {csv_path.with_suffix('.md')}, {csv_path.with_suffix('.png')}", flush=True)
