"""Training rows for each method, from an export file or from logs (exported here,
in-process, with the same code as `coder export`). Rows are checked for the columns the
method needs, and turned into plain Python records the trainers' datasets are built from
(methods.py renders them with the one chat template)."""

from __future__ import annotations

import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import orjson

# method -> the export format its rows come from
EXPORT_FORMAT = {"sft": "sft", "dpo": "dpo", "kto": "grpo", "grpo": "grpo"}
# method -> columns a row must have (an export of another format lacks them)
COLUMNS = {
    "sft": ("messages",),
    "dpo": ("prompt", "chosen", "rejected"),
    "kto": ("prompt", "completions", "rewards", "reward_sources"),
    "grpo": ("prompt", "completions", "rewards"),
}
DESIRABLE = 0.5  # kto: a verifier's or user's reward at least this is desirable


class DataError(Exception):
    """Data of the wrong shape for the method (the message names the columns)."""


class EmptyData(Exception):
    """Nothing to train on (the message says why)."""


@dataclass
class Data:
    method: str
    rows: list[dict]
    files: list[Path]  # what was read: the export file, or the log files
    exported: bool  # True when coder exported the logs itself
    skipped: Counter = field(default_factory=Counter)  # reason -> rows left out


def load(
    method: str,
    data_file: Path | None,
    logs: list[Path],
    log_dir: Path,
    from_rollouts: bool = False,
    group_size: int | None = None,
) -> Data:
    if data_file is not None:
        rows, files, exported = _read_rows(data_file), [data_file], False
    else:
        rows, files = _export_logs(method, logs, log_dir, from_rollouts)
        exported = True
    data = Data(method, [], files, exported)
    if not rows:
        raise EmptyData(f"no rows in {', '.join(map(str, files)) or log_dir}")
    _check_columns(method, rows[0], data_file)
    data.rows = list(_select(method, rows, data.skipped, group_size))
    if not data.rows:
        left = ", ".join(f"{n} {why}" for why, n in data.skipped.items())
        raise EmptyData(
            f"none of {len(rows)} rows can train {method}" + (f": {left}" if left else "")
        )
    return data


def _read_rows(path: Path) -> list[dict]:
    try:
        lines = path.read_bytes().splitlines()
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc.strerror}") from None
    rows = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = orjson.loads(line)
        except orjson.JSONDecodeError:
            raise DataError(f"{path}:{n}: not a JSON line") from None
        if not isinstance(row, dict):
            raise DataError(f"{path}:{n}: a row must be a JSON object")
        rows.append(row)
    return rows


def _export_logs(
    method: str, logs: list[Path], log_dir: Path, from_rollouts: bool
) -> tuple[list[dict], list[Path]]:
    from coder import export
    from coder.log import NoLogs, log_files

    try:
        files = log_files(logs or None, log_dir)
    except NoLogs:
        files = []
    if not files:
        raise EmptyData(f"no logs (*.jsonl) in {log_dir}")
    with tempfile.TemporaryDirectory(prefix="coder-train-") as tmp:
        out = Path(tmp) / "rows.jsonl"
        # --from-rollouts: only the attempts the verifier passed (rejection sampling)
        export.export(files, EXPORT_FORMAT[method], out, min_reward=1.0 if from_rollouts else None)
        rows = _read_rows(out) if out.exists() else []
    return rows, files


def _check_columns(method: str, row: dict, path: Path | None) -> None:
    missing = [c for c in COLUMNS[method] if c not in row]
    if missing:
        fmt = EXPORT_FORMAT[method]
        where = f"{path}: " if path else ""
        raise DataError(
            f"{where}{method} needs rows with the columns {', '.join(COLUMNS[method])} "
            f"(`coder export --format {fmt}`); missing: {', '.join(missing)}; "
            f"the rows have: {', '.join(row)}"
        )


def _select(method: str, rows: list[dict], skipped: Counter, group_size: int | None):
    if method in ("sft", "dpo"):
        yield from rows
    elif method == "kto":
        yield from _kto(rows, skipped)
    else:
        yield from _grpo(rows, skipped, group_size)


def _kto(rows: list[dict], skipped: Counter):
    """One (prompt, completion, label) per completion of a group: desirable when a
    verifier or user rewarded it 0.5 or more, undesirable below that or when the
    automatic reward says the turn failed; an automatic 'answered' has no label."""
    for row in rows:
        for comp, reward, source in zip(
            row["completions"], row["rewards"], row["reward_sources"], strict=False
        ):
            if source in ("verifier", "user"):
                label = reward >= DESIRABLE
            elif reward <= -1.0:  # coder/agent.py: -1 for a turn that failed
                label = False
            else:
                skipped["completions with only an automatic, non-failing reward"] += 1
                continue
            yield {
                "prompt": row["prompt"],
                "completion": comp,
                "label": label,
                "tools": row.get("tools") or [],
            }


def _grpo(rows: list[dict], skipped: Counter, group_size: int | None):
    """Recorded groups of one size (the first group's size unless given): TRL's trainer
    takes a fixed number of completions per prompt."""
    size = group_size
    for row in rows:
        n = len(row["completions"])
        if len(set(row["rewards"])) <= 1:
            skipped["flat groups (all rewards equal)"] += 1
            continue
        if size is None:
            size = n
        if n != size:
            skipped[f"groups of another size than {size}"] += 1
            continue
        yield row
