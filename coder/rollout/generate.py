"""Task families: many small repositories with a task each, the check that verifies it,
and the solution (the tool calls that solve it and the answer), so that a correct
trajectory can be logged for every task (`coder rollout --demonstrate`).

A family is a function of a seeded `random.Random` returning a `Generated`. Names, file
contents, values and the wording of the request vary with the seed, so a train split and
a held-out split drawn with different seeds share no task. The families are coder's own,
apart from examples/tasks (the eval set): they teach the same moves (read, then answer;
read, then edit; search, then answer) on other files, names and phrasings.

    coder generate-tasks DIR --count 60 --seed 1
"""

from __future__ import annotations

import random
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from coder.atomic import atomic_write

Call = dict  # {"name": tool, "arguments": {...}}
Step = list[Call] | str  # the calls of one reply, or the final answer

WORDS = [
    "apple",
    "amber",
    "arrow",
    "birch",
    "cedar",
    "cobalt",
    "delta",
    "ember",
    "falcon",
    "fern",
    "garnet",
    "harbor",
    "indigo",
    "juniper",
    "kestrel",
    "lantern",
    "maple",
    "meadow",
    "nimbus",
    "onyx",
    "orchid",
    "pebble",
    "quartz",
    "raven",
    "saffron",
    "spruce",
    "tundra",
    "umber",
    "velvet",
    "willow",
    "yarrow",
    "zephyr",
    "canyon",
    "glacier",
    "lumen",
    "orbit",
    "prism",
    "summit",
    "thistle",
    "copper",
    "violet",
]
VERBS = [
    "count",
    "parse",
    "load",
    "merge",
    "split",
    "scale",
    "clamp",
    "render",
    "format",
    "check",
    "build",
    "sort",
]
NOUNS = [
    "items",
    "words",
    "lines",
    "rows",
    "totals",
    "names",
    "scores",
    "values",
    "tokens",
    "records",
]


@dataclass
class Generated:
    id: str
    family: str
    prompt: str
    files: dict[str, str]
    check: dict  # what check.py verifies (see there)
    solution: list[Step]
    tools: list[str] = field(default_factory=list)  # the tools the solution uses


def _name(rng: random.Random, k: int = 2, sep: str = "_") -> str:
    return sep.join(rng.sample(WORDS, k))


def _func(rng: random.Random) -> str:
    return f"{rng.choice(VERBS)}_{rng.choice(NOUNS)}"


def _lines(rng: random.Random, n: int) -> list[str]:
    return [" ".join(rng.sample(WORDS, rng.randint(2, 5))).capitalize() for _ in range(n)]


def _call(name: str, **arguments: object) -> Call:
    return {"name": name, "arguments": arguments}


def _read_then_replace(path: str, old: str, new: str, answer: str) -> list[Step]:
    """The edit families' solution: read the file, replace one exact text, say so."""
    return [
        [_call("read_file", path=path)],
        [_call("replace_in_file", path=path, old_text=old, new_text=new)],
        answer,
    ]


def first_line(rng: random.Random) -> Generated:
    path = rng.choice(["notes.txt", "README.md", "TODO.md", "docs/intro.txt", "CHANGES.txt"])
    lines = _lines(rng, rng.randint(2, 6))
    if path.endswith(".md"):
        lines[0] = "# " + lines[0]
    prompt = rng.choice(
        [
            "What is the first line of {p}?",
            "Read {p} and tell me its first line.",
            "Tell me the first line of the file {p}.",
            "Which line comes first in {p}?",
        ]
    ).format(p=path)
    return Generated(
        id="",
        family="first_line",
        prompt=prompt,
        files={path: "\n".join(lines) + "\n"},
        check={"answer": [lines[0]]},
        solution=[[_call("read_file", path=path)], f"The first line of {path} is: {lines[0]}"],
    )


def create_file(rng: random.Random) -> Generated:
    path = rng.choice(["NOTES", "AUTHORS", "status.txt", "owner.txt", "RELEASE", "motd.txt"])
    text = rng.choice(
        [f"{rng.randint(0, 9)}.{rng.randint(0, 20)}.{rng.randint(0, 9)}", _lines(rng, 1)[0]]
    )
    prompt = rng.choice(
        [
            "Create a file named {p} that contains {t}",
            "Make a new file {p} with the text: {t}",
            "Write {t} into a new file called {p}.",
        ]
    ).format(p=path, t=text)
    return Generated(
        id="",
        family="create_file",
        prompt=prompt,
        files={},
        check={"equals": {path: text}},
        solution=[[_call("write_file", path=path, content=text + "\n")], f"Created {path}."],
    )


def set_value(rng: random.Random) -> Generated:
    path = rng.choice(["settings.ini", "app.cfg", "server.conf", "config/app.ini"])
    keys = rng.sample(["port", "workers", "timeout", "retries", "level", "size", "limit"], 4)
    values = {k: str(rng.randint(1, 99) * 10) for k in keys}
    key = rng.choice(keys)
    new = str(int(values[key]) + rng.randint(1, 9) * 10)
    before = "".join(f"{k} = {v}\n" for k, v in values.items())
    after = before.replace(f"{key} = {values[key]}\n", f"{key} = {new}\n")
    prompt = rng.choice(
        [
            "In {p}, change {k} from {o} to {n}.",
            "Set {k} to {n} in {p}.",
            "{p} has {k} = {o}; make it {n}.",
        ]
    ).format(p=path, k=key, o=values[key], n=new)
    return Generated(
        id="",
        family="set_value",
        prompt=prompt,
        files={path: before},
        check={"equals": {path: after}},
        solution=_read_then_replace(
            path, f"{key} = {values[key]}", f"{key} = {new}", f"{key} is now {new} in {path}."
        ),
    )


def append_line(rng: random.Random) -> Generated:
    path = rng.choice(["todo.txt", "shopping.txt", "names.txt", "ideas.md"])
    lines = _lines(rng, rng.randint(2, 4))
    new = _lines(rng, 1)[0].lower()
    prompt = rng.choice(
        [
            "Add a line '{x}' at the end of {p}.",
            "Append the line {x} to {p}.",
            "Put '{x}' as a new last line in {p}.",
        ]
    ).format(p=path, x=new)
    before = "\n".join(lines) + "\n"
    return Generated(
        id="",
        family="append_line",
        prompt=prompt,
        files={path: before},
        check={"equals": {path: before + new + "\n"}},
        solution=_read_then_replace(
            path, lines[-1], f"{lines[-1]}\n{new}", f"Added '{new}' at the end of {path}."
        ),
    )


_OPS = {"+": "sum", "-": "difference", "*": "product"}


def fix_operator(rng: random.Random) -> Generated:
    module = rng.choice(["mathops", "arith", "numbers", "calc2", "ops"])
    path = f"{module}.py"
    names = rng.sample(["add", "sub", "mul", "combine", "total", "scale"], 3)
    ops = rng.sample(list(_OPS), 3)
    bad = rng.randrange(3)
    wrong = rng.choice([o for o in _OPS if o != ops[bad]])
    args = [("a", "b"), ("x", "y"), ("m", "n")]
    rng.shuffle(args)

    def source(op_of: Callable[[int], str]) -> str:
        return "\n\n".join(
            f"def {n}({p}, {q}):\n    return {p} {op_of(i)} {q}\n"
            for i, (n, (p, q)) in enumerate(zip(names, args, strict=True))
        )

    before = source(lambda i: wrong if i == bad else ops[i])
    name, (p, q) = names[bad], args[bad]
    x, y = rng.randint(3, 9), rng.randint(1, 3)
    expect = eval(f"{x} {ops[bad]} {y}")  # noqa: S307 - two small ints and an operator
    got = eval(f"{x} {wrong} {y}")  # noqa: S307
    prompt = rng.choice(
        [
            "{f}({x}, {y}) in {p} returns {g} but should return {e}. Fix it.",
            "{f} in {p} should return the {d} of its arguments. Fix the bug.",
            "There is a bug in {f} in {p}: {f}({x}, {y}) must be {e}, not {g}. Fix {f}.",
        ]
    ).format(f=name, p=path, x=x, y=y, g=got, e=expect, d=_OPS[ops[bad]])
    return Generated(
        id="",
        family="fix_operator",
        prompt=prompt,
        files={path: before},
        check={"python": {"module": module, "asserts": [f"{name}({x}, {y}) == {expect}"]}},
        solution=_read_then_replace(
            path,
            f"return {p} {wrong} {q}",
            f"return {p} {ops[bad]} {q}",
            f"Fixed {name} in {path}: it now returns {p} {ops[bad]} {q}.",
        ),
    )


def find_definition(rng: random.Random) -> Generated:
    package = rng.choice(["lib", "src", "app", "pkg", "core"])
    modules = rng.sample(["io", "text", "shapes", "stats", "dates", "paths", "colors"], 3)
    funcs = rng.sample([f"{v}_{n}" for v in VERBS for n in NOUNS], 6)
    files = {}
    for i, m in enumerate(modules):
        files[f"{package}/{m}.py"] = (
            "".join(
                f"def {f}(value):\n    return value\n\n\n" for f in funcs[2 * i : 2 * i + 2]
            ).rstrip()
            + "\n"
        )
    target = rng.randrange(6)
    where = f"{package}/{modules[target // 2]}.py"
    func = funcs[target]
    prompt = rng.choice(
        [
            "Which file defines the function {f}? Answer with its path.",
            "Where is {f} defined? Give the file path.",
            "In which file is def {f} written?",
        ]
    ).format(f=func)
    return Generated(
        id="",
        family="find_definition",
        prompt=prompt,
        files=files,
        check={"answer": [where]},
        solution=[[_call("grep", pattern=f"def {func}")], f"{func} is defined in {where}."],
    )


def count_functions(rng: random.Random) -> Generated:
    path = rng.choice(["helpers.py", "utils.py", "tools/misc.py", "shared.py"])
    n = rng.randint(2, 5)
    funcs = rng.sample([f"{v}_{w}" for v in VERBS for w in NOUNS], n)
    source = "\n\n".join(f"def {f}(x):\n    return x\n" for f in funcs)
    prompt = rng.choice(
        [
            "How many functions does {p} define? Answer with the number.",
            "Count the functions defined in {p}.",
            "How many def statements are in {p}?",
        ]
    ).format(p=path)
    return Generated(
        id="",
        family="count_functions",
        prompt=prompt,
        files={path: source},
        check={"number": n},
        solution=[
            [_call("read_file", path=path)],
            f"{path} defines {n} functions: {', '.join(funcs)}.",
        ],
    )


def delete_line(rng: random.Random) -> Generated:
    path = rng.choice(["hosts.txt", "list.txt", "words.txt", "queue.md"])
    lines = _lines(rng, rng.randint(3, 5))
    gone = rng.randrange(len(lines))
    prompt = rng.choice(
        [
            "Remove the line '{x}' from {p}.",
            "Delete the line {x} in {p}.",
        ]
    ).format(p=path, x=lines[gone])
    after = [line for i, line in enumerate(lines) if i != gone]
    last = gone == len(lines) - 1
    old, new = (f"\n{lines[gone]}", "") if last else (f"{lines[gone]}\n", "")
    return Generated(
        id="",
        family="delete_line",
        prompt=prompt,
        files={path: "\n".join(lines) + "\n"},
        check={"equals": {path: "\n".join(after) + "\n"}},
        solution=_read_then_replace(path, old, new, f"Removed '{lines[gone]}' from {path}."),
    )


FAMILIES: dict[str, Callable[[random.Random], Generated]] = {
    f.__name__: f
    for f in (
        first_line,
        create_file,
        set_value,
        append_line,
        fix_operator,
        find_definition,
        count_functions,
        delete_line,
    )
}


def _filler(rng: random.Random) -> dict[str, str]:
    """A file or two that the task does not need, as a real project has."""
    name = _name(rng)
    files = {f"{name}.py": f'"""{name.replace("_", " ")}."""\n\nVALUE = {rng.randint(1, 99)}\n'}
    if rng.random() < 0.5:
        files["README.md"] = f"# {_name(rng, 1)}\n\n{_lines(rng, 1)[0]}.\n"
    return files


def generate(count: int, seed: int, families: list[str] | None = None) -> list[Generated]:
    """`count` tasks, the families taken in turn, each drawn from its own seeded stream.
    No two share a prompt (a demonstration is found by its prompt): a repeat is drawn again."""
    names = families or list(FAMILIES)
    out: list[Generated] = []
    prompts: set[str] = set()
    for i in range(count):
        family = names[i % len(names)]
        for again in range(100):
            rng = random.Random(f"{seed}/{i}/{family}" + (f"/{again}" if again else ""))
            task = FAMILIES[family](rng)
            if task.prompt not in prompts:
                break
        prompts.add(task.prompt)
        task.files = {**_filler(rng), **task.files}  # the task's own files win
        task.id = f"{family}-{seed}-{i}"
        task.tools = sorted(
            {c["name"] for step in task.solution if isinstance(step, list) for c in step}
        )
        out.append(task)
    return out


def write_task_set(out: Path, tasks: list[Generated]) -> Path:
    """DIR/tasks.jsonl, DIR/repos/<id>/..., DIR/checks/<id>.json and DIR/check.py; the
    verify command of each task runs check.py on its spec. Returns the task file."""
    out.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(Path(__file__).with_name("check.py"), out / "check.py")
    lines = []
    for t in tasks:
        repo = out / "repos" / t.id
        if repo.exists():
            shutil.rmtree(repo)
        for rel, text in t.files.items():
            (repo / rel).parent.mkdir(parents=True, exist_ok=True)
            (repo / rel).write_text(text)
        atomic_write(
            out / "checks" / f"{t.id}.json", orjson.dumps(t.check, option=orjson.OPT_INDENT_2)
        )
        lines.append(
            orjson.dumps(
                {
                    "id": t.id,
                    "prompt": t.prompt,
                    "repo": f"repos/{t.id}",
                    "verify": f'python3 "$CODER_TASK_DIR/check.py" {t.id}',
                    "solution": t.solution,
                }
            )
        )
    path = out / "tasks.jsonl"
    atomic_write(path, b"\n".join(lines) + b"\n")
    return path
