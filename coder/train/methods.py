"""One TRL trainer per method, on the base copy with a LoRA adapter (peft).

Every row is rendered here with the one tool-aware template (template.py), so what is
trained is what the server will render: sft as token ids with the assistant-token mask,
dpo / kto as prompt text plus completion text, grpo as the recorded groups handed to
TRL's GRPOTrainer through `rollout_func` (no generation: the completions and rewards are
the logged ones)."""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from coder.train.data import Data


@dataclass
class Hyper:
    steps: int | None = None  # --steps; else epochs
    epochs: float = 1.0
    lr: float = 2e-4
    lora_r: int = 8
    batch_size: int = 2
    max_length: int = 2048
    seed: int = 0
    threads: int | None = None  # torch threads; None: the cores not busy (torch_threads)

    def card(self) -> dict:
        return dict(self.__dict__)


def load_tokenizer(base_dir: Path):
    from transformers import AutoTokenizer

    from coder.train.template import training_template

    tok = AutoTokenizer.from_pretrained(str(base_dir))
    tok.chat_template = training_template()
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def render(tok, messages: list[dict], tools: list | None, generation_prompt: bool = False) -> str:
    return tok.apply_chat_template(
        messages,
        tools=tools or None,
        tokenize=False,
        add_generation_prompt=generation_prompt,
    )


def continuation(tok, prompt: list[dict], completion: list[dict], tools) -> tuple[str, str]:
    """(prompt text ending in the assistant header, completion text ending in the end
    token): the completion is the full rendering with the prompt's text cut off."""
    head = render(tok, prompt, tools, generation_prompt=True)
    whole = render(tok, prompt + completion, tools)
    if not whole.startswith(head):
        raise ValueError("the template does not render the prompt as a prefix")
    tail = whole[len(head) :]
    if tail.endswith("\n"):
        tail = tail[:-1]  # ends in <|im_end|>, the eos the trainers look for
    return head, tail


def lora_config(r: int):
    from peft import LoraConfig

    return LoraConfig(
        r=r,
        lora_alpha=2 * r,
        lora_dropout=0.0,
        target_modules="all-linear",
        task_type="CAUSAL_LM",
    )


def common_args(h: Hyper, out: Path, **extra: Any) -> dict:
    args = dict(
        output_dir=str(out),
        per_device_train_batch_size=h.batch_size,
        gradient_accumulation_steps=1,
        learning_rate=h.lr,
        num_train_epochs=h.epochs,
        max_steps=h.steps if h.steps else -1,
        logging_steps=1,
        save_strategy="no",
        report_to=[],
        seed=h.seed,
        use_cpu=True,
        bf16=False,
        fp16=False,
        disable_tqdm=True,
        dataloader_num_workers=0,
        include_num_input_tokens_seen="non_padding",
        lr_scheduler_type="constant",
        warmup_steps=0,
        gradient_checkpointing=False,  # a 135M model fits; recomputing costs a third more time
    )
    args.update(extra)
    return args


def torch_threads() -> int:
    """The idle cores, at least one. More OpenMP threads than free cores spin against
    each other: on 2 cores with a load of 7, 2 threads took 50 s a step, 1 thread 10 s.
    Busy is measured over half a second now, not by the load average, which still
    counts work that ended up to a minute ago (a rollout just before would leave
    training one thread on an idle machine)."""
    import psutil

    cores = os.cpu_count() or 1
    busy = psutil.cpu_percent(interval=0.5) / 100 * cores
    return max(1, min(cores, int(cores - busy + 0.5)))


def build_trainer(data: Data, base_dir: Path, h: Hyper, work: Path, callbacks: list):
    import datasets
    import torch
    import transformers
    from datasets import Dataset

    # TRL's dataset passes, weight loading and deprecation notices of the stack: coder's
    # Progress is what the user reads
    datasets.disable_progress_bars()
    transformers.utils.logging.disable_progress_bar()
    warnings.filterwarnings("ignore", category=FutureWarning)
    h.threads = h.threads or torch_threads()
    torch.set_num_threads(h.threads)
    torch.manual_seed(h.seed)
    tok = load_tokenizer(base_dir)
    base_args = common_args(h, work, model_init_kwargs={"dtype": torch.float32})
    method = {"sft": _sft, "dpo": _dpo, "kto": _kto, "grpo": _grpo}[data.method]
    setup = method(data, tok, h, base_args)
    _need(setup.rows, data)
    return setup.trainer(
        model=str(base_dir),
        args=setup.args,
        train_dataset=Dataset.from_list(setup.rows),
        processing_class=tok,
        peft_config=lora_config(h.lora_r),
        callbacks=callbacks,
        **setup.extra,
    )


@dataclass
class Setup:
    """What a method hands build_trainer: its TRL trainer class, that trainer's config,
    the rows it trains on, and any keyword the trainer takes beyond the common ones."""

    trainer: type
    args: Any
    rows: list[dict]
    extra: dict = field(default_factory=dict)


def _sft(data: Data, tok, h: Hyper, base_args: dict) -> Setup:
    from trl import SFTConfig, SFTTrainer

    records = []
    for row in data.rows:
        enc = tok.apply_chat_template(
            row["messages"],
            tools=row.get("tools") or None,
            tokenize=True,
            return_dict=True,
            return_assistant_tokens_mask=True,
        )
        ids, mask = list(enc["input_ids"]), list(enc["assistant_masks"])
        if 1 not in mask[: h.max_length]:
            data.skipped["sft rows with no assistant token within --max-length"] += 1
            continue
        records.append({"input_ids": ids[: h.max_length], "assistant_masks": mask[: h.max_length]})
    args = SFTConfig(
        **base_args,
        max_length=h.max_length,  # the assistant_masks column limits the loss to replies
        packing=False,
    )
    return Setup(SFTTrainer, args, records)


def _pairs(data, tok, keys):
    for row in data.rows:
        tools = row.get("tools") or None
        out = {}
        for key in keys:
            head, out[key] = continuation(tok, row["prompt"], row[key], tools)
        out["prompt"] = head
        yield row, out


def _dpo(data: Data, tok, h: Hyper, base_args: dict) -> Setup:
    from trl import DPOConfig, DPOTrainer

    records = [rec for _, rec in _pairs(data, tok, ("chosen", "rejected"))]
    return Setup(DPOTrainer, DPOConfig(**base_args, max_length=h.max_length), records)


def _kto(data: Data, tok, h: Hyper, base_args: dict) -> Setup:
    from trl import KTOConfig, KTOTrainer

    records = []
    for row, rec in _pairs(data, tok, ("completion",)):
        rec["label"] = bool(row["label"])
        records.append(rec)
    # KTO weighs desirable against undesirable rows within a batch: two at least
    batch = max(2, h.batch_size)
    args = KTOConfig(
        **(base_args | {"per_device_train_batch_size": batch}), max_length=h.max_length
    )
    return Setup(KTOTrainer, args, records)


def _grpo(data: Data, tok, h: Hyper, base_args: dict) -> Setup:
    """The recorded groups through TRL's GRPOTrainer: `rollout_func` returns each group's
    logged completions (tool output masked by env_mask) and the reward function returns
    their logged rewards; GRPOTrainer normalises them per group into advantages."""
    from trl import GRPOConfig, GRPOTrainer

    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    size = len(data.rows[0]["completions"])
    groups: dict[str, dict] = {}
    for row in data.rows:
        tools = row.get("tools") or None
        head = render(tok, row["prompt"], tools, generation_prompt=True)
        comps = [_completion_tokens(tok, row["prompt"], c, tools, head) for c in row["completions"]]
        groups.setdefault(head, {"ids": tok(head)["input_ids"], "comps": [], "rewards": []})
        g = groups[head]
        g["comps"] += comps
        g["rewards"] += [float(r) for r in row["rewards"]]
    cursor: dict[str, int] = {}

    def rollout(prompts: list[str], trainer) -> dict:
        # each prompt arrives num_generations times (TRL repeats them): the k-th copy
        # gets the group's k-th recorded completion
        out: dict = {"prompt_ids": [], "completion_ids": [], "logprobs": None}
        out["env_mask"], out["recorded_reward"] = [], []
        for p in prompts:
            g = groups[p]
            i = cursor.get(p, 0)
            cursor[p] = i + 1
            ids, mask = g["comps"][i % len(g["comps"])]
            out["prompt_ids"].append(g["ids"])
            out["completion_ids"].append(ids)
            out["env_mask"].append(mask)
            out["recorded_reward"].append(g["rewards"][i % len(g["rewards"])])
        # logprobs None: the policy's own at the first step serve as the old ones
        return out

    def recorded_reward(completions, recorded_reward, **_):
        return list(recorded_reward)

    n_groups = max(1, h.batch_size // size) if h.batch_size >= size else 1
    args = GRPOConfig(
        **(base_args | {"per_device_train_batch_size": n_groups * size}),
        num_generations=size,
        max_completion_length=h.max_length,
        beta=0.0,
    )
    rows = [{"prompt": p} for p in groups]
    extra = {"reward_funcs": recorded_reward, "rollout_func": rollout}
    return Setup(GRPOTrainer, args, rows, extra)


def _completion_tokens(tok, prompt, completion, tools, head) -> tuple[list[int], list[int]]:
    """A recorded completion in token ids, and its mask: 1 for the model's own tokens,
    0 for the tool output between its steps (the environment's, not to be trained on)."""
    whole = render(tok, prompt + completion, tools)
    if not whole.startswith(head):
        raise ValueError("the template does not render the prompt as a prefix")
    if whole.endswith("\n"):
        whole = whole[:-1]
    ids: list[int] = []
    mask: list[int] = []
    start = len(head)
    for k, msg in enumerate(completion):
        if k + 1 == len(completion):
            end = len(whole)
        else:  # where message k ends: how far its partial rendering agrees with the whole
            nxt = completion[k + 1]["role"] == "assistant"  # its header goes with the tool
            part = render(tok, prompt + completion[: k + 1], tools, generation_prompt=nxt)
            end = _common_prefix(part, whole)
        if end <= start:
            continue
        piece = tok(whole[start:end], add_special_tokens=False)["input_ids"]
        ids += piece
        mask += [1 if msg["role"] == "assistant" else 0] * len(piece)
        start = end
    return ids, mask


def _common_prefix(a: str, b: str) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


def _need(records: list, data: Data) -> None:
    from coder.train.data import EmptyData

    if not records:
        left = ", ".join(f"{n} {why}" for why, n in data.skipped.items())
        raise EmptyData(f"nothing to train {data.method} on" + (f": {left}" if left else ""))


def dumps(obj: Any) -> str:
    return orjson.dumps(obj).decode()
