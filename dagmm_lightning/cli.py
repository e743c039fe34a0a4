"""LightningCLI for ``dagmm fit|validate|test|predict``, with the data module's input size linked into the model."""

from __future__ import annotations

import ast
import difflib
import inspect
import itertools
import logging
import multiprocessing
import os
import re
import secrets
import shutil
import signal
import sys
import tempfile
import threading
import time
import warnings
from contextlib import contextmanager, suppress
from pathlib import Path

# Lightning's CLI still calls jsonargparse APIs that newer releases flag as deprecated; that noise is
# not the user's to act on.
os.environ.setdefault("JSONARGPARSE_DEPRECATION_WARNINGS", "off")
warnings.filterwarnings("ignore", message=".*treespec.*")  # a Lightning-internal deprecation
warnings.filterwarnings("ignore", message="The dirpath has changed from")  # test/predict from another run's checkpoint
warnings.filterwarnings("ignore", message="LightningCLI's args parameter is intended")  # dagmm benchmark's runs
# a split without val (or test) rows: the fit's summary says 'val none' and 'validation: off' instead
warnings.filterwarnings("ignore", message="Total length of `InMemoryBatches` across ranks is zero")

import lightning as L  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
import yaml  # noqa: E402
from jsonargparse import Namespace  # noqa: E402
from jsonargparse.typing import register_type  # noqa: E402
from lightning.fabric.utilities.cloud_io import get_filesystem  # noqa: E402
from lightning.fabric.utilities.distributed import _suggested_max_num_threads  # noqa: E402
from lightning.pytorch.accelerators import CPUAccelerator  # noqa: E402
from lightning.pytorch.callbacks import ModelCheckpoint, ProgressBar  # noqa: E402
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI, SaveConfigCallback  # noqa: E402
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger  # noqa: E402
from lightning.pytorch.trainer.states import TrainerStatus  # noqa: E402
from lightning.pytorch.utilities import rank_zero_info  # noqa: E402
from lightning.pytorch.utilities.exceptions import MisconfigurationException, SIGTERMException  # noqa: E402

from dagmm_lightning import models  # noqa: E402
from dagmm_lightning.callbacks import AnomalyFigures, AnomalyMetrics, LastEpochCheckpoint, PredictionCSVWriter  # noqa: E402
from dagmm_lightning.callbacks.metrics import FIT_EPOCHS, FIT_STEPS, LABEL_FREE, LAST_STEP_VALIDATED  # noqa: E402
from dagmm_lightning.callbacks.progress import LINE_INTERVAL, REFRESH_RATE  # noqa: E402
from dagmm_lightning.cores import threads_beside_busy_cores  # noqa: E402
from dagmm_lightning.data import AnomalyDataModule  # noqa: E402
from dagmm_lightning.data.batches import batch_bounds  # noqa: E402
from dagmm_lightning.data.datamodule import ARRAYS, TABLE, default_data_dir  # noqa: E402
from dagmm_lightning.data.loaders import DATASETS  # noqa: E402
from dagmm_lightning.data.streaming import column_names  # noqa: E402
from dagmm_lightning.errors import (  # noqa: E402
    ConfigurationError,
    DataError,
    did_you_mean,
    home_expanded,
    import_failure,
    imported_class,
    own_error,
    own_warnings_as_lines,
    torch_load_failure,
    warn,
)
from dagmm_lightning.labels import KNOWN_NORMAL  # noqa: E402
from dagmm_lightning.models import DAGMM  # noqa: E402
from dagmm_lightning.models.dagmm import FIT_COUNTS_KEY, contamination_from_labels  # noqa: E402
from dagmm_lightning.models.pu import THRESHOLD_RULE  # noqa: E402
from dagmm_lightning.scoring import rows_above_quantile, ties_at_threshold  # noqa: E402

# what the launchers Lightning knows set on each machine (its own, SLURM, torchelastic, LSF, MPI, Kubeflow)
NODE_LAUNCH_VARIABLES = (
    "MASTER_ADDR",
    "NODE_RANK",
    "SLURM_NTASKS",
    "TORCHELASTIC_RUN_ID",
    "LSB_JOBID",
    "OMPI_COMM_WORLD_SIZE",
    "PMI_SIZE",
)
MAX_SEED = 2**32 - 1  # numpy's seeds
TRAINER_DEFAULTS = {
    "default_root_dir": "logs",  # checkpoints and config.yaml of a run without a logger: under logs/, not here
    "logger": {
        "class_path": "lightning.pytorch.loggers.TensorBoardLogger",
        # no placeholder hp_metric: TensorBoard's hparams view shows the first record, the final metrics' here
        "init_args": {"save_dir": "logs", "default_hp_metric": False},
    },
}


class QuietTips(logging.Filter):
    """Drops Lightning's advertising tips (other logging services, model registries) and its note that the
    loader is read to count a fit's steps (a cosine schedule's) from the output."""

    def filter(self, record: logging.LogRecord) -> bool:
        text = str(record.msg)
        return "Tip:" not in text and "litmodels" not in text and "to estimate number of stepping batches" not in text


for _handler in logging.getLogger("lightning.pytorch").handlers:
    _handler.addFilter(QuietTips())

# a torch.device setting (StochasticWeightAveraging's device, whose default is torch.device("cpu")) written to
# config.yaml as its name, read back as a device (had: 'Unable to serialize instance cpu', and a resume from that
# config.yaml failed inside the callback)
register_type(
    torch.device, serializer=str, deserializer=torch.device, deserializer_exceptions=(RuntimeError, TypeError)
)


class OneLineErrorParser(LightningArgumentParser):
    """A configuration error as one line (``dagmm: error: ...``), not buried under the whole usage."""

    def error(self, message: str, ex: Exception | None = None):
        if not self.exit_on_error:  # jsonargparse tries alternatives and expects the exception
            return super().error(message, ex)
        if PARSED_CWD:  # (jsonargparse reads a config from its own folder: the command line's paths are relative
            with suppress(OSError):  # to where it was typed; the hint had named DAGMM, not the config's class)
                os.chdir(PARSED_CWD[0])
        ours = own_error(ex)
        command, options = self.prog.replace(" [options]", ""), list(self._option_string_actions)
        sub = re.match(r"Subcommand '([\w-]+)' does not accept (?:option|nested key) '([^']+)'", message)
        subparsers = getattr(getattr(self, "_subcommands_action", None), "_name_parser_map", {})
        if sub and sub.group(1) in subparsers:  # a key of a config file: the subcommand's options tell
            command, options = f"{command} {sub.group(1)}", list(subparsers[sub.group(1)]._option_string_actions)
            message = f"unrecognized arguments: --{sub.group(2)}"
        text = ours or readable_parse_error(message, options)
        text = re.sub(r"no option --([\w.-]+)", lambda m: m.group(0) + set_in_config_file(m.group(1)), text)
        text = re.sub(
            r"^--([\w.-]+)(?=: .* has no such option)", lambda m: m.group(0) + set_in_config_file(m.group(1)), text
        )
        text += other_unknown_settings(text, options)
        model = named_model_class(PARSED_ARGS)  # (had: DAGMM, whichever class the command trains)
        models = f"; '{command} --model.help {model}' a model's" if "--model.help" in options else ""
        sys.stderr.write(f"dagmm: error: {text}\n  ('{command} --help' lists the options{models})\n")
        sys.exit(2)


PARSED_ARGS: list[str] = []  # the command line being parsed (DAGMMCLI.parse_arguments), for its errors
PARSED_CWD: list[str] = []  # the folder it was given in


def set_in_config_file(key: str) -> str:
    """`` (in FILE)`` where a setting ``key`` (``trainer.max_epoch``) that is not on the command line being
    parsed comes from one of its config files (jsonargparse reports it as an option), else ``""``."""
    if any(a == f"--{key}" or a.startswith(f"--{key}=") for a in PARSED_ARGS):
        return ""
    found = [  # a --data file's keys are the data section's
        path
        for option, section in (("--config", ""), ("-c", ""), ("--data", "data."))
        for path in config_files(PARSED_ARGS, (option,))
        if key in {section + k for k in config_keys(config_content(path) or {})}
    ]
    return f" (in {found[-1]})" if found else ""


def other_unknown_settings(text: str, options: list[str]) -> str:
    """``; FILE also sets K1 (did you mean ...?), K2: no options either`` where ``text`` reports an unknown
    setting of the config file FILE (``(in FILE)``) that sets others (jsonargparse stops at the first:
    each had cost a run to find), else ``""``. A model setting is checked against the model class the
    command line names; a setting inside a class's own settings (a logger's, a callback's) is not checked."""
    found = re.match(r"^(?:no option )?--([\w.-]+) \(in (.+?)\)", text)
    if not found:
        return ""
    reported, path = found.group(1), Path(found.group(2))
    section = "data." if path in config_files(PARSED_ARGS, ("--data",)) else ""
    fields = class_options(model_class_path(PARSED_ARGS))
    others = []
    for key in sorted(section + k for k in config_keys(config_content(path) or {})):
        parts = key.split(".")
        if key == reported or parts[0] == "config":
            continue
        if parts[0] == "model" and len(parts) > 1:
            if parts[1] not in ("class_path", "help", *fields) and fields:
                others.append(f"{key}{did_you_mean(parts[1], fields, quote=False, prefix='model.')}")
        elif not any(f"--{'.'.join(parts[:i])}" in options for i in range(min(2, len(parts)), len(parts) + 1)):
            near = did_you_mean(f"--{key}", options, quote=False)
            others.append(f"{key}{near.replace('--', '')}")
    if not others:
        return ""
    return f"; {path} also sets {', '.join(others)}: no option{'s' * (len(others) > 1)} either"


def read_config(path: Path):
    """A config file's content, loaded as jsonargparse loads it (libyaml where there, which also takes
    JSON indented with tabs)."""
    return load_yaml(path.read_text())


def load_yaml(text: str):
    """YAML (or JSON) text as jsonargparse loads it: libyaml where there."""
    return yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))


def yaml_error_text(err: yaml.YAMLError, path: Path) -> str:
    """A YAML error's problem and where it lies (line, column, and what was being parsed)."""
    try:  # the pure-Python loader's message names the character (libyaml's does not)
        yaml.safe_load(path.read_text())
    except yaml.YAMLError as detailed:
        err = detailed
    at = lambda mark: f"line {mark.line + 1}, column {mark.column + 1}"  # noqa: E731
    text = getattr(err, "problem", None) or str(err).splitlines()[0]
    if getattr(err, "problem_mark", None) is not None:
        text += f" at {at(err.problem_mark)}"
    if getattr(err, "context_mark", None) is not None and getattr(err, "context", None):
        text += f" ({err.context} from {at(err.context_mark)})"
    return text


def missing_config_hint(path: Path) -> str:
    """What a missing config's folder holds (its YAML files), or that configs/ is the repository's folder
    (a package installed elsewhere has none beside the current folder)."""
    folder = path.parent
    if folder.is_dir():
        names = sorted(p.name for p in folder.glob("*.y*ml"))
        more = f" and {len(names) - 12} more" if len(names) > 12 else ""
        laplace = "; lmm.yaml: the Laplacian mixture" if "lapla" in path.stem.lower() and "lmm.yaml" in names else ""
        return f" ({folder}/ holds {', '.join(names[:12])}{more}{laplace})" if names else ""
    if not path.is_absolute() and path.parts and path.parts[0] == "configs":
        return " (configs/ is the repository's folder: run dagmm in the repository's root, or give the file's path)"
    return ""


def config_file_problem(path: Path) -> str | None:
    """What keeps ``path`` from being read as a config (missing, not YAML, empty, no mapping), or None;
    None for a pipe (``--config <(...)``), which only jsonargparse may read."""
    if path.exists() and not path.is_file() and not path.is_dir():
        return None
    if path.is_dir():
        return f"{path} is a folder, not a config file"
    if not path.is_file():
        return f"no such config file: {path}" + missing_config_hint(path)
    try:
        content = read_config(path)
    except yaml.YAMLError as err:
        return f"{path} is not valid YAML: {yaml_error_text(err, path)}"
    except UnicodeDecodeError:
        return f"{path} is not a text file; a config is YAML"
    except OSError as err:
        return f"{path} cannot be read: {err.strerror or err}"
    settings = "settings as KEY: VALUE lines (such as `trainer: {max_epochs: 5}`)"
    if content is None:
        return f"{path} is empty; a config holds {settings}"
    if not isinstance(content, dict):
        return f"{path} holds a YAML {type(content).__name__}, not {settings}"
    return missing_colon(content, path)


SETTINGS_SECTIONS = {  # keys whose value is a mapping of settings (or, for some, a class name: no spaces)
    *("trainer", "data", "model", "init_args", "optimizer", "lr_scheduler"),
    *("checkpoint", "figures", "metrics", "prediction_writer"),
}


def missing_colon(content: dict, path: Path, prefix: str = "") -> str | None:
    """A section of a config (``SETTINGS_SECTIONS``) whose value is text such as ``batch_size 32``: a
    setting's line without its colon, which YAML reads as the section's text (jsonargparse then said
    "no class DAGMM ('str' object has no attribute 'keys')" or "Unable to load config"), or None."""
    for key, value in content.items():
        if isinstance(value, dict):
            found = missing_colon(value, path, f"{prefix}{key}.")
            if found is not None:
                return found
        elif key in SETTINGS_SECTIONS and isinstance(value, str) and not re.fullmatch(CONFIG_FILE_NAME, value.strip()):
            line = re.fullmatch(r"([A-Za-z_]\w*) +(\S.*)", value.strip())
            if line is not None:
                return (
                    f"{path}: {prefix}{key} holds the text {value!r} where settings were expected: a missing colon "
                    f"(`{line.group(1)}: {line.group(2)}`)?"
                )
    return None


CONFIG_FILE_NAME = r"[^:{}\n]+\.(ya?ml|json)"  # a value naming a file (that may be missing), not inline YAML


def option_values(args: list[str], *options: str) -> list[str]:
    """The values given to any of ``options`` (``--option VALUE`` or ``--option=VALUE``), in order."""
    values = []
    for a, b in zip(args, [*args[1:], None], strict=False):  # (b: None after the last; none for no args)
        if a in options and b is not None:
            values.append(b)
        elif a.startswith(tuple(o + "=" for o in options)):
            values.append(a.split("=", 1)[1])
    return values


def config_files(args: list[str], options: tuple[str, ...] = ("--config", "--data")) -> list[Path]:
    """The files a command line reads as configs through ``options`` (values that name a file, not inline
    YAML), in order, each followed by the files it includes under ``config:`` (relative to it); each once."""
    return [path for path, _ in config_files_and_includers(args, options)]


def config_files_and_includers(args: list[str], options: tuple[str, ...]) -> list[tuple[Path, Path | None]]:
    """``config_files``, each with the file whose ``config:`` includes it (None: named on the command line)."""
    named = [v for v in option_values(args, *options) if Path(v).exists() or re.fullmatch(CONFIG_FILE_NAME, v)]
    files: list[tuple[Path, Path | None]] = []
    pending: list[tuple[Path, Path | None]] = [(Path(v), None) for v in named]
    while pending:
        path, includer = pending.pop(0)
        if path.resolve() in {f.resolve() for f, _ in files}:
            continue
        files.append((path, includer))
        content = config_content(path)
        if content is not None and isinstance(content.get("config"), str):
            pending.insert(0, (path.parent / content["config"], path))
    return files


def config_files_problem(args: list[str]) -> str | None:
    """``config_file_problem`` of the first config file of ``args`` (or one they include) that has one; a
    path without its .yaml is named as one (had: jsonargparse's 'Parser key "config": File does not exist')."""
    for option in ("--config", "-c", "--data"):
        for value in option_values(args, option):
            path = Path(value)
            if path.exists() or re.fullmatch(CONFIG_FILE_NAME, value) or not re.fullmatch(r"[^:{}\n]+", value):
                continue  # (a file, a file's name, or inline YAML)
            if Path(f"{value}.yaml").is_file():
                return f"no such config file: {value} (did you mean {value}.yaml?)"
            if option != "--data" or "/" in value:  # (--data NAME: a class)
                return f"no such config file: {value}" + missing_config_hint(path)
    for path, includer in config_files_and_includers(args, ("--config", "--data")):
        problem = config_file_problem(path)
        if problem is not None and includer is not None:  # (a config copied away from the files it includes)
            named = config_content(includer)["config"]
            problem += f" (included by {includer}: its config: {named}, a path relative to that file's folder)"
        if problem is not None:
            return problem
    return None


MODEL_CLASSES = [name for name, c in vars(models).items() if isinstance(c, type) and issubclass(c, DAGMM)]


def config_content(path: Path) -> dict | None:
    """A config file's settings, or None where it holds none (no such file, a pipe, not YAML, not a mapping:
    ``config_file_problem`` names those, or jsonargparse does)."""
    try:
        content = read_config(path) if path.is_file() else None
    except (yaml.YAMLError, OSError, UnicodeDecodeError):
        return None
    return content if isinstance(content, dict) else None


def model_class_named(content: dict) -> str | None:
    """The model class a config's own lines name (``model: {class_path: X}``, ``model: X`` or a dotted
    ``model.class_path: X``), or None."""
    model = content.get("model")
    if isinstance(model, dict):
        model = model.get("class_path")
    model = model if model is not None else content.get("model.class_path")
    return model if isinstance(model, str) else None


def nothing_written(subcommand: str) -> str:
    """What a stopped run of ``subcommand`` left unwritten, for its line."""
    return " (no predictions written)" if subcommand == "predict" else ""


def named_model_class(args: list[str]) -> str:
    """The model class a command line names, for the help hint (its last ``--model NAME``, else the last
    ``--config`` that names one, with what it includes); DAGMM where none."""
    return model_class_path(args).rsplit(".", 1)[-1]


def model_class_path(args: list[str]) -> str:
    """``named_model_class``'s class as a dotted path (a name alone is one of dagmm_lightning.models')."""
    named = [n for n in (included_model_class(Path(v)) for v in option_values(args, "--config", "-c")) if n]
    named += [n for n in map(model_option_class, option_values(args, "--model", "--model.class_path")) if n]
    name = named[-1] if named else "DAGMM"
    return name if "." in name else f"dagmm_lightning.models.{name}"


def model_option_class(value: str) -> str | None:
    """The model class a ``--model`` value names: a class name, inline YAML (``{class_path: X, ...}``) or a
    file of such settings; None where it names none (or cannot be read)."""
    if re.fullmatch(r"[A-Za-z_][\w.]*", value) and not value.endswith((".yaml", ".yml", ".json")):
        return value
    try:
        settings = config_content(Path(value)) if Path(value).is_file() else yaml.safe_load(value)
    except (yaml.YAMLError, OSError, ValueError):  # (a value too long for a path, NUL in it: not a file)
        return None
    model = settings.get("class_path") if isinstance(settings, dict) else None
    return model if isinstance(model, str) else None


def included_model_class(path: Path) -> str | None:
    """The model class the config ``path`` names, in its own lines or in the files it includes."""
    for file in config_files(["--config", str(path)], ("--config",)):  # the file first, then its includes
        content = config_content(file)
        if content is not None and model_class_named(content) is not None:
            return model_class_named(content)
    return None


def included_config_problem(args: list[str]) -> str | None:
    """A message where a config file's ``config:`` key (jsonargparse's include) would drop its own settings
    silently: ones given before the ``config:`` line that the included files set again (what the include
    loads wins over the lines before it), or model settings after it without a class_path where the included
    files name a model class (jsonargparse then builds its default class, DAGMM, with them)."""
    for path in config_files(args, ("--config", "-c")):
        content = config_content(path)
        if content is None or not isinstance(content.get("config"), str):
            continue
        include, keys = path.parent / content["config"], list(content)
        before = config_keys({key: content[key] for key in keys[: keys.index("config")]})
        included = set()
        for file in config_files(["--config", str(include)], ("--config",)):
            included |= config_keys(config_content(file) or {})
        again = sorted(
            k for k in before if any(k == i or i.startswith(f"{k}.") or k.startswith(f"{i}.") for i in included)
        )
        if again:
            return (
                f"{path} sets {', '.join(again[:3])}{' ...' if len(again) > 3 else ''} before its `config: "
                f"{content['config']}` line, and that file sets {'it' if len(again) == 1 else 'them'} again: what "
                "config: loads wins over the lines before it; put the config: line first"
                + (
                    ", and model settings after it as dotted keys (model.init_args.lr: 0.5) or under model with its "
                    "class_path"
                    if any(k.startswith("model.") for k in again)
                    else ""
                )
            )
        after = keys[keys.index("config") + 1 :]  # the model mapping before it keeps what config: names
        model, named = content.get("model") if "model" in after else None, included_model_class(include)
        if isinstance(model, dict) and "class_path" not in model and named and named.rsplit(".", 1)[-1] != "DAGMM":
            return (
                f"{path} sets model settings after `config: {content['config']}` (which names {named}) without a "
                "model class_path of its own: jsonargparse would then train its default class, DAGMM; add "
                f"`class_path: {named}` under model, or write each setting as a dotted key (model.init_args.lr: 0.5)"
            )
    return None


def config_keys(content, prefix: str = "") -> set[str]:
    """The dotted keys a config's content sets (``trainer.max_epochs``), ``init_args`` left out."""
    if not isinstance(content, dict):
        return {prefix} if prefix else set()
    keys = set()
    for name, value in content.items():
        name = str(name)
        inner = prefix if name == "init_args" else f"{prefix}{name}."
        keys |= config_keys(value, inner) if isinstance(value, dict) else {f"{prefix}{name}"}
    return {k.removesuffix(".").replace(".init_args.", ".") for k in keys}  # a dotted key's init_args too


def overridden_options(args: list[str]) -> str | None:
    """The first option a later ``--config`` sets again (jsonargparse takes the last: the option would be
    dropped silently), as a message; None if there is none."""
    earlier: list[tuple[str, str]] = []  # (key, the option as given)
    for i, arg in enumerate(args):
        if arg in ("--config", "-c") or arg.startswith(("--config=", "-c=")):
            value = arg.split("=", 1)[1] if "=" in arg else (args[i + 1] if i + 1 < len(args) else "")
            if not earlier or not re.fullmatch(CONFIG_FILE_NAME, value):
                continue
            keys = set()
            for path in config_files(["--config", value], ("--config",)):
                keys |= config_keys(config_content(path))
            for key, option in earlier:  # the same setting, or one inside the other (logger, logger.version)
                if any(k == key or k.startswith(f"{key}.") or key.startswith(f"{k}.") for k in keys):
                    return (
                        f"{option} comes before --config {value}, which sets it again: the later setting wins, "
                        f"so {option} would be ignored; give it after the --config"
                    )
        elif arg.startswith("--") and arg.split("=", 1)[0] not in ("--print_config", "--help"):
            name = arg.split("=", 1)[0][2:].rstrip("+").replace(".init_args.", ".")  # --trainer.callbacks+=...
            value = arg.split("=", 1)[1] if "=" in arg else args[i + 1] if i + 1 < len(args) else ""
            if name in ("model", "data", "optimizer", "lr_scheduler", "trainer"):  # --model DAGMMVAE: the class
                if re.fullmatch(CONFIG_FILE_NAME, value) or value.lstrip().startswith("{") or name == "trainer":
                    continue  # a group's own file or inline settings: not followed here
                name += ".class_path"
            earlier.append((name, arg if "=" in arg else f"{arg} {value}"))
    return None


def is_data_config(content: dict) -> bool:
    """Whether a config's content is a data config (configs/data/*.yaml): a data section and, at most, the
    data set's contamination under model, no class, no training settings."""
    model = content.get("model", {})
    settings = model.get("init_args", {}) if isinstance(model, dict) else None
    return (
        "data" in content
        and set(content) <= {"data", "model"}
        and isinstance(settings, dict)
        and set(model) <= {"init_args"}
        and set(settings) <= {"contamination"}
    )


def contamination_given(args: list[str]) -> tuple[str, str] | None:
    """Where the command line sets the model's contamination itself, as (the setting's name, where): the
    option, or a config file or inline ``--model`` settings that set it in their own lines (not by a file
    they include: configs/pu.yaml keeps configs/paper/kddcup99.yaml's); None where it does not."""
    if any(re.fullmatch(r"--model(\.init_args)?\.contamination(=.*)?", str(arg)) for arg in args):
        return "--model.init_args.contamination", ""
    for option, prefix in (("--config", ""), ("-c", ""), ("--model", "model.")):
        for value in option_values(args, option):
            inline = value.lstrip().startswith("{")
            try:
                content = load_yaml(value) if inline else config_content(Path(value))
            except yaml.YAMLError:  # jsonargparse reports it
                continue
            if isinstance(content, dict) and "model.contamination" in config_keys(content, prefix):
                if not inline and option != "--model" and is_data_config(content):
                    continue  # a data set's rho (configs/data/*.yaml), composed after any method: not a choice
                return "contamination", f" (set in {option} {'{...}' if inline else value})"
    return None


def competing_model_classes(args: list[str]) -> str | None:
    """A message if two ``--config`` files name different model classes (their own, or one a file includes):
    the later would replace the earlier's model, class and settings alike, without a word; or if two whole
    method configs (with data or trainer settings, as configs/*.yaml) name the same class: jsonargparse
    merges the later over the earlier key by key, which gives neither method. A file of model settings
    alone (a user's overrides) composes, as do data configs (no ``class_path``)."""
    named: list[tuple[str, str, bool]] = []  # (file, class name, whole method)
    settings_only: str | None = None  # the first file of model settings alone (as configs/improvements.yaml)
    for value in option_values(args, "--config", "-c"):
        name, whole, files = None, False, list(config_files(["--config", value], ("--config",)))
        for path in files:  # the file, then what it includes
            content = config_content(path)
            if content is None:
                continue
            whole = whole or bool({"data", "trainer", "seed_everything"} & set(content))
            if name is None and model_class_named(content) is not None:
                name = model_class_named(content).rsplit(".", 1)[-1]
        if name is not None and settings_only is not None:
            return (
                f"{settings_only} holds model settings alone, and {value} after it names a method ({name}), which "
                f"sets them again over it (with what it includes); name {settings_only} after {value}"
            )
        content = config_content(files[0]) if files else None
        if settings_only is None and name is None and isinstance(content, dict) and set(content) == {"model"}:
            settings_only = value
        if name is not None:
            named.append((value, name, whole))
    for (first, one, whole_one), (second, other, whole_other) in itertools.combinations(named, 2):
        if one != other:
            what = (
                f"{first} trains {one} and {second} {other}: a later --config replaces the earlier's model and settings"
            )
        elif whole_one and whole_other:
            what = (
                f"{first} and {second} both configure {one}: the later is merged over the earlier key by key (what "
                "it and the files it includes set wins, the rest stays), which gives neither method"
            )
        else:
            continue
        return what + (
            "; give one method config (then data configs, whose model section names no class_path), and set what "
            "you want of the other on the command line (e.g. --model.init_args.inference energy+reconstruction)"
        )
    return None


def config_before_its_method(args: list[str]) -> str | None:
    """A message where a config that names no model class (a data config, configs/table.yaml) comes before
    a method config that sets some of its keys again, itself or through what it includes: the later wins,
    and the earlier's data or schedule is dropped without a word (configs/data/thyroid.yaml before
    configs/vae.yaml trained KDDCUP99)."""
    earlier: list[tuple[str, set[str]]] = []
    for value in option_values(args, "--config", "-c"):
        contents = [config_content(path) for path in config_files(["--config", value], ("--config",))]
        contents = [content for content in contents if isinstance(content, dict)]
        keys = set().union(*(config_keys(content) for content in contents)) - {"config"}
        if not any(model_class_named(content) is not None for content in contents):
            earlier.append((value, keys))
            continue
        for first, theirs in earlier:
            again = sorted(
                k for k in theirs if any(k == m or m.startswith(f"{k}.") or k.startswith(f"{m}.") for m in keys)
            )
            if again:
                shown = ", ".join(again[:3]) + (" ..." if len(again) > 3 else "")
                return (
                    f"{first} sets {shown}; {value}, named after it, is a method config that sets "
                    f"{'it' if len(again) == 1 else 'them'} again (itself or in what it includes), and the later "
                    f"file wins: name {first} after {value}"
                )
    return None


def whole_config_as_data(args: list[str]) -> str | None:
    """A message if ``--data FILE`` names a whole config (``data:``, ``model:`` ... sections, as
    configs/data/*.yaml: ``dagmm benchmark --data`` takes those), which fit's ``--data`` does not take."""
    for value in option_values(args, "--data"):
        content = config_content(Path(value))
        sections = sorted(set(content) & {"data", "model", "trainer", "seed_everything"}) if content else []
        if sections:
            return (
                f"--data {value} is a whole config (its {', '.join(sections)} sections): give it with --config "
                "(--data takes the data module's own settings)"
            )
    return None


def contamination_mismatch(model, datamodule, remedy: str = "--model.init_args.contamination null") -> str | None:
    """What is wrong with a ``contamination`` more than twice, or under half, the labels' share of
    anomalies (e.g. a method config's KDDCUP99 share, 0.2, kept for a table of 5 % anomalies); None where
    it is not, or the threshold is no quantile (PU's c / 2) or the rows carry no labels. ``remedy``: the
    option that takes the labels' share, as the command takes it."""
    contamination, share = getattr(model, "hparams", {}).get("contamination"), datamodule.anomaly_share
    quantile = getattr(model, "threshold_from_contamination", False)
    if not (quantile and contamination and share) or share / 2 <= contamination <= 2 * share:
        return None
    return (
        f"contamination {contamination:g}, but the labels mark {100 * share:.3g} % of the rows as anomalies: the "
        f"threshold flags about {100 * contamination:.3g} % of the rows it is taken on (threshold_rows); "
        f"{remedy} takes the labels' share"
    )


def readable_parse_error(message: str, options: list[str]) -> str:
    """jsonargparse's report of a bad value or option (nested through every union it tried: the model's
    class or None, the value's type or None) as one line that names the option, what it takes and the
    closest match; any other message unchanged."""
    unknown = re.match(r"unrecognized arguments: (.*)", message)
    if unknown:
        given = [a.split("=")[0] for a in unknown.group(1).split() if a.startswith("--")]
        files = [a for a in unknown.group(1).split() if re.fullmatch(CONFIG_FILE_NAME, a)]
        if not given and files:  # a config named without its option
            return f"{message} (a config file? give it with --config {files[0]})"
        return "; ".join(f"no option {a}{nearest_option(a, options)}" for a in given) or message
    keys = re.findall(r'Parser key "([^"]+)"', message)
    unknown_class = re.search(r"Expected a dot import path string: (.*)", message)
    if unknown_class and (keys == ["model"] or message.startswith("--model.help:")):
        given = unknown_class.group(1).strip()
        return f"--model: no model {given}; choose from {', '.join(MODEL_CLASSES)}{did_you_mean(given, MODEL_CLASSES)}"
    if not keys:
        return message
    option = "--" + ".".join(keys)
    if option not in options and option.replace("_", "-") in options:  # (the key is argparse's dest: suite_protocol)
        option = option.replace("_", "-")
    inner = message[message.rindex(f'Parser key "{keys[-1]}"') :]
    cls = re.search(r"given class_path '([^']+)':\n\s*(.*)", message)
    rejected = re.search(r"Option '([^']+)' is not accepted", inner)
    choice = re.search(r"Expected a typing\.Literal\[(.*)\]\. Got value: (.*)", inner)
    value = re.search(r"Given value: (.*)", inner) or re.search(r"Got value: (.*)", inner)
    if rejected:
        name, fields = rejected.group(1), class_options(cls.group(1)) if cls else []
        given_class = cls.group(1).rsplit(".", 1)[-1] if cls else None
        owners = [
            f"{variant}'s (--model {variant}, as {config} sets it)"
            for variant, config in VARIANT_CONFIGS.items()
            if variant != given_class
            and name in class_options(f"dagmm_lightning.models.{variant}")
            and name not in class_options("dagmm_lightning.models.DAGMM")  # (the variant's own: not inherited)
        ]
        paper = PAPER_NAMES.get(name.lower())
        hint = (  # (a near name of this class's would mislead: lambda_pu is no misspelt lambda_cov)
            f"; it is {' and '.join(owners)}"
            if owners
            else f" (the paper's {name} is {option}.{paper})"
            if paper in fields
            else did_you_mean(name, fields, quote=False, prefix=f"{option}.")
        )
        return f"{option}.{name}: {cls.group(1) if cls else option} has no such option{hint}"
    if choice:
        allowed = [c.strip().strip("'\"") for c in choice.group(1).split(",")]
        value = choice.group(2).strip()
        return f"{option}: {value!r} is not one of {', '.join(allowed)}{did_you_mean(value, allowed)}"
    if cls and len(keys) == 1 and not cls.group(2).startswith("Parser key"):
        return f"{option}: no class {cls.group(1)} ({cls.group(2).strip()})"
    subtypes = re.findall(r"Subtypes: \[(.*)\]", inner)
    expected = re.findall(r"Expected a <class '([\w.]+)'>", inner)
    literals = re.findall(r"typing\.Literal\[([^\]]*)\]", subtypes[0]) if subtypes else []
    if value and literals and not re.sub(r"typing\.Literal\[[^\]]*\]|<class 'NoneType'>|[, ]", "", subtypes[0]):
        # a union of Literals (Lightning's precision): its choices in one list
        allowed = list(dict.fromkeys(c.strip().strip("'\"") for group in literals for c in group.split(",")))
        allowed += ["null"] if "NoneType" in subtypes[0] else []
        given = value.group(1).strip()
        return f"{option}: {given!r} is not one of {', '.join(allowed)}{did_you_mean(given, allowed)}"
    if value and (subtypes or expected):
        kinds = (
            re.sub(r"<class '([\w.]+)'>", r"\1", subtypes[0]).replace("NoneType", "null") if subtypes else expected[0]
        )
        kinds = re.sub(r", (?![^\[]*\])", " or ", kinds)  # the commas between the types, not inside tuple[...]
        given = given_value(value.group(1).strip(), keys[-1])
        class_option = keys in (["model"], ["data"]) or keys[-1] == "class_path"  # (other values are no modules)
        problem = import_failure(given) if class_option and re.fullmatch(r"[A-Za-z_]\w*(\.\w+)+", given) else None
        if problem:  # a class of the user's whose module fails: that failure, not "expected DAGMM"
            return f"{option}: {given} does not import ({problem})"
        hint = ""
        if kinds.startswith(("list[", "tuple[")) and not given.lstrip().startswith("["):
            hint = f" (a list: {option} '[{given}]'" + (
                f", or {option}+ {given} to add one)" if kinds[0] == "l" else ")"
            )
        elif given.lstrip().startswith(("{", "[")):  # text meant as a mapping or list that does not parse
            try:
                yaml.safe_load(given)
            except yaml.YAMLError as err:
                problem = getattr(err, "problem", None) or str(err).splitlines()[0]
                hint = f" (not valid JSON or YAML: {problem})"
        return f"{option}: expected {kinds}, got {given}{hint}"
    return message


def given_value(text: str, key: str) -> str:
    """The value a user gave, out of jsonargparse's text of it: ``NestedArg(key='lr', val='fast')`` (an
    option of a model's init_args) or ``{'init_args': {'lr': 'fast'}}`` (a config file's section) -> fast."""
    nested = re.fullmatch(r"NestedArg\(key='[^']*', val=(.*)\)", text)
    if nested:
        return nested.group(1).strip("'\"")
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text
    while isinstance(value, dict) and key not in value and (len(value) == 1 or "init_args" in value):
        value = value["init_args"] if "init_args" in value else next(iter(value.values()))
    return str(value[key]) if isinstance(value, dict) and key in value else text


def nearest_option(given: str, options: list[str]) -> str:
    """`` (did you mean OPTION?)`` for an unknown ``--KEY``: a section's option of that name where ``KEY``
    has no section (``--lr``: ``--model.init_args.lr``, ``--max_epochs``: ``--trainer.max_epochs``), else
    the closest option's name, or ``""``."""
    key = given.removeprefix("--")
    if key.lower() in PAPER_NAMES:  # (--lambda1: had 'did you mean --model.init_args.lambda_cov?')
        key = PAPER_NAMES[key.lower()]
    if "." not in key:
        sections = [f"--{section}.{key}" for section in ("trainer", "data")]
        if key in inspect.signature(DAGMM.__init__).parameters and key not in ("self", "input_dim"):  # (linked)
            sections.insert(0, f"--model.init_args.{key}")
        for option in sections:
            if option in options or (option.startswith("--model.") and "--model.help" in options):
                return f" (did you mean {option}?)"
            if option.startswith("--model.") and "--set" in options:  # benchmark's way to a model setting
                return f" (did you mean --set model.init_args.{key}=VALUE?)"
    return did_you_mean(given, options, quote=False)


# the paper's names of DAGMM's settings (Zong et al. 2018: lambda1 the energy's weight, lambda2 the penalty's, K)
PAPER_NAMES = {"lambda1": "lambda_energy", "lambda2": "lambda_cov", "k": "n_components"}
VARIANT_CONFIGS = {"DAGMMVAE": "configs/vae.yaml", "DAGMMVQVAE": "configs/vqvae.yaml", "DAGMMPU": "configs/pu.yaml"}


LIGHTNING_CHECKPOINT_NAMES = re.compile(r"(last|best|hpc|registry(:.*)?)", re.IGNORECASE)


def newest_checkpoint_advice(name: str, config) -> str:
    """Why ``--ckpt_path last`` (or best, hpc, registry: names Lightning resolves within a run) names nothing
    to a ``dagmm`` command, and the newest last.ckpt where this run's settings put checkpoints."""

    def get(node, key):  # a Namespace's key, or None
        return node.get(key) if hasattr(node, "get") else None

    trainer, logger = get(config, "trainer"), get(get(config, "trainer"), "logger")
    places = [get(get(config, "checkpoint"), "dirpath"), get(get(logger, "init_args"), "save_dir")]
    places.append(get(trainer, "default_root_dir") or "logs")
    roots = list(dict.fromkeys(Path(str(p)) for p in places if p))
    found = sorted((c for r in roots if r.is_dir() for c in r.rglob("last.ckpt")), key=lambda c: c.stat().st_mtime)
    if name.lower().startswith("registry"):
        what = "Lightning's model registry, which dagmm does not read"
    elif name.lower() == "hpc":
        what = (
            "Lightning's name for the checkpoint a SLURM requeue writes (hpc_ckpt_N.ckpt), resumed by Lightning itself"
        )
    else:
        what = "Lightning's name for a checkpoint of a fit in the same process, and each dagmm command is a process"
        what += " of its own"
    where = ", ".join(f"{r}/" for r in roots)
    newest = f", e.g. the newest under {where}: {found[-1]}" if found else f" (none under {where} yet)"
    return f"--ckpt_path {name}: {what}; give the checkpoint file{newest}"


def class_options(class_path: str) -> list[str]:
    """The settings a class takes: its own, and its parents' where its ``__init__`` passes ``**kwargs`` on
    (a variant: DAGMMVAE takes DAGMM's, as jsonargparse resolves them)."""
    cls = imported_class(class_path)
    if isinstance(cls, str):
        return []
    names: list[str] = []
    for klass in [k for k in cls.__mro__ if "__init__" in vars(k)]:
        parameters = inspect.signature(klass.__init__).parameters
        names += [p for p in parameters if p not in ("self", "args", "kwargs", *names)]
        if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
            break
    return names


def refuse_own_callbacks_given_again(callbacks: list) -> None:
    """``--trainer.callbacks`` (their config: class paths) adding a callback every dagmm command has
    (``--metrics``, ``--figures``, ``--prediction_writer``): a second AnomalyMetrics had logged the mean of
    the two's values under each name; Lightning refused a second AnomalyFigures with a traceback."""
    own = {AnomalyMetrics: "metrics", AnomalyFigures: "figures", PredictionCSVWriter: "prediction_writer"}
    for callback in as_list(callbacks):
        given = callback if isinstance(callback, type) else type(callback)
        if hasattr(callback, "class_path"):  # (a config's Namespace, before the trainer is made)
            given = imported_class(callback.class_path)
        kind = next((k for k in own if isinstance(given, type) and issubclass(given, k)), None)
        if kind is not None:
            fix = (
                f"drop it from --trainer.callbacks and give its settings as --{own[kind]}.NAME"
                if given is kind
                else "the command line takes no subclass of it: use yours with a Trainer of your own in Python"
            )
            raise ConfigurationError(
                f"--trainer.callbacks adds {'another' if given is kind else 'a subclass of'} {kind.__name__} beside "
                f"the one every dagmm command has (--{own[kind]}): the two would log or write under the same names; "
                f"{fix}"
            )


def as_list(callbacks) -> list:
    """A config's ``trainer.callbacks`` as a list: one callback given alone (a mapping, or ``--trainer.callbacks
    X`` without ``+=``) parses to a Namespace, which iterates over nothing of the sort."""
    return list(callbacks) if isinstance(callbacks, (list, tuple)) else [callbacks] if callbacks else []


class DAGMMCLI(LightningCLI):
    _replacing_predictions = False  # predict's output file existed before the run (before_predict)

    def before_instantiate_classes(self) -> None:
        config = self.config[self.subcommand] if self.subcommand else self.config
        given = keys_given(self._args if self._args is not None else sys.argv[1:], "data")
        if self.subcommand in ("test", "validate") and "predict_file" in given:  # not one a checkpoint brings
            raise ConfigurationError(
                f"--data.predict_file is scored by predict only; {self.subcommand} takes the split's "
                f"{'test' if self.subcommand == 'test' else 'val'} rows (predict writes a file's scores and labels)"
            )
        args = self._args if self._args is not None else sys.argv[1:]
        if (
            self.subcommand == "fit"
            and config.get("data.dataset") == "table"
            and not option_values(args, "--config", "-c")
            and not config.get("ckpt_path")
        ):
            warn(
                "no method config: a table of yours trains DAGMM's defaults (the paper's KDDCUP99 networks, lr 1e-4, "
                "Lightning's 1,000 epochs unless --trainer.max_epochs), far below the improved method on most "
                "tables: --config configs/improved.yaml --config configs/table.yaml"
            )
        refuse_own_callbacks_given_again(config.get("trainer.callbacks") or [])
        optimizer, scheduler = config.get("optimizer"), config.get("lr_scheduler")
        if scheduler is not None and optimizer is None:  # Lightning would use neither
            raise ConfigurationError(
                "--lr_scheduler takes effect only beside --optimizer (e.g. --optimizer Adam --optimizer.lr 0.001); "
                "without them the model trains with its own Adam at --model.init_args.lr and its "
                "--model.init_args.lr_schedule (constant or cosine)"
            )
        if optimizer is not None and config.get("model.init_args.compile"):
            raise ConfigurationError(
                "--optimizer with --model.init_args.compile true: the compiled step is the model's own Adam (lr, "
                "lr_schedule); leave out --optimizer / --lr_scheduler, or set compile false"
            )
        if optimizer is not None and self.subcommand == "fit":
            warn(
                f"--optimizer {str(getattr(optimizer, 'class_path', optimizer)).rsplit('.', 1)[-1]} replaces the "
                "model's Adam: its lr and lr_schedule are not used (hparams.yaml still lists them; config.yaml "
                "holds what ran)"
            )
        checkpoint = config.get("checkpoint")
        periodic = ("every_n_train_steps", "every_n_epochs", "train_time_interval")
        if (
            checkpoint is not None
            and checkpoint.get("monitor") is None
            and checkpoint.get("save_top_k") == 1
            and not any(checkpoint.get(key) for key in periodic)  # asked for: Lightning keeps the latest of those
        ):
            checkpoint["save_top_k"] = 0  # nothing to rank by: last.ckpt is the one checkpoint
        # Unless the config brings its own bar or none: ProgressReport, a bar redrawn every REFRESH_RATE
        # steps on a terminal, a line now and then in a log file.
        trainer = config.get("trainer")
        if trainer is None:
            return
        if trainer.get("barebones"):
            raise ConfigurationError(
                "--trainer.barebones true turns off what a dagmm run is for: logging (the training terms and "
                "metrics) and checkpoints (the fitted model). For speed: --model.init_args.compile true with "
                "--model.init_args.steps_per_call 8 (README), or --trainer.logger false"
            )
        nodes = trainer.get("num_nodes") or 1
        if nodes > 1 and not any(os.environ.get(k) for k in NODE_LAUNCH_VARIABLES):
            raise ConfigurationError(
                f"--trainer.num_nodes {nodes}: nothing says where the other machines are, so the run would wait "
                "for them forever; start it on each machine with MASTER_ADDR, MASTER_PORT and NODE_RANK set "
                "(README, 'Several machines'), or under SLURM / torchrun"
            )
        logger, root = trainer.get("logger"), trainer.get("default_root_dir")
        settings = getattr(logger, "init_args", None)
        if root is not None and settings is not None and settings.get("save_dir") == "logs":  # as Lightning's own
            settings.save_dir = str(root)  # logger would: under --trainer.default_root_dir
        callbacks = as_list(trainer.get("callbacks"))
        bars = [c for c in callbacks if _is_progress_bar(c)]
        if trainer.get("enable_progress_bar") is False:  # also the bar a run's saved config.yaml holds
            if bars:
                trainer["callbacks"] = [c for c in callbacks if c not in bars]
            return
        added_before = [b for b in bars if _is_bar_added_before(b)]  # a saved config.yaml's from older versions
        if bars and not added_before:
            return
        bar = Namespace(
            class_path="dagmm_lightning.callbacks.ProgressReport",
            # every argument, as jsonargparse writes them when the saved config.yaml is read back (a diff of the
            # two configs shows no change)
            init_args=Namespace(refresh_rate=REFRESH_RATE, leave=False, line_interval=LINE_INTERVAL, lines=None),
        )
        trainer["callbacks"] = [*(c for c in callbacks if c not in added_before), bar]

    def _set_seed(self) -> None:
        seed = self.config.get(self.subcommand or "", self.config).get("seed_everything")
        if isinstance(seed, int) and not isinstance(seed, bool) and not 0 <= seed <= MAX_SEED:
            raise ConfigurationError(f"seed_everything must be in [0, {MAX_SEED}] (or true: a random one), got {seed}")
        if seed is True:  # Lightning's seed_everything(None) takes 0 since 2.x: draw one, saved in config.yaml
            drawn = os.environ.get("PL_GLOBAL_SEED")
            if drawn is not None and os.environ.get("LOCAL_RANK", "0") != "0":  # launched by the first process
                seed = int(drawn)
            elif any(os.environ.get(k) for k in ("NODE_RANK", "WORLD_SIZE", "SLURM_NTASKS", "LOCAL_RANK")):
                raise ConfigurationError(
                    "seed_everything true: separately launched processes (several nodes, torchrun, SLURM) would each "
                    "draw their own seed, and so their own split; give a number"
                )
            else:
                seed = secrets.randbelow(MAX_SEED + 1)
            self.config.get(self.subcommand or "", self.config)["seed_everything"] = seed
        if seed is False and self.subcommand == "fit":
            warn(
                "seed_everything false: the weights start from an unseeded draw, so this fit cannot be repeated (its "
                "config.yaml says false); the split and the epoch shuffles still take --data.seed (unset: 0). "
                "--seed_everything true draws a seed and records it"
            )
        if self.subcommand == "fit":
            return super()._set_seed()
        seeding = logging.getLogger("lightning.fabric.utilities.seed")  # "Seed set to 0": a fit's news only
        level = seeding.level
        seeding.setLevel(logging.WARNING)
        try:
            super()._set_seed()
        finally:
            seeding.setLevel(level)

    def _run_subcommand(self, subcommand: str) -> None:
        folder = new_run_folder(self.trainer)
        try:
            with ctrl_c_seen(), sigterm_forwarded_to_workers(self.trainer), sigterm_stops_the_setup(self.trainer):
                with ends_with_the_process_that_started_it(self.trainer), signals_end_the_rendezvous(self.trainer):
                    super()._run_subcommand(subcommand)
        except Exception as err:
            if folder is not None and (own_error(err) is not None or isinstance(err, MisconfigurationException)):
                remove_if_only_startup_files(folder)
            raise
        except SystemExit as stop:  # Lightning's answer to Ctrl-C: say what the fit left and how to go on
            if subcommand == "fit" and self.trainer.interrupted:
                resumed_from = self.config.get("fit", self.config).get("ckpt_path")
                rank_zero_info(interrupted_fit_summary(self.trainer, resumed_from))
            if self.trainer.received_sigterm:  # Lightning's SIGTERMException exits 0: a stop asked for is not success
                if subcommand == "fit" and not self.trainer.interrupted:  # (before trainer.fit began)
                    rank_zero_info("fit stopped by SIGTERM before it began")
                elif subcommand != "fit":
                    rank_zero_info(f"{subcommand} stopped by SIGTERM{nothing_written(subcommand)}")
                raise SystemExit(128 + signal.SIGTERM) from None
            if self.trainer.interrupted and stop.code == 1:  # the shell's code for Ctrl-C (Lightning's: 1, an error's)
                if subcommand != "fit":  # (as SIGTERM's line above; had: only Lightning's 'Detected KeyboardInterrupt')
                    rank_zero_info(f"{subcommand} stopped by Ctrl-C{nothing_written(subcommand)}")
                raise SystemExit(130) from None
            raise

    def _add_configure_optimizers_method_to_model(self, subcommand: str | None) -> None:
        with warnings.catch_warnings():  # Lightning's "will be overridden": before_instantiate_classes says more
            warnings.filterwarnings("ignore", message=".*configure_optimizers` will be overridden")
            super()._add_configure_optimizers_method_to_model(subcommand)

    def _instantiate_trainer(self, config: dict, callbacks: list):
        if config.get("enable_checkpointing") is False:  # the checkpoint callback every run adds, dropped
            callbacks = [c for c in callbacks if not isinstance(c, ModelCheckpoint)]  # (Lightning refuses both)
        callbacks = [*callbacks, InterruptAtNextBatch(), ValidateLastStepInWorkers()]
        every = config.get("check_val_every_n_epoch")
        if isinstance(every, int) and every < 1:  # Lightning: 0 divides by zero; -1 validates every epoch
            raise ConfigurationError(
                f"trainer settings: check_val_every_n_epoch must be >= 1 or null (null: --trainer.val_check_interval "
                f"counts batches over the whole fit), got {every}; --trainer.limit_val_batches 0 validates never"
            )
        accumulated = config.get("accumulate_grad_batches")
        if isinstance(accumulated, int) and accumulated < 1:  # (Lightning: a division by zero at the first step)
            raise ConfigurationError(f"trainer settings: accumulate_grad_batches must be >= 1, got {accumulated}")
        try:
            return super()._instantiate_trainer(config, callbacks)
        except (ValueError, TypeError, MisconfigurationException) as err:  # e.g. accelerator 'gpuu'
            hint = ""
            if str(config.get("accelerator")).lower() in ("gpu", "cuda") and not torch.cuda.is_available():
                hint = " (torch finds no CUDA GPU here: --trainer.accelerator cpu, or auto to use one where any)"
            raise ConfigurationError(f"trainer settings: {err}{hint}") from None

    def add_arguments_to_parser(self, parser) -> None:
        parser.link_arguments("data", "model.init_args.input_dim", compute_fn=self._input_dim, apply_on="instantiate")
        parser.add_lightning_class_args(AnomalyMetrics, "metrics")
        parser.add_lightning_class_args(PredictionCSVWriter, "prediction_writer")
        parser.add_lightning_class_args(AnomalyFigures, "figures")
        # Every run keeps last.ckpt (LastEpochCheckpoint: at the fit's end, and at an epoch's end every
        # 5 minutes; the model refits its mixture before a checkpoint is written), and the best one when a
        # metric is monitored.
        parser.add_lightning_class_args(LastEpochCheckpoint, "checkpoint")
        parser.set_defaults({"checkpoint.save_last": True})  # (save_on_train_epoch_end: LastEpochCheckpoint's own)
        parser.set_defaults({"model": {"class_path": "dagmm_lightning.models.DAGMM"}})  # a checkpoint may name another

    def instantiate_classes(self) -> None:
        try:
            super().instantiate_classes()
        except ValueError as err:  # the data's own error, as reading input_dim raised it, not jsonargparse's wrap
            ours = own_error(err)
            if ours is None or ours is err or "compute_fn of link '_input_dim" not in str(err):
                raise
            raise ours from None

    def _input_dim(self, datamodule: AnomalyDataModule) -> int:
        """The model's input size: the checkpoint's where predict scores a file of its own (the data module
        then reads neither the training table nor its columns: the checkpoint's encoding scores the file),
        else the data's."""
        return getattr(self, "_checkpoint_input_dim", None) or datamodule.input_dim

    def _parse_ckpt_path(self) -> None:
        """With ``--ckpt_path``, the model (LightningCLI does that) and the data settings come from the
        checkpoint, the split seed included, wherever this run's value is the constructor's default (a
        setting passed with another value wins); the data module refuses a split whose training rows differ
        from the checkpoint's."""
        subcommand = self.config.get("subcommand")
        config = self.config.get(subcommand or "", self.config)
        path = config.get("ckpt_path") if hasattr(config, "get") else None
        if subcommand in ("validate", "test", "predict") and not path:
            raise ConfigurationError(f"dagmm {subcommand} needs --ckpt_path, a checkpoint that `dagmm fit` wrote")
        if path and LIGHTNING_CHECKPOINT_NAMES.fullmatch(str(path)) and not Path(path).is_file():  # Lightning's
            raise DataError(newest_checkpoint_advice(str(path), config))
        if path and Path(path).is_dir():
            found = ", ".join(str(c) for c in itertools.islice(Path(path).rglob("*.ckpt"), 3))
            raise DataError(f"{path} is a folder; give a checkpoint file" + (f" such as {found}" if found else ""))
        elif path and not Path(path).is_file():
            folder = Path(path).parent
            near = [p.stem for p in folder.glob("*.ckpt")] if folder.is_dir() else []  # (stems: all end .ckpt)
            close = difflib.get_close_matches(Path(path).stem, near, n=1, cutoff=0.6)
            hint = f" (did you mean {folder / close[0]}.ckpt?)" if close else ""
            raise DataError(f"no such checkpoint file: {path}{hint}")
        checkpoint = None
        if path:
            try:
                checkpoint = torch.load(path, weights_only=True, map_location="cpu")  # as Lightning loads it next
            except Exception as err:
                raise DataError(
                    f"{path} is not a checkpoint that `dagmm fit` wrote ({torch_load_failure(err)}); a file of "
                    "DAGMMDetector.save loads with DAGMMDetector.load"
                ) from None
        if checkpoint is not None and subcommand == "fit" and "optimizer_states" not in checkpoint:
            raise ConfigurationError(  # (had: Lightning's KeyError traceback, and a stray version_N folder)
                f"{path} holds the model's weights only (--checkpoint.save_weights_only true), without the optimizer "
                "and loop state a fit resumes from: test, validate and predict take it, and "
                "DAGMMDetector.from_checkpoint; to train on, start a new fit (without --ckpt_path)"
            )
        saved_class = ((checkpoint or {}).get("hyper_parameters") or {}).get("_class_path")
        if saved_class and isinstance(imported_class(saved_class), str):  # (Lightning's parse adds a stray line)
            module = saved_class.rpartition(".")[0]
            raise ConfigurationError(
                f"{path} holds a {saved_class} model, which does not import here ({import_failure(saved_class)}): "
                f"put the module that defines it ({module}) in the current folder or on PYTHONPATH"
            )
        asked, asked_class = model_settings(config), config.get("model.class_path")
        super()._parse_ckpt_path()  # it may replace the config (the model's settings by the checkpoint's)
        config = self.config.get(subcommand or "", self.config)
        if checkpoint is None:
            return
        kept, kept_class = model_settings(config), config.get("model.class_path")
        args = sys.argv[1:] if self._args is None else self._args
        given = keys_given(args, "model")
        trained_on = (checkpoint.get("datamodule_hyper_parameters") or {}).get("dataset")
        now = config.data.get("dataset")  # (before the model settings: a data config's contamination differs too)
        if trained_on == ARRAYS:  # (had: jsonargparse's traceback, 'Expected a Literal[...]. Got value: arrays')
            raise ConfigurationError(
                f"{path} was trained on arrays given in Python (AnomalyDataModule.from_arrays or from_table), which "
                "a command cannot read, nor a file of such rows: in Python, DAGMMDetector.from_checkpoint(path) "
                "scores new rows (decision_function, predict), and trainer.test(model, datamodule="
                "AnomalyDataModule.from_arrays(...)) tests or trains on"
            )
        if "dataset" in keys_given(args, "data") and trained_on is not None and now != trained_on:
            other = "; a file of new rows: dagmm predict --data.predict_file FILE" if subcommand != "fit" else ""
            typed = any(a == "--data.dataset" or a.startswith("--data.dataset=") for a in args)
            setting = f"--data.dataset {now!r}" if typed else f"the data set {now!r} (from a config given)"
            raise ConfigurationError(  # (had: a count of features)
                f"{setting}: the checkpoint was trained on {trained_on!r}, and a run from a checkpoint "
                f"reads its data set (leave --data.dataset and data configs out){other}"
            )
        # null / auto: sized from the data, which the checkpoint's sizes were
        lost = sorted(k for k in given if k in asked and asked[k] not in (None, "auto") and asked[k] != kept.get(k))
        if "class_path" in given and imported_class(asked_class) is not imported_class(kept_class):
            lost = ["class_path", *(k for k in lost if k in kept)]  # (not another class's settings, as None)
            kept = {**kept, "class_path": str(kept_class).rsplit(".", 1)[-1]}
        if lost:
            settings = ", ".join(f"{k} {kept.get(k)!r}" for k in lost).replace("class_path ", "model ")
            settings = settings.replace("contamination None", "contamination None, the labels' share of anomalies")
            rethreshold = (
                "; predict writes each row's score: to flag another share s of rows like the training rows, cut "
                "that column at the (1 - s) quantile of such rows' scores (the stored threshold: the val rows')"
                if "contamination" in lost and subcommand == "predict"
                else ""
            )
            others = (
                "to train with others, start a new fit (without --ckpt_path)"
                if subcommand == "fit"
                else f"{subcommand} with others needs a model trained with them (dagmm fit without --ckpt_path)"
            )
            raise ConfigurationError(
                f"a run from a checkpoint keeps the model settings it was trained with ({settings}), not those given "
                f"on the command line or in configs; {others}{rethreshold}"
            )
        fit_logs = fit_log_folder(Path(path)) if subcommand in ("validate", "test", "predict") else None
        if fit_logs is not None:  # where it can write (not an archive): the new version_N goes in FOLDER/NAME
            named = fit_logs[0] / fit_logs[1]
            fit_logs = fit_logs if os.access(named if named.exists() else fit_logs[0], os.W_OK) else None
        trainer_given = keys_given(args, "trainer")
        logger = config.get("trainer.logger")
        if fit_logs is not None and "default_root_dir" not in trainer_given and isinstance(logger, Namespace):
            if not any(k.split(".")[0] == "logger" for k in trainer_given):  # logs beside the fit's, as its logger
                config.trainer.default_root_dir = str(fit_logs[0])  # saves them (the logger's save_dir follows)
                if logger.get("init_args.name") == "lightning_logs":
                    logger.init_args.name = fit_logs[1]
        saved = dict(checkpoint.get("datamodule_hyper_parameters") or {})
        state = checkpoint.get(AnomalyDataModule.__qualname__, {})
        if saved.get("seed") is None and "split_seed" in state:
            saved["seed"] = state["split_seed"]
        table = saved.get("dataset") == TABLE and "preprocessor" in state
        if table and saved.get("symbolic_columns") is None:  # the columns as trained, not inferred anew
            saved["symbolic_columns"] = list(state["preprocessor"]["categories"])
        defaults = inspect.signature(AnomalyDataModule).parameters
        given = keys_given(args, "data")
        table_only = ("path", "label_column", "symbolic_columns", "ignore_columns")  # older fits of built-in data
        for key, value in saved.items():
            if key in table_only and saved.get("dataset") != TABLE or key == "predict_file" and subcommand != "predict":
                continue
            if key in defaults and key not in given and config.data.get(key) == defaults[key].default:
                config.data[key] = value
        if table:
            check_checkpoint_columns(config.data, saved, state["preprocessor"], given)
        # data found relative to the fit's folder: from another folder, where the fit found it
        found_at = state.get("found_at", {})
        reads_table = not (subcommand == "predict" and config.data.get("predict_file"))
        if config.data.get("path") and "path" not in given and not Path(config.data.path).exists():
            if Path(found_at.get("path", "")).is_file():
                config.data.path = found_at["path"]
            elif reads_table:  # (had: 'no such file: t.csv', as if the command line had named it)
                there = found_at.get("path")
                there = f" (at {there} then)" if there and there != str(config.data.path) else ""
                raise DataError(
                    f"no such file: {config.data.path}, the table the checkpoint's fit read{there}; if it has moved, "
                    "give --data.path where it is now"
                )
        unset = config.data.get("data_dir") is None and "DAGMM_DATA_DIR" not in os.environ
        if unset and not default_data_dir().exists():  # (null given, as a run's config.yaml holds it: the default)
            if found_at.get("data_dir") and Path(found_at["data_dir"]).is_dir():
                config.data.data_dir = found_at["data_dir"]
        if table and reads_table:
            check_table_columns_as_trained(config.data, state["preprocessor"], saved.get("label_column"))
        if subcommand == "predict" and config.data.get("predict_file") and "preprocessor" in state:
            self._checkpoint_input_dim = (checkpoint.get("hyper_parameters") or {}).get("input_dim")

    def parse_arguments(self, parser, args) -> None:
        # the command line, for the data keys set by hand (a dict or Namespace of settings: none known)
        self._args = [str(a) for a in args] if isinstance(args, list | tuple) else None if args is None else []
        # jsonargparse names neither the file nor the line of a config it cannot read (a binary one: a traceback)
        given = sys.argv[1:] if args is None else self._args
        PARSED_ARGS[:], PARSED_CWD[:] = given, [os.getcwd()]
        problem = (
            config_files_problem(given)
            or overridden_options(given)
            or whole_config_as_data(given)
            or checkpoint_print_config(given)
        )
        problem = problem or competing_model_classes(given) or included_config_problem(given)
        problem = problem or config_before_its_method(given)
        if problem is not None:
            subcommands = getattr(getattr(parser, "_subcommands_action", None), "_name_parser_map", {})
            (subcommands.get(given[0], parser) if given else parser).error(problem)
        try:
            super().parse_arguments(parser, args)
        finally:
            PARSED_CWD.clear()  # (a later parser's error, the benchmark's: no stale folder to go back to)

    def before_fit(self) -> None:
        # Log (and draw the bar) at least once per epoch on small data, instead of Lightning's warning
        dm, trainer = self.datamodule, self.trainer
        earlier = earlier_run(trainer, self.config.get("fit", self.config).get("ckpt_path"))
        if earlier is not None:
            raise ConfigurationError(
                f"{earlier[0]} holds an earlier run (its TensorBoard events or checkpoints); a second fit there "
                f"would mix the two: give {earlier[1]}, remove the folder, or go on with that run (--ckpt_path its "
                "last.ckpt)"
            )
        per_rank = -(-len(dm.splits.train) // trainer.world_size)  # each rank's share, padded (InMemoryBatches)
        steps_per_epoch = max(1, len(batch_bounds(per_rank, dm.batch_size, shuffle=True)))
        limit = trainer.limit_train_batches
        steps_per_epoch = (
            min(steps_per_epoch, limit) if isinstance(limit, int) else max(1, int(steps_per_epoch * limit))
        )
        interval, validating = trainer.val_check_interval, trainer.limit_val_batches != 0
        if isinstance(interval, int) and trainer.check_val_every_n_epoch is not None and validating:
            if interval > steps_per_epoch:
                raise ConfigurationError(  # else Lightning's ValueError, deep in its loop's setup
                    f"--trainer.val_check_interval {interval} counts batches within an epoch (check_val_every_n_epoch "
                    f"is {trainer.check_val_every_n_epoch}), which has {steps_per_epoch}: give a smaller one, or "
                    "--trainer.check_val_every_n_epoch null to count over the whole fit"
                )
        if trainer.log_every_n_steps > 0:  # 0: no step logging at all, as asked
            trainer.log_every_n_steps = max(1, min(trainer.log_every_n_steps, steps_per_epoch))
        mismatch = contamination_mismatch(self.model, dm)
        if mismatch is not None:
            warn(mismatch)
        noted = threads_noted(self._args if self._args is not None else sys.argv[1:])
        resumed = self.config.get("fit", self.config).get("ckpt_path") is not None  # (the checkpoint's count: said)
        if noted is not None and not resumed and trainer.world_size == 1 and noted[1] != torch.get_num_threads():
            warn(  # (had: a rerun on another count trained other weights, unsaid; DDP's processes: Lightning's count)
                f"{noted[0]} is a fit's config that ran {noted[1]} torch thread(s), this one runs "
                f"{torch.get_num_threads()}: torch's sums split by the threads, so it trains other weights (scores "
                f"differ visibly after a few hundred steps); OMP_NUM_THREADS={noted[1]} repeats it"
            )
        contamination = getattr(self.model, "hparams", {}).get("contamination")
        quantile = getattr(self.model, "threshold_from_contamination", False)  # (not PU's c / 2)
        given = contamination_given(self._args if self._args is not None else sys.argv[1:])
        if not quantile and contamination is not None and given:
            name, where = given
            warn(f"{name} {contamination:g}{where} plays no part for {type(self.model).__name__}: {THRESHOLD_RULE}")
        settings = self.config.get("fit", self.config)
        unbounded = settings.get("trainer.max_epochs") is None and settings.get("trainer.max_steps") in (None, -1)
        unbounded = unbounded and settings.get("trainer.max_time") is None and not settings.get("trainer.fast_dev_run")
        if unbounded and not settings.get("ckpt_path"):
            args = self._args if self._args is not None else sys.argv[1:]
            named = any(included_model_class(path) is not None for path in config_files(args, ("--config", "-c")))
            method = ""
            if not named and not option_values(args, "--model", "--model.class_path"):
                method = (
                    "; no method config names the model, so it is DAGMM's defaults (the paper's KDDCUP99 networks): "
                    "name one first, e.g. --config configs/improved.yaml --config configs/data/thyroid.yaml"
                )
            warn(f"no --trainer.max_epochs or max_steps: Lightning trains 1000 epochs{method}")
        writer = next((c for c in trainer.callbacks if isinstance(c, PredictionCSVWriter)), None)
        for option, value in (
            ("--data.predict_file", dm.predict_file),
            ("--prediction_writer.output_path", writer.output_path if writer is not None else None),
        ):
            if value is not None:  # (a fit writes no predictions)
                warn(
                    f"{option} {value} plays no part in fit: score rows after it with `dagmm predict --ckpt_path "
                    "CKPT --data.predict_file ROWS --prediction_writer.output_path OUT` (the fit's summary names CKPT)"
                )
        if spawned(trainer) and trainer.logger is not None:
            trainer.logger.version  # noqa: B018 - fixed here, else each spawn (fit, the validation after) picks a new one
        metrics = next((c for c in trainer.callbacks if isinstance(c, AnomalyMetrics)), None)
        names = [f"val/{name}" for name in metrics.metric_names()] if metrics else []
        if hasattr(self.model, "score_is_energy"):  # c and the energy's ROC AUC: the PU model's only
            pu = not self.model.score_is_energy
            names = [n for n in names if pu or n not in ("val/c", "val/roc_auc_energy")]
            if getattr(dm, "split", None) == "positive_unlabeled":  # val holds labelled normal rows only
                names = (["val/c"] if pu else []) + [f"val/{name}" for name in LABEL_FREE]
        for callback in trainer.callbacks:  # ours (--checkpoint) and any the user adds (EarlyStopping, ...)
            monitor = getattr(callback, "monitor", None)
            known = monitor in names or monitor in ("epoch", "step")  # the last two: ModelCheckpoint's own
            validation_metric = isinstance(monitor, str) and (monitor.startswith("val/") or "/" not in monitor)
            own = callback is own_checkpoint(trainer)
            option = "--checkpoint.monitor" if own else f"--trainer.callbacks.monitor ({type(callback).__name__})"
            labelled = known and monitor.startswith("val/") and monitor[4:] not in (*LABEL_FREE, "c")
            lacking = val_rows_lack_a_class(dm) if labelled else None
            if lacking:  # (had: Lightning's "could not find the monitored key" at the first validation)
                raise ConfigurationError(
                    f"{option} {monitor}: validation cannot log it, {lacking}; anomaly metrics need val rows of both "
                    f"classes. Monitor one it logs without labels ({', '.join(f'val/{n}' for n in LABEL_FREE)}) or "
                    "leave the option out (the checkpoint is then the last step's)"
                )
            if not validation_metric or not names or known:
                continue
            raise ConfigurationError(
                f"{option} {monitor}: no metric of that name is logged{did_you_mean(monitor, names)}; validation "
                "logs val/roc_auc, val/average_precision, and val/precision_, recall_ and f1_ at top{p} for each of "
                "--metrics.percentiles, at rho and at threshold, where its rows have labels; val/reconstruction, "
                "val/flagged_share and val/threshold with or without; the positive-unlabeled model also val/c"
            )
        if getattr(self.model, "model", True) is None:  # sized from the data: here, before any process spawns
            dm.setup("fit")
            hp = getattr(self.model, "hparams", {})
            if hp.get("contamination", 0) is None and getattr(self.model, "threshold_from_contamination", False):
                self.model.share_for_contamination(dm)  # (no labels to take it from: said before the sizing)
            self.model.size_from_data(dm)
        threads, processes = threads_and_processes(self.trainer)
        crowded = more_processes_than_cores(self.trainer) or threads_beside_busy_cores(threads, processes=processes)
        if crowded:
            warn(crowded)

    def before_predict(self) -> None:
        threads, processes = threads_and_processes(self.trainer)
        crowded = threads_beside_busy_cores(threads, "scoring", processes)  # a nightly job beside others
        if crowded:
            warn(crowded)
        # The writer appends each batch to its file as it comes; Lightning need not keep them all too
        config = self.config_init[self.subcommand]
        if config.get("return_predictions") is None:
            config["return_predictions"] = False
        if spawned(self.trainer) and self.trainer.logger is not None:
            self.trainer.logger.version  # noqa: B018 - fixed here, so that after_predict finds the workers' folder
        writer = next((c for c in self.trainer.callbacks if isinstance(c, PredictionCSVWriter)), None)
        self._replacing_predictions = writer is not None and writer.target(self.trainer).is_file()

    def after_predict(self) -> None:
        folder = local_log_dir(self.trainer)  # (Trainer.log_dir broadcasts: under ddp the other rank has ended)
        if self.trainer.logger is not None and self.trainer.is_global_zero and folder:
            remove_empty_event_files(Path(folder))
        writer = next((c for c in self.trainer.callbacks if isinstance(c, PredictionCSVWriter)), None)
        if writer is not None and writer.written_to is not None:
            rows, flagged, target = writer.rows_written, writer.rows_flagged, writer.written_to
            columns_kept = writer.columns_kept
        elif writer is not None and spawned(self.trainer) and writer.target(self.trainer).is_file():
            target = writer.target(self.trainer)  # written by the spawned workers: its rows counted here
            import pandas as pd

            predictions = pd.read_csv(target, usecols=["prediction"])["prediction"]
            rows, flagged = len(predictions), int(predictions.sum())
            header = list(pd.read_csv(target, nrows=0).columns)
            columns_kept = header[: header.index("index")]  # (the workers' writer kept them)
        else:
            return
        share = f" ({100 * flagged / rows:.3g} %)" if rows else ""
        none = ": none scores above the checkpoint's threshold" if rows and not flagged else ""
        earlier = " (replacing an earlier file)" if self._replacing_predictions else ""
        kept = f" with the file's {', '.join(columns_kept)} column{'s' * (len(columns_kept) > 1)}" * bool(columns_kept)
        message = f"wrote {rows} predictions{kept} to {target}{earlier}; {flagged} flagged as anomalies{share}{none}"
        limit = self.trainer.limit_predict_batches
        if limit != 1.0 or isinstance(limit, int):  # (1: one batch; 1.0: all of them)
            message += f" (--trainer.limit_predict_batches {limit}: only those batches of the rows were scored)"
        rank_zero_info(message)

    def after_test(self) -> None:
        if logged_to(self.trainer):
            rank_zero_info(logged_to(self.trainer).strip())
        path = self.config.get(self.subcommand, self.config).get("ckpt_path")
        if path and Path(path).is_file():  # its file: a spawned run's weights were loaded in the workers only
            state = torch.load(path, map_location="cpu", weights_only=False).get("state_dict", {})
            threshold = state.get("model.calibration.threshold")
            if threshold is not None and float(threshold) == float(threshold):  # not NaN: never fitted
                stage = "test" if self.subcommand == "test" else "val"
                metrics = next((c for c in self.trainer.callbacks if isinstance(c, AnomalyMetrics)), None)
                scored = metrics is not None and "roc_auc" in metrics.last_metrics.get(stage, {})  # (labels)
                if spawned(self.trainer):  # the workers scored: the labels tell
                    scored = self.datamodule.anomaly_share is not None
                counted = "the *_threshold metrics count the rows scored above it, as predict flags them"
                rank_zero_info(
                    f"threshold:   {float(threshold):.6g} (the checkpoint's: "
                    f"{counted if scored else 'predict flags the rows scored above it'})"
                )

    after_validate = after_test

    def after_fit(self) -> None:
        trainer, metrics = self.trainer, next(c for c in self.trainer.callbacks if isinstance(c, AnomalyMetrics))
        validated = metrics.validated_at_step == trainer.global_step
        if spawned(trainer):  # the workers validated (this process saw none): they say whether the last step
            validated = bool(trainer.callback_metrics.get(LAST_STEP_VALIDATED, 0))
        if trainer.limit_val_batches != 0 and len(self.datamodule.splits.val) and not validated:
            fit_metrics = dict(trainer.callback_metrics)
            last = spawned_last_checkpoint(trainer)
            if last is not None:  # the steps ran in the workers: without their counters, logged at step 0
                loops = torch.load(last, weights_only=False, map_location="cpu")["loops"]
                trainer.fit_loop.load_state_dict(loops["fit_loop"])
            loop = trainer.fit_loop.epoch_loop
            if last is None and spawned(trainer) and FIT_STEPS in fit_metrics:  # no checkpoint: the workers' count
                loop._batches_that_stepped = int(fit_metrics[FIT_STEPS])
            # the last epoch had none; logged at the step a validation within fit would have used
            moved = min(1, loop._batches_that_stepped)
            loop._batches_that_stepped -= moved
            try:
                trainer.validate(self.model, datamodule=self.datamodule, verbose=False)
            finally:
                loop._batches_that_stepped += moved
            trainer.callback_metrics.update({k: v for k, v in fit_metrics.items() if k not in trainer.callback_metrics})
        val = metrics.last_metrics.get("val")
        if val is None and spawned(trainer):  # the workers' metrics reach this process as the trainer's
            val = {k[4:]: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val/")} or None
        resumed_from = self.config.get("fit", self.config).get("ckpt_path")
        rank_zero_info(fit_summary(trainer, self.datamodule, val, resumed_from))


CTRL_C_SEEN = threading.Event()  # set by ctrl_c_seen's handler: a Ctrl-C this run received


@contextmanager
def ctrl_c_seen():
    """Ctrl-C (SIGINT) raises KeyboardInterrupt as before and is also remembered (``CTRL_C_SEEN``), for
    ``InterruptAtNextBatch``; in the main thread only, where Python's own handler is installed."""
    previous = signal.getsignal(signal.SIGINT)
    if threading.current_thread() is not threading.main_thread() or previous is not signal.default_int_handler:
        yield
        return

    def remembered(signum, frame):
        CTRL_C_SEEN.set()
        raise KeyboardInterrupt

    CTRL_C_SEEN.clear()
    signal.signal(signal.SIGINT, remembered)
    try:
        yield
    finally:
        if signal.getsignal(signal.SIGINT) is remembered:  # (Lightning ignores it once it handles one: kept so)
            signal.signal(signal.SIGINT, previous)


def threads_and_processes(trainer) -> tuple[int, int]:
    """The torch threads each of this machine's processes of the run will have, and how many processes: a
    multi-process run's as Lightning sets them (OMP_NUM_THREADS, else the cores shared out), not this one's."""
    processes = trainer.num_devices if trainer.world_size > 1 else 1
    if processes == 1:
        return torch.get_num_threads(), 1
    given = os.environ.get("OMP_NUM_THREADS", "")
    return (int(given) if given.isdigit() and int(given) > 0 else _suggested_max_num_threads(processes)), processes


def more_processes_than_cores(trainer) -> str | None:
    """A warning's text where a run on CPUs starts more processes on this machine than it has cores, else None."""
    processes, cores = trainer.num_devices, len(os.sched_getaffinity(0))
    if not isinstance(trainer.accelerator, CPUAccelerator) or trainer.world_size < 2 or processes <= cores:
        return None
    return (
        f"--trainer.devices {processes} starts {processes} processes on {cores} cores: they take turns on the cores "
        f"and wait for each other at every step, slower than {cores} processes would be; give --trainer.devices "
        f"{cores} or fewer"
    )


LAUNCHER_PID = "DAGMM_DDP_LAUNCHER_PID"  # the first ddp process of a machine, for those it starts
WORKERS_STOP_SECONDS = 60.0  # how long a spawned run's workers have to stop after SIGTERM before SIGKILL


@contextmanager
def sigterm_forwarded_to_workers(trainer):
    """In the process that spawned a run's workers (ddp_spawn), SIGTERM goes on to the workers, which stop
    after their batch, and then ends this process's run as Lightning ends one process's (SIGTERMException:
    the interrupted fit's summary, exit 143). Had: this process died at once (Python's default), its
    workers trained on, orphaned; a SIGTERM to the whole group left them waiting on each other. A worker
    that gets SIGTERM sends it here (had: it stopped alone, the others ended on a broken connection). Whatever
    else ends this process's run (Ctrl-C sent to it alone) stops its workers too (had: it waited for them
    at its exit while they trained on). One that comes once the workers' fit has ended changes nothing."""
    if not spawned(trainer) or threading.current_thread() is not threading.main_thread():
        yield
        return
    previous, handling = signal.getsignal(signal.SIGTERM), []
    finished = multiprocessing.RawValue("b", 0)  # set by the workers once their fit has ended
    for callback in trainer.callbacks:  # a worker's SIGTERM comes here too (copied to the workers at their spawn)
        if isinstance(callback, InterruptAtNextBatch):
            callback.spawner, callback.fit_finished = os.getpid(), finished

    def forward(signum, frame):
        if handling:  # (a second one, or a worker's echo, while the workers stop)
            return
        handling.append(signum)
        if not finished.value:
            stop_workers()
        if finished.value:  # past the workers' last agreement (had: reported interrupted, exit 143)
            rank_zero_info("SIGTERM came after the fit's last step: the fit ends as it would have")
            return  # (its workers' result is read as without it)
        trainer._signal_connector.received_sigterm = True
        raise SIGTERMException

    signal.signal(signal.SIGTERM, forward)
    try:
        yield
    except BaseException:
        handling.append(None)  # (the workers' echo of the SIGTERM sent to them: not a second reason to stop)
        stop_workers()
        raise
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextmanager
def ends_with_the_process_that_started_it(trainer):
    """A ddp process that Lightning starts beside the first one on its machine (LOCAL_RANK 1, 2, ...) gets
    SIGTERM when that process ends (Linux's PR_SET_PDEATHSIG), or ends at once where it has ended already:
    the first process hands its pid on to them in LAUNCHER_PID for its run (had: a SIGTERM or SIGKILL to the
    first process alone left the others running, or waiting for it to join for up to 30 minutes). A rank
    started otherwise (by hand, torchrun, SLURM) is left as it is."""
    environment = getattr(trainer.strategy, "cluster_environment", None)
    ours = sys.platform == "linux" and type(environment).__name__ == "LightningEnvironment" and not spawned(trainer)
    launcher = os.environ.pop(LAUNCHER_PID, None)  # (ours: the first process's; not handed on further)
    if ours and launcher is not None:
        import ctypes

        ctypes.CDLL(None).prctl(1, int(signal.SIGTERM))  # PR_SET_PDEATHSIG
        if launcher != str(os.getppid()):  # (it ended before the prctl)
            os.kill(os.getpid(), signal.SIGTERM)
    first = ours and launcher is None and not os.environ.get("LOCAL_RANK", "0").strip("0")
    if first:
        os.environ[LAUNCHER_PID] = str(os.getpid())  # (for the processes Lightning starts in this run)
    try:
        yield
    finally:
        if first:
            os.environ.pop(LAUNCHER_PID, None)


@contextmanager
def signals_end_the_rendezvous(trainer):
    """In a process of a distributed run that is not spawned (ddp: each process its own command, on each
    node), SIGTERM and Ctrl-C end the process at once while it waits for the others to join (the strategy's
    ``setup_distributed``: torch's rendezvous, in C++ code, where Python's handlers cannot run until it
    returns, up to its 30-minute timeout; had: both ignored there, a node that could not reach the first
    one stopped by SIGKILL only). Nothing has been trained or written yet to end cleanly."""
    strategy = trainer.strategy
    setup = getattr(strategy, "setup_distributed", None)
    if setup is None or spawned(trainer) or threading.current_thread() is not threading.main_thread():
        yield
        return

    def at_default_signals() -> None:
        handlers = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
        # (left as they are: ignored by choice, a job started with `&` or a trap; None, set outside Python)
        handlers = {s: h for s, h in handlers.items() if h not in (signal.SIG_IGN, None)}
        for s in handlers:
            signal.signal(s, signal.SIG_DFL)
        try:
            setup()
        finally:
            for s, handler in handlers.items():
                signal.signal(s, handler)

    strategy.setup_distributed = at_default_signals
    try:
        yield
    finally:
        strategy.__dict__.pop("setup_distributed", None)


@contextmanager
def sigterm_stops_the_setup(trainer):
    """In a run of one process, SIGTERM before Lightning's handler takes over (while the data is read and
    a checkpoint loaded: minutes for a large file) stops the run as Lightning's does (SIGTERMException: the
    stopped run's message, exit 143; had: the process ended at once, without a word); after the run has
    finished it changes nothing (its output is written, and the process ends within moments)."""
    if spawned(trainer) or threading.current_thread() is not threading.main_thread():
        yield
        return
    previous, connector = signal.getsignal(signal.SIGTERM), trainer._signal_connector

    def stop(signum, frame):
        if connector._original_handlers or trainer.state.status == TrainerStatus.FINISHED:
            return  # (during the run Lightning's handler calls this one after its own: it stops the loops)
        connector.received_sigterm = True
        raise SIGTERMException

    signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def stop_workers() -> None:
    """SIGTERM to a spawned run's live workers (this process's multiprocessing children: also those still
    starting, which the launcher lists only once all have started), then wait for them: at most
    ``WORKERS_STOP_SECONDS`` in all, after which they are killed."""
    workers = multiprocessing.active_children()
    if not workers:
        return
    rank_zero_info(f"stopping the {len(workers)} worker processes (at most {WORKERS_STOP_SECONDS:g} s) ...")
    for worker in workers:
        with suppress(ProcessLookupError):
            os.kill(worker.pid, signal.SIGTERM)
    deadline = time.monotonic() + WORKERS_STOP_SECONDS
    for worker in workers:
        worker.join(max(0.0, deadline - time.monotonic()))
    stuck = [worker for worker in workers if worker.is_alive()]
    for worker in stuck:
        worker.kill()
        worker.join()
    if stuck:
        rank_zero_info(f"the workers did not stop within {WORKERS_STOP_SECONDS:g} s of SIGTERM: killed")


SIGTERM_SYNC_BATCHES = 8  # a spawned run's workers agree every this many training batches whether to stop


class InterruptAtNextBatch(L.Callback):
    """Raises KeyboardInterrupt again at the next batch's end once Ctrl-C was pressed: Python drops one
    raised while a garbage collector's weakref callback runs ("Exception ignored in ..."; torch frees
    tensors all the time), and the run had gone on to its end (1 of 5 tries in a trial). In a spawned run's
    worker, the command's warnings are printed as in the command's process, and SIGTERM only marks the run to
    stop and tells the spawning process, which sends it on to every worker (Lightning's handler broadcasts
    from within it, which pairs with whatever collective the other workers are in: they waited on each
    other for good; a lone worker that stopped had left the spawning process waiting for its result). A
    fit's workers stop together: every ``SIGTERM_SYNC_BATCHES`` training batches, at each epoch's end and
    before each validation they agree (one all-reduce) whether any of them got it (each acting on its own
    mark, one that got it a batch later than another had ended on a broken connection); a worker that learns
    of it so tells its spawning process too (in a run over several machines, the SIGTERM may have reached
    another's only). Under ddp (a process per rank, none spawned) the handler is this one too, without the
    broadcast: the first process sends SIGTERM on to the processes its launcher started, and a fit's ranks
    agree as spawned workers do."""

    def __init__(self) -> None:
        self.sigterm_seen = False  # in a spawned run's worker: SIGTERM came
        self.spawner: int | None = None  # the spawning process, which passes SIGTERM on (set there, copied)
        self.fit_finished = None  # a flag the workers share and set once their fit has ended (set there, copied)
        self._agreeing = False  # a spawned fit's worker beside others: stops once the workers agree
        self._connector = None
        self._launcher = None  # ddp (not spawned): the launcher that started the other ranks' processes
        self._batches = 0

    def _raise_if_seen(self, *args, **kwargs) -> None:
        if CTRL_C_SEEN.is_set():
            CTRL_C_SEEN.clear()
            raise KeyboardInterrupt

    on_validation_batch_end = on_test_batch_end = on_predict_batch_end = _raise_if_seen

    def on_train_batch_end(self, trainer, *args, **kwargs) -> None:
        self._raise_if_seen()
        self._batches += 1
        if self._batches % SIGTERM_SYNC_BATCHES == 0:
            self._agree(trainer)  # Lightning raises SIGTERMException after this batch

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self._agree(trainer)  # ... at this epoch's end

    def on_validation_start(self, trainer, pl_module) -> None:
        if self._agree(trainer):  # before the validation's mixture fit over the training rows
            raise SIGTERMException

    def _agree(self, trainer) -> bool:
        """Whether any of a spawned fit's workers got SIGTERM (each worker calls it at the same points); if
        so, this worker's run is marked to stop."""
        if not self._agreeing:
            return False
        seen = torch.tensor([float(self.sigterm_seen)], device=trainer.strategy.root_device)
        torch.distributed.all_reduce(seen, op=torch.distributed.ReduceOp.MAX)
        if seen.item() > 0:
            trainer._signal_connector.received_sigterm = True
            if not self.sigterm_seen:  # another node's (its spawning process would wait for a result for good)
                self._tell_spawner()
        return seen.item() > 0

    def setup(self, trainer, pl_module, stage: str) -> None:
        if not spawned(trainer):
            if trainer.world_size > 1 and torch.distributed.is_initialized():  # ddp: a process per rank
                self._connector = trainer._signal_connector  # (Lightning's handler, as in a spawned worker, had
                self._connector._sigterm_notifier_fn = self._on_sigterm  # broadcast inside the collective the
                self._launcher = trainer.strategy.launcher  # signal came in: a refit's all-gather, for good)
                self._agreeing = stage == "fit"
            return
        own_warnings_as_lines()  # a worker, a fresh interpreter: the command's warnings as its own lines there too
        self._connector = trainer._signal_connector  # (before Lightning registers its handlers)
        self._connector._sigterm_notifier_fn = self._on_sigterm
        if self.fit_finished is not None and self.fit_finished.value:  # the validation after a finished fit
            signal.signal(signal.SIGTERM, signal.SIG_IGN)  # (the handler Lightning finds, and puts back)
        # test, predict: each worker stops after its batch, as before
        self._agreeing = stage == "fit" and trainer.world_size > 1 and torch.distributed.is_initialized()

    def on_train_end(self, trainer, pl_module) -> None:
        if self.fit_finished is None:
            return
        # from here SIGTERM changes nothing (the spawning process reads the result), also once Lightning's
        # teardown (before on_fit_end) has put back the handler it found: Python's default had ended this
        # worker before its result, the spawning process on a traceback (a SIGTERM to the process group)
        self._connector._original_handlers[signal.SIGTERM] = signal.SIG_IGN
        self.fit_finished.value = 1

    def on_fit_end(self, trainer, pl_module) -> None:
        if self.fit_finished is not None:  # (where teardown came first and put back another handler)
            signal.signal(signal.SIGTERM, signal.SIG_IGN)

    def _on_sigterm(self, signum, frame) -> None:
        if self.fit_finished is not None and self.fit_finished.value:
            return
        if not self.sigterm_seen:
            self._tell_spawner()
            if self._launcher is not None:  # ddp's first process: on to the others it started, as Lightning's
                self._launcher.kill(signum)
        self.sigterm_seen = True
        if not self._agreeing:
            self._connector.received_sigterm = True

    def _tell_spawner(self) -> None:
        """SIGTERM to the spawning process, which stops the run (and ignores the echo it sends back)."""
        self.sigterm_seen = True
        if self.spawner == os.getppid():
            with suppress(ProcessLookupError):
                os.kill(self.spawner, signal.SIGTERM)


class ValidateLastStepInWorkers(L.Callback):
    """In a spawned fit's workers, the fit's last training batch validates where the schedule
    (``check_val_every_n_epoch``, ``val_check_interval``) would not: the spawning process had started the
    workers again for it once the fit ended (about 10 s, and a second event file)."""

    def on_train_batch_end(self, trainer, *args, **kwargs) -> None:
        if not spawned(trainer) or not trainer.enable_validation or trainer.should_stop:
            return
        checkpoint = own_checkpoint(trainer)
        if checkpoint is not None and checkpoint.monitor is not None:  # it could choose that step: a fit of one
            return  # process cannot (its validation after the fit chooses nothing)
        loop = trainer.fit_loop
        last_step = 0 <= trainer.max_steps <= trainer.global_step
        last_epoch = (
            loop.max_epochs is not None
            and 0 <= loop.max_epochs <= trainer.current_epoch + 1
            and loop.epoch_loop.batch_progress.is_last_batch
        )
        if last_step or last_epoch:  # Lightning validates a fit asked to stop (EarlyStopping's way)
            trainer.should_stop = True
            trainer.check_val_every_n_epoch = None  # (that validation is due in any epoch)


def _is_progress_bar(callback) -> bool:
    """Whether ``callback`` (a config's entry, or a callback made already) is a progress bar."""
    made = imported_class(getattr(callback, "class_path", "")) if isinstance(callback, Namespace) else type(callback)
    return isinstance(made, type) and issubclass(made, ProgressBar) or "ProgressBar" in str(made)


def _is_bar_added_before(callback) -> bool:
    """Whether ``callback`` (a config's entry) is the TQDM bar the CLI added before ProgressReport, as a saved
    config.yaml of an older run holds it: the CLI's choice then, not the user's."""
    if str(getattr(callback, "class_path", "")) != "lightning.pytorch.callbacks.TQDMProgressBar":
        return False
    settings = getattr(callback, "init_args", None)
    settings = settings.as_dict() if isinstance(settings, Namespace) else dict(settings or {})
    added = {"refresh_rate": REFRESH_RATE, "leave": False, "process_position": 0}  # (the last: a default)
    return set(settings) <= set(added) and all(settings[key] == added[key] for key in settings)


def logged_to(trainer) -> str:
    """Where a run's TensorBoard (or CSV) logs went, with the command that shows them ('' without a logger)."""
    if trainer.logger is None or not trainer.log_dir:
        return ""
    if not isinstance(trainer.logger, TensorBoardLogger):
        return f"  logs:        {trainer.log_dir}"
    return f"  logs:        {trainer.log_dir}   (tensorboard --logdir {trainer.logger.save_dir})"


def checkpoint_print_config(args: list[str]) -> str | None:
    """--print_config beside --ckpt_path (or a --config file's ckpt_path) would print the options before the
    checkpoint's settings replace them (the defaults, not what runs): a message that says where those
    settings are, or None."""
    flags = [a.split("=", 1)[0] for a in args]
    if "--print_config" not in flags:
        return None
    value = ""
    for path in config_files(args, ("--config",)):  # a config file's own ckpt_path (the last one read wins)
        content = config_content(path)
        if content is not None and content.get("ckpt_path") is not None:
            value = str(content["ckpt_path"])
    if "--ckpt_path" in flags:
        at = flags.index("--ckpt_path")
        value = args[at].split("=", 1)[1] if "=" in args[at] else args[at + 1] if at + 1 < len(args) else ""
    if value in ("last", "best", "hpc", "registry", "null", "None", ""):  # Lightning's names: no settings read
        return None
    ckpt = Path(value)
    saved = ckpt.parent.parent / "config.yaml"
    where = f" ({saved})" if ckpt.parent.name == "checkpoints" and saved.is_file() else ""
    return (
        "--print_config shows the options before --ckpt_path's checkpoint brings its own settings; what it "
        f"runs with is in the config.yaml its fit wrote{where}"
    )


def fit_log_folder(checkpoint: Path) -> tuple[Path, str] | None:
    """The logger's folder and name of the fit that wrote ``checkpoint``, where the checkpoint lies where
    that logger put it (``FOLDER/NAME/version_N/checkpoints/FILE``); else None."""
    run = checkpoint.parent
    if run.name != "checkpoints" or not re.fullmatch(r"version_\d+", run.parent.name):
        return None
    return run.parent.parent.parent, run.parent.parent.name


def model_settings(config) -> dict:
    """The model's init_args in a parsed config (empty where there are none)."""
    settings = config.get("model.init_args") if hasattr(config, "get") else None
    return settings.as_dict() if hasattr(settings, "as_dict") else dict(settings or {})


def check_checkpoint_columns(data, saved: dict, preprocessor: dict, given: set[str]) -> None:
    """A run from a table's checkpoint reads the columns it was trained on: ``ignore_columns`` or
    ``symbolic_columns`` given (``given``, not null) with other values than the checkpoint's (``saved``) are refused
    (predict had left only the columns written beside its scores changed, silently), as is a label column
    that is one of its features (``preprocessor``: its state)."""
    for key in ("ignore_columns", "symbolic_columns"):
        now, then = data.get(key), saved.get(key)
        if key in given and now is not None and set(now) != set(then or []):  # (null: as the fit found them)
            also = " (the columns written beside predict's scores: --prediction_writer.keep_columns)"
            raise ConfigurationError(
                f"--data.{key} {list(now or [])}: a run from a checkpoint reads the columns it was trained on "
                f"({key} {list(then or [])}); to train on others, start a new fit (without --ckpt_path)"
                + (also if key == "ignore_columns" else "")
            )
    label = data.get("label_column")
    if "label_column" in given and label is None and saved.get("label_column") is not None:  # (had: a count of
        raise ConfigurationError(  # features, the labels read as one)
            f"--data.label_column null: the checkpoint's table holds its labels in {saved['label_column']!r}, which "
            "the model did not train on; leave --data.label_column out (predict --data.predict_file scores a file "
            "with or without it)"
        )
    if "label_column" in given and label is not None:
        trained = [*preprocessor.get("numeric", []), *preprocessor.get("categories", {})]
        if str(label) in trained:
            raise ConfigurationError(
                f"--data.label_column {label!r} is a column the checkpoint was trained on (a feature), not labels: "
                "name a column of truth that it did not train on, or leave it to the checkpoint "
                f"({saved.get('label_column')!r})"
            )


def check_table_columns_as_trained(data, preprocessor: dict, label_column=None) -> None:
    """A run from a table's checkpoint that reads the table (to take its split's rows) refuses a file with
    other columns than the checkpoint's fit read (``preprocessor``: its state), by the file's header (had:
    a column it never saw refused as text not in symbolic_columns, which the user had not named, or a count
    of encoded features); ``label_column``: the fit's."""
    path = home_expanded(data.get("path"))  # (as the data module reads it)
    if not path or not Path(path).is_file():
        return  # (the reader names that)
    try:
        names = column_names(path)
    except DataError:
        return  # (the reader's words)
    if names is None:  # an NPZ's X: no names
        return
    trained = [*preprocessor.get("numeric", []), *preprocessor.get("categories", {})]
    # (the fit's label column too: --data.label_column null reads the table without labels)
    known = {*trained, *(data.get("ignore_columns") or []), str(data.get("label_column")), str(label_column)}
    extra, absent = [c for c in names if c not in known], [c for c in trained if c not in names]
    if extra or absent:
        what = [f"has columns the fit's table had not: {extra}"] if extra else []
        what += [f"lacks columns it trained on: {absent}"] if absent else []
        raise DataError(
            f"{path} {'; '.join(what)} (the checkpoint trained on {trained}); a run from a checkpoint reads the "
            "table its fit read, to take its split's rows: give that file; to score another file's rows, dagmm "
            f"predict --data.predict_file {path}"
        )


def keys_given(args: list[str], section: str) -> set[str]:
    """The settings of ``section`` (``data`` or ``model``) a command line sets, on it (``--data.KEY``,
    ``--model.init_args.KEY``, ``--data FILE_OR_YAML``) or in its ``--config`` files (and the files those
    name under ``config:``), whatever their values; ``class_path`` where it names a class (``--model X``)."""

    def settings(content) -> set[str]:
        if not isinstance(content, dict):
            return {"class_path"} if isinstance(content, str) else set()
        inner = content.get("init_args", {}) if "class_path" in content else content.get("init_args", content)
        return set(inner) | ({"class_path"} if "class_path" in content else set())

    def dotted(names, prefix: str) -> set[str]:  # --model.init_args.lr, or a config's key model.init_args.lr
        named = [str(n) for n in names if str(n).startswith(prefix)]  # str: a YAML key may be a number
        return {n[len(prefix) :].removeprefix("init_args.").split("=", 1)[0] for n in named}

    keys = dotted(args, f"--{section}.")
    for value in option_values(args, f"--{section}"):  # the group's own settings: a file, inline YAML or a class
        try:
            keys |= settings(read_config(Path(value)) if Path(value).is_file() else load_yaml(value))
        except (yaml.YAMLError, OSError, UnicodeDecodeError):  # jsonargparse reports it
            continue
    for path in config_files(args, ("--config",)):
        content = config_content(path)
        if content is not None:
            keys |= settings(content.get(section)) | dotted(content, f"{section}.")
    return keys - {"help"}


def val_rows_lack_a_class(datamodule) -> str | None:
    """Why a fit's val rows give no anomaly metrics (no labels, or rows of one class), or None where they
    hold normal rows and anomalies (or the data module is not ours: nothing to tell before the fit)."""
    if not isinstance(datamodule, AnomalyDataModule) or getattr(datamodule, "split", None) == "positive_unlabeled":
        return None
    if datamodule.anomaly_share is None:
        return "the data has no labels"
    val = datamodule.is_anomaly[datamodule.splits.val]
    if len(val) == 0:
        return "the split holds no val rows (val_fraction 0)"
    if val.all() or not val.any():
        trained = datamodule.val_anomalies_trained()
        why = (
            f"labelled_anomalies or train_contamination moved its {trained} anomal{'y' if trained == 1 else 'ies'} "
            "into training"
            if trained
            else "the data has too few anomalies to give val one"
        )
        return f"its {len(val)} rows are all {'anomalies' if val.all() else f'normal ({why})'}"
    return None


def spawned(trainer) -> bool:
    """Whether the trainer runs in processes it spawns (ddp_spawn, ddp_notebook), whose state (epochs,
    checkpoint paths, callbacks) stays in them."""
    return type(trainer.strategy.launcher).__name__ == "_MultiProcessingLauncher"


def own_checkpoint(trainer) -> ModelCheckpoint | None:
    """The ``--checkpoint`` callback (Lightning's ``checkpoint_callback`` is the first, maybe one a user added)."""
    ours = [c for c in trainer.checkpoint_callbacks if isinstance(c, LastEpochCheckpoint)]
    return ours[0] if ours else trainer.checkpoint_callback


def local_log_dir(trainer) -> str | None:
    """``Trainer.log_dir`` as this process knows it, without its broadcast: that waits for every process, and
    after Ctrl-C under ddp the others have ended (a gloo error); the first process's answer is the run's."""
    logger = trainer.loggers[0] if trainer.loggers else None
    if logger is None:
        return trainer.default_root_dir
    return logger.log_dir if isinstance(logger, (TensorBoardLogger, CSVLogger)) else logger.save_dir


def spawned_last_checkpoint(trainer) -> Path | None:
    """The last.ckpt a spawned fit's workers wrote (their checkpoint callback's paths stay in them), or None."""
    checkpoint = own_checkpoint(trainer)
    folder = local_log_dir(trainer)
    if checkpoint is None or not spawned(trainer) or not folder:
        return None
    candidate = Path(checkpoint.dirpath or Path(folder, "checkpoints"), "last.ckpt")
    return candidate if candidate.is_file() else None


PU_LEARNED_LITTLE = 0.005  # an anomaly share by c below it is not told from c's error
KEY_METRICS = (
    "roc_auc",
    "roc_auc_energy",
    "average_precision",
    "precision_rho",
    "recall_rho",
    "f1_rho",
    "f1_threshold",
)


def model_traits(module, datamodule) -> str:
    """What sets a fit's model apart from the class's paper form, for the summary's model line: another
    mixture family, score or member count, and the term labelled anomalies train (the mixed split); had: an
    lmm.yaml or mixed_loss.yaml fit said only 'DAGMM'."""
    hparams, traits = getattr(module, "hparams", {}), []
    if hparams.get("mixture", "gaussian") != "gaussian":
        traits.append(f"mixture {hparams['mixture']}")
    if hparams.get("inference", "energy") != "energy":
        traits.append(f"score {hparams['inference']}")
    if (hparams.get("members") or 1) > 1:
        traits.append(f"{hparams['members']} members")
    if getattr(datamodule, "split", None) == "mixed" and hparams.get("anomaly_loss"):
        margin = hparams.get("anomaly_margin") if hparams["anomaly_loss"] != "inverse" else None  # (inverse: none)
        margin = f", margin {margin:g}" if margin is not None else ""
        traits.append(f"labelled anomalies: the {hparams['anomaly_loss']} term{margin}")
    return f"; {', '.join(traits)}" if traits else ""


def fit_summary(
    trainer, datamodule: AnomalyDataModule, metrics: dict[str, float] | None, resumed_from: str | None = None
) -> str:
    """What a finished ``fit`` leaves: the rows, where the logs and checkpoints are, the last validation,
    and the commands that test and score with the checkpoint. ``resumed_from``: the fit's --ckpt_path."""
    checkpoint = own_checkpoint(trainer)
    last = checkpoint.last_model_path if checkpoint is not None else ""
    done, steps = trainer.current_epoch, trainer.global_step
    resumed = getattr(trainer.lightning_module, "resumed_at_step", None)
    resumed_from = resumed_from if resumed_from and Path(resumed_from).is_file() else None  # not 'last', 'hpc'
    spawned_last = None if last else spawned_last_checkpoint(trainer)
    if spawned(trainer) and resumed_from and spawned_last is None:  # the workers resumed it and wrote nothing
        epochs_then, resumed = trained(resumed_from)[:2]
        if limits_reached(trainer, epochs_then, resumed):  # nothing left to train: the resumed fit is the model
            spawned_last = Path(resumed_from)
        else:  # they trained on without writing a checkpoint (--checkpoint.save_last false): their steps are unknown
            resumed = None
    if spawned_last is not None:  # the epochs ran in the spawned processes; their last checkpoint counts them
        last = str(spawned_last)
        done, steps, _ = trained(last)
    elif spawned(trainer) and FIT_STEPS in trainer.callback_metrics:  # no checkpoint: the workers' counters
        done, steps = int(trainer.callback_metrics[FIT_EPOCHS]), int(trainer.callback_metrics[FIT_STEPS])
    nothing_trained = resumed is not None and resumed == steps  # --ckpt_path's step
    if nothing_trained and resumed_from:
        last = str(resumed_from)
    by_steps = 0 < trainer.max_steps <= steps  # it may stop within an epoch
    finished = f"after {counted(done, 'epoch')}"
    if by_steps:
        why = "--trainer.fast_dev_run" if trainer.fast_dev_run else "--trainer.max_steps"
        finished = f"after {counted(steps, 'step')} ({why}), in {counted(done, 'epoch')}"
    lines = [f"fit finished {finished}; data: {datamodule.describe()}"]
    workers = torch.load(spawned_last, map_location="cpu", weights_only=False) if spawned_last is not None else {}
    encoding = workers.get(type(datamodule).__qualname__, {}).get("preprocessor")
    if encoding is not None and datamodule.preprocessor.constant is None:  # the workers scaled the rows, not
        datamodule.preprocessor.load_state_dict(encoding)  # this process: their scaling's constant columns
    columns = datamodule.describe_columns()
    if columns:
        lines.append(f"  columns:     {columns}")
    module = trainer.lightning_module
    traits = model_traits(module, datamodule)  # (--model twice: the last)
    lines.append(f"  model:       {type(module).__name__} ({type(module).__module__}){traits}")
    if logged_to(trainer):
        lines.append(logged_to(trainer))
    if last:
        at = "the fit's end" if by_steps else "its last epoch"
        if getattr(checkpoint, "save_weights_only", False):
            at += "; weights only: test and predict take it, a fit cannot resume from it"
        lines.append(f"  checkpoint:  {last} ({'the resumed fit, unchanged' if nothing_trained else at})")
    elif checkpoint is not None and done == 0 and not checkpoint.best_model_path:
        lines.append("  checkpoint:  none written (no epoch trained)")
    if nothing_trained:
        limit = "--trainer.max_steps" if by_steps else "--trainer.max_epochs"
        lines.append(
            f"  nothing trained: the checkpoint resumed had reached the fit's end already (step {resumed}); "
            f"raise {limit} to train on"
        )
    for kept in trainer.checkpoint_callbacks:  # --checkpoint.monitor, and any ModelCheckpoint a user added
        if kept.best_model_path and kept.monitor:
            score = kept.best_model_score  # None in the process that spawned the fit
            shown = "" if score is None else f" {float(score):.4f}"
            lines.append(f"  best:        {kept.best_model_path} ({kept.monitor}{shown})")
        elif kept.monitor and kept.save_top_k != 0 and done and not spawned(trainer):  # (a spawned fit's: unknown)
            every = trainer.check_val_every_n_epoch
            when = f"every {counted(every, 'epoch')}: --trainer.check_val_every_n_epoch"
            if not every or trainer.val_check_interval != 1.0:
                when = "--trainer.val_check_interval"
            if trainer.limit_val_batches == 0 or not len(datamodule.splits.val):
                when = "no validation: no val rows, or --trainer.limit_val_batches 0"
            lines.append(f"  best:        none written: no validation during the fit logged {kept.monitor} ({when})")
    network = getattr(trainer.lightning_module, "model", None)
    reseeded, em_steps = getattr(network, "components_reseeded", 0), getattr(network, "em_steps_run", 0)
    here = not spawned(trainer)  # a spawned run's fit ran (and counted) in its worker processes
    read, total = getattr(network, "rows_fitted", (0, 0))
    if not here and FIT_COUNTS_KEY in workers:  # their last checkpoint's fit
        counts = workers[FIT_COUNTS_KEY]
        reseeded, em_steps, here = counts["reseeded"], counts["em_steps"], True
        read, total = counts.get("rows_fitted", (0, 0))
    fit_k = network.mixture.n_components if hasattr(network, "mixture") else None
    network_k = trainer.lightning_module.hparams.get("n_components")
    more = fit_k is not None and network_k is not None and fit_k != network_k
    sampled = here and 0 < read < total
    if reseeded or em_steps or more or sampled:
        done = [f"{fit_k} components (the estimation network's {network_k})"] if more else []
        done += (
            [f"fitted on {read:,} of the {total:,} training rows, a fixed random subset (fit_rows)"] if sampled else []
        )
        done += [f"{reseeded} empty components re-seeded (most in a member)"] if reseeded and here else []
        done += [f"refined by {em_steps} EM steps (at most {network.em_steps})"] if em_steps and here else []
        lines.append(f"  mixture:     {', '.join(done)}")
    calibration = getattr(network, "calibration", None)
    pu = not getattr(trainer.lightning_module, "threshold_from_contamination", True)  # c / 2: the validation line
    threshold = float(calibration.threshold) if calibration is not None else float("nan")
    if calibration is not None and spawned_last is not None:  # the workers' fit: their last checkpoint holds it
        threshold = float(workers["state_dict"].get("model.calibration.threshold", float("nan")))
    contamination = calibration.contamination if calibration is not None else None
    if contamination is None and spawned_last is not None and datamodule.anomaly_share:  # the workers took it
        contamination = contamination_from_labels(datamodule.anomaly_share)
    if contamination and not pu and threshold == threshold:  # not NaN
        module = trainer.lightning_module  # (in the main process of a spawned fit, no longer attached to it)
        held_out = hasattr(module, "threshold_on_val_rows_of") and module.threshold_on_val_rows_of(datamodule)
        rows = "val rows' scores (not trained on)" if held_out else "training scores"
        rows = f"the scores of the {read:,} training rows fitted" if sampled and not held_out else rows
        above = f"the top {100 * contamination:.3g} % of {rows} lie above"
        scores = getattr(trainer.lightning_module, "_threshold_scores", None)
        ties = None if scores is None else ties_at_threshold(scores, threshold, contamination)
        if ties is not None:  # ties at the quantile (duplicate rows) leave fewer above it
            share, tied = ties
            above = (
                f"{100 * share:.3g} % of {rows} lie above, not {100 * contamination:.3g} %: "
                f"{100 * tied:.3g} % tie at it (duplicate rows?), and predict may flag them all or none"
            )
        taken_on = len(scores) if scores is not None else len(datamodule.splits.val) if held_out else 0
        if 0 < contamination * taken_on < 1:
            left = top_row(scores, threshold)
            above = f"the top {100 * contamination:.3g} % of {rows}, under one of {taken_on} rows: {left}"
        elif 0 < contamination * taken_on < FEW_ROWS_ABOVE:  # its sampling spread: about sqrt(k) rows of k
            count = (  # (the quantile falls between two rows: as many lie above as the count says, not its share)
                f"{int((scores.detach().cpu() > threshold).sum())}"
                if scores is not None
                else f"about {rows_above_quantile(taken_on, contamination)}"  # (had: 'about 4.7')
            )
            above += (
                f"; {count} of {taken_on} rows: a cut of so few rows is noisy, the share predict flags of new rows "
                "can differ much"
            )
        lines.append(f"  threshold:   {threshold:.6g} ({above})")  # predict flags rows above it
    shown = "  ".join(f"{k} {metrics[k]:.4f}" for k in KEY_METRICS if k in (metrics or {}))
    if shown:
        lines.append(f"  validation:  {shown}")
    elif trainer.limit_val_batches == 0 or not len(datamodule.splits.val):
        lines.append("  validation:  off (no val rows, or --trainer.limit_val_batches 0)")
    elif hasattr(network, "c"):  # positive-unlabeled: the val rows are labelled normal rows, for c
        c = float(workers["state_dict"].get("model.c", float("nan"))) if spawned_last is not None else float(network.c)
        lines.append(
            f"  validation:  c {c:.4f} (an anomaly where the classifier's h < c/2; predict's score is 1 - h, "
            f"its threshold 1 - c/2 = {1 - c / 2:.6g})"
        )
        # Elkan and Noto: labelled share = c * normal share, so c gives the training rows' anomaly share; an h
        # that learned nothing has c = the labelled share, 0 % of anomalies, and c/2 flags about no row
        labelled = float(np.mean(datamodule.splits.train_labels == KNOWN_NORMAL))
        if c > 0:
            estimate = max(0.0, 1.0 - labelled / c)
            # (not 'train longer': c a little under the labelled share came of well-trained models too)
            little = "; c not clearly above that share: the estimate says little, the c/2 rule does not use it"
            little = little if estimate < PU_LEARNED_LITTLE else ""
            lines.append(
                f"               by c, {100 * estimate:.3g} % of the training rows are anomalies (1 - their labelled "
                f"share {labelled:.4f} / c{little})"
            )
        if not spawned(trainer) and trainer.world_size == 1 and c == c:  # (one process's rows and weights)
            flagged, total = rows_above(trainer.lightning_module, datamodule.refit_dataloader("train"), 1 - c / 2)
            line = (
                f"               c/2 flags {flagged:,} of the {total:,} training rows ({100 * flagged / total:.3g} %)"
            )
            if flagged == 0:  # h near its base rate on every row: c/2 lies below all of them
                line += ": none, the classifier learned too little to tell rows apart; train longer"
            lines.append(line)
    else:
        free = "  ".join(f"{k} {metrics[k]:.4f}" for k in LABEL_FREE if k in (metrics or {}))
        lines.append(
            "  validation:  no anomaly metrics (the val rows need both classes and labels)"
            + (f"; {free}" if free else "")
        )
    if last:
        spec = DATASETS.get(getattr(datamodule, "dataset", None))  # (a paper data set's file format)
        rows = "ROWS.csv" if spec is None else spec.example_file
        predict = f"dagmm predict --ckpt_path {last} --data.predict_file {rows}"
        if datamodule.anomaly_share is None:  # nothing to test against
            lines.append(f"  next:        {predict}")
        else:
            lines += [f"  next:        dagmm test --ckpt_path {last}", f"               {predict}"]
    return "\n".join(lines)


FEW_ROWS_ABOVE = 20  # rows above a quantile threshold under which the summary calls it noisy


def top_row(scores: torch.Tensor | None, threshold: float) -> str:
    """What a quantile threshold under one row of ``scores`` (N,) leaves above it, said."""
    if scores is not None and not bool((scores.detach().cpu() > threshold).any()):
        return "the highest scores tie at the threshold, so no row lies above it"
    return "the threshold lies between the two highest scores, so one row lies above it"


def rows_above(module: DAGMM, batches, threshold: float) -> tuple[int, int]:
    """How many rows of ``batches`` (x, ...) score above ``threshold`` (as predict flags them), of how many."""
    was_training, flagged, total = module.training, 0, 0
    module.eval()
    try:
        with torch.no_grad():
            for x, *_ in batches:
                scores = module.score(x.to(module.device))
                flagged, total = flagged + int((scores > threshold).sum()), total + len(scores)
    finally:
        module.train(was_training)
    return flagged, total


def counted(n: int, word: str) -> str:
    """``n`` and ``word``, plural unless n is 1: '1 step', '3 steps'."""
    return f"{n} {word}{'s' if n != 1 else ''}"


def limits_reached(trainer, epochs: int, steps: int) -> bool:
    """Whether a fit at ``epochs`` whole epochs and ``steps`` steps has reached the trainer's max_steps or
    max_epochs (read without the fit loop's ``done``, which logs when it is true)."""
    by_epochs = trainer.max_epochs is not None and trainer.max_epochs >= 0 and epochs >= trainer.max_epochs
    return 0 < trainer.max_steps <= steps or by_epochs


def trained(checkpoint: str | Path) -> tuple[int, int, bool]:
    """A fit's checkpoint's whole epochs (one written at an epoch's end counts that epoch: its fit loop has
    processed it, not yet completed it), its steps, and whether it was written within an epoch (at a
    validation there)."""
    saved = torch.load(checkpoint, weights_only=False, map_location="cpu")
    loop = saved["loops"]["fit_loop"]
    epochs = loop["epoch_progress"]["current"]
    # (one written between epochs counts no batch of the next: DAGMM.on_save_checkpoint)
    within = epochs["started"] > epochs["processed"] and not loop["epoch_loop.batch_progress"].get(
        "is_last_batch", True
    )
    return int(epochs["processed"]), int(saved["global_step"]), within


def interrupted_fit_summary(trainer, resumed_from: str | None = None) -> str:
    """What an interrupted ``fit`` leaves: its last epoch's checkpoint and the command that goes on from it
    (``resumed_from``: the checkpoint the fit went on from, if any)."""
    checkpoint = own_checkpoint(trainer)
    last = (checkpoint.last_model_path if checkpoint is not None else "") or spawned_last_checkpoint(trainer)
    try:
        done, steps, within = trained(last) if last and Path(last).is_file() else (None, 0, False)
    except Exception:  # interrupted while it was written
        done = None
    epochs = trainer.fit_loop.epoch_progress.current.processed
    saves = checkpoint is not None and checkpoint.save_last
    if done is None and saves and not spawned(trainer) and limits_reached(trainer, epochs, trainer.global_step):
        return (  # in the final refit or save
            f"fit interrupted after its training ended ({counted(trainer.global_step, 'step')}), while the mixture "
            "was fitted on the training rows for the final checkpoint: none was written; run the fit again and let "
            "it finish"
        )
    if done is None and trainer.global_step == 0 and not last and not spawned(trainer):  # (while the data was read)
        if resumed_from:
            return f"fit interrupted before its first training step; {resumed_from} is as it was: go on from it"
        return "fit interrupted before its first training step: nothing to go on from"
    if done is None:
        every = f"{LastEpochCheckpoint.LAST_EVERY_SECONDS:g} s"
        return (
            "fit interrupted; no checkpoint written yet (last.ckpt comes at an epoch's end or a validation, "
            f"every {every}, the first {every} into the fit; --checkpoint.every_n_epochs 1 writes one at each "
            "epoch's end)"
        )
    folder = local_log_dir(trainer)
    config = Path(folder, "config.yaml") if folder else None
    again = f"--config {config} " if config is not None and config.is_file() else ""
    held = counted(done, "epoch")
    holds = f"fit interrupted; {last} holds its first {f'{steps} steps ({held} whole)' if within else held}"
    if getattr(checkpoint, "save_weights_only", False):  # (a fit cannot resume from it: refused)
        return f"{holds}, weights only: test and predict take it, a fit cannot resume from it"
    return f"{holds}\n  go on:       dagmm fit {again}--ckpt_path {last}"


def new_run_folder(trainer) -> Path | None:
    """The folder this run's TensorBoard or CSV logger is about to create (its version_N), on the first
    process; None if it exists already (a run of its own, whatever happens to this one) or with another
    logger, whose folder may be shared."""
    logger = trainer.logger
    if not trainer.is_global_zero or not isinstance(logger, (TensorBoardLogger, CSVLogger)):
        return None
    folder = Path(logger.log_dir)
    return None if folder.exists() else folder


def earlier_run(trainer, ckpt_path) -> tuple[Path, str] | None:
    """The folder a fit is about to write in and what to give instead, if an earlier run wrote there (a
    logger's version set by hand and reused; without a logger, or with ``--checkpoint.dirpath``, a
    checkpoints' folder holding the last.ckpt this fit would write) and the fit goes on from no checkpoint;
    else None. Single machine only: another node's disk may not hold the folder, and one node refusing
    alone would leave the others waiting."""
    if ckpt_path is not None or trainer.num_nodes != 1:
        return None
    logger = trainer.logger
    if isinstance(logger, (TensorBoardLogger, CSVLogger)) and logger.log_dir:
        folder = Path(logger.log_dir)
        written = [*folder.glob("events.out.tfevents.*"), *folder.glob("metrics.csv"), *folder.rglob("*.ckpt")]
        if written:
            return folder, "another --trainer.logger.init_args.version (or none: a new version_N)"
    checkpoint = own_checkpoint(trainer)
    if checkpoint is None or (logger is not None and not checkpoint.dirpath):
        return None  # (a logger's new version_N holds its checkpoints)
    folder = Path(checkpoint.dirpath or Path(trainer.default_root_dir) / "checkpoints")
    given = "--checkpoint.dirpath" if checkpoint.dirpath else "--trainer.default_root_dir"
    last = folder / f"{checkpoint.CHECKPOINT_NAME_LAST}{checkpoint.FILE_EXTENSION}"  # what this fit would write
    return (folder, f"another {given}") if checkpoint.save_last and last.exists() else None


def remove_if_only_startup_files(folder: Path) -> None:
    """Delete ``folder``, made by a run that a data or configuration error stopped, if it holds only what
    a logger writes at the start (event files, hparams.yaml, config.yaml): failed attempts do not pile up
    as empty version_N folders beside the real runs."""
    started = lambda f: f.name.startswith("events.out.tfevents.") or f.name in STARTUP_FILES  # noqa: E731
    if folder.is_dir() and all(f.parent == folder and started(f) for f in folder.rglob("*") if not f.is_dir()):
        shutil.rmtree(folder, ignore_errors=True)


STARTUP_FILES = ("hparams.yaml", "config.yaml")


def remove_empty_event_files(folder: Path) -> None:
    """Delete the TensorBoard event files in ``folder`` that hold nothing but the file's header: Lightning
    opens a logger's writer at every command's setup, predict logs nothing, and TensorBoard had listed its
    version_N as a run without data (its predictions, hparams.yaml and config.yaml stay)."""
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader

    for path in folder.glob("events.out.tfevents.*"):
        try:
            empty = all(event.WhichOneof("what") == "file_version" for event in EventFileLoader(str(path)).Load())
        except Exception:  # noqa: BLE001 - a file it cannot read is left as it is
            continue
        if empty:
            path.unlink(missing_ok=True)


class SettingsOnly(DAGMMCLI):
    """The CLI's parsing alone: configs followed, the command line over them; nothing seeded or built."""

    def _set_seed(self) -> None:
        pass

    def before_instantiate_classes(self) -> None:
        pass

    def instantiate_classes(self) -> None:
        pass


def parse_settings(args: list[str]) -> Namespace:
    """The settings ``args`` (without a subcommand) give, as ``dagmm fit`` would read them."""
    return build_cli(args, run=False, save_config=False, cli_class=SettingsOnly).config


def check_settings(args: list[str]) -> None:
    """Parse ``args`` (without a subcommand) as ``dagmm fit`` would and build its model and data module, without
    reading data or making a Trainer (the model gets a stand-in input width where the data would give it):
    a setting the parser, the model or the data module refuses is refused here, as in that run."""
    config = parse_settings(args)
    init = config.model.init_args.as_dict() if config.model.get("init_args") is not None else {}
    if init.get("input_dim") is None:
        init["input_dim"] = 1  # (the data's, in a run)
    imported_class(config.model.class_path)(**init)
    AnomalyDataModule(**config.data.as_dict())


# the end of a fit's config.yaml (a comment: read back, the settings are the same); a fit of that file on
# another count is warned of (README: the same thread count repeats a fit bit for bit)
THREADS_NOTE = (
    "# dagmm: this fit ran {threads} torch thread(s) a process; on another count a fit of this file trains other "
    "weights (OMP_NUM_THREADS={threads} repeats it)"
)
THREADS_NOTE_READ = re.compile(r"^# dagmm: this fit ran (\d+) torch thread", re.M)


def threads_noted(args: list[str]) -> tuple[Path, int] | None:
    """The first config file of ``args`` whose fit noted its thread count (``THREADS_NOTE``), and the count."""
    for path in config_files(args, ("--config", "-c")):
        try:
            found = THREADS_NOTE_READ.search(path.read_text(errors="replace"))
        except OSError:
            continue
        if found:
            return path, int(found.group(1))
    return None


class SaveRunConfig(SaveConfigCallback):
    """Lightning's ``config.yaml`` of a run in its folder; none for a test, validate or predict run without a
    logger, which has no folder of its own (a scheduled predict with --trainer.logger false had rewritten
    logs/config.yaml in its working folder at every run). A fit keeps it beside its checkpoints."""

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if trainer.logger is None and stage != "fit":
            return
        first = not self.already_saved
        self._save(trainer, pl_module, stage)
        if first and stage == "fit" and self.save_to_log_dir:
            log_dir = trainer.log_dir  # (every rank: a broadcast)
            if trainer.is_global_zero:
                with get_filesystem(log_dir).open(os.path.join(log_dir, self.config_filename), "a") as file:
                    file.write(THREADS_NOTE.format(threads=torch.get_num_threads()) + "\n")

    def _save(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if self.parser is not None:
            super().setup(trainer, pl_module, stage)
            return
        if not self.already_saved:  # a spawned process: Lightning's steps, with the text rendered before
            log_dir = trainer.log_dir  # (broadcast)
            if trainer.is_global_zero:
                fs = get_filesystem(log_dir)
                fs.makedirs(log_dir, exist_ok=True)
                with fs.open(os.path.join(log_dir, self.config_filename), "w") as file:
                    file.write(self._rendered)
                self.save_config(trainer, pl_module, stage)
                self.already_saved = True
            self.already_saved = trainer.strategy.broadcast(self.already_saved)

    def __getstate__(self) -> dict:
        """Handed to a spawned process (ddp_spawn) without the parser, the config rendered as Lightning
        writes it: the parser holds the data module (its input size), whose rows made each process's
        arguments hundreds of kB (KDDCUP99's: 340 MB) a second time. (Any pickle or deep copy drops the
        parser so; its ``setup`` writes the rendered text.)"""
        state = self.__dict__.copy()
        if self.parser is not None and self.overwrite and not self.multifile and self.save_to_log_dir:
            with tempfile.TemporaryDirectory() as folder:
                path = os.path.join(folder, self.config_filename)
                self.parser.save(self.config, path, skip_none=False, overwrite=True, multifile=False)
                state["_rendered"] = Path(path).read_text()
            state["parser"] = None
        return state


def build_cli(
    args: list[str] | None = None, run: bool = True, save_config: bool = True, cli_class: type = DAGMMCLI
) -> DAGMMCLI:
    """The CLI on ``args`` (default: the command line); with ``run=False`` only parsed and instantiated;
    ``save_config=False`` writes no ``config.yaml`` (without a logger it would land in logs/)."""
    return cli_class(
        DAGMM,
        AnomalyDataModule,
        subclass_mode_model=True,
        seed_everything_default=0,
        trainer_defaults=TRAINER_DEFAULTS,
        save_config_callback=SaveRunConfig if save_config else None,
        parser_class=OneLineErrorParser,
        # prog: also under 'python -m dagmm_lightning'; no abbreviations: --data.label_colum is a typo
        parser_kwargs={
            "prog": "dagmm" if run else "dagmm fit",  # (parsed without a subcommand: fit's options)
            "allow_abbrev": False,
            **{c: {"allow_abbrev": False} for c in DAGMMCLI.subcommands()},
        },
        save_config_kwargs={"overwrite": True},
        args=args,
        run=run,
    )
