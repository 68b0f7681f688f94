"""Project awareness: what a workspace is made of and how it is built, tested, linted and
formatted, read from its files (pyproject.toml, package.json, Cargo.toml, go.mod,
Makefile, CMakeLists.txt, ...). Nothing is run.

`detect(workspace)` returns a `ProjectInfo`; the `project_info` tool and `/project` show
it (`summary`), and a later `/init` writing AGENTS.md reads the same fields. Files are
read through the Workspace, so a symlink out of it or a FIFO is never followed.
"""

from __future__ import annotations

import json
import re
import tomllib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from coder.tools.workspace import Workspace, WorkspaceError

MAX_MANIFEST = 1 << 20  # a manifest bigger than this is not read
MAX_WALK = 20_000  # files looked at when counting languages
MAX_LAYOUT = 40  # top-level entries listed

EXTENSIONS = {
    ".py": "Python", ".pyi": "Python", ".js": "JavaScript", ".mjs": "JavaScript",
    ".cjs": "JavaScript", ".jsx": "JavaScript", ".ts": "TypeScript", ".tsx": "TypeScript",
    ".rs": "Rust", ".go": "Go", ".c": "C", ".h": "C", ".cc": "C++", ".cpp": "C++",
    ".cxx": "C++", ".hpp": "C++", ".hh": "C++", ".java": "Java", ".kt": "Kotlin",
    ".rb": "Ruby", ".php": "PHP", ".cs": "C#", ".swift": "Swift", ".scala": "Scala",
    ".sh": "Shell", ".bash": "Shell", ".lua": "Lua", ".zig": "Zig", ".dart": "Dart",
    ".ex": "Elixir", ".exs": "Elixir", ".hs": "Haskell", ".ml": "OCaml", ".r": "R",
    ".jl": "Julia", ".vue": "Vue", ".svelte": "Svelte",
}  # fmt: skip


@dataclass(frozen=True)
class Command:
    """A command the project implies, and the file that implies it."""

    command: str
    source: str


@dataclass(frozen=True)
class BuildSystem:
    name: str  # e.g. "Python (pyproject.toml, hatchling)", "npm", "Cargo", "Make"
    file: str


@dataclass
class ProjectInfo:
    root: Path
    languages: list[tuple[str, int]] = field(default_factory=list)  # (language, files), most first
    build_systems: list[BuildSystem] = field(default_factory=list)
    test: list[Command] = field(default_factory=list)
    lint: list[Command] = field(default_factory=list)
    format: list[Command] = field(default_factory=list)
    layout: list[str] = field(default_factory=list)  # top-level entries, directories end in /
    notes: list[str] = field(default_factory=list)  # manifests that could not be read

    def add(self, kind: str, command: str, source: str) -> None:
        commands: list[Command] = getattr(self, kind)
        if all(c.command != command for c in commands):
            commands.append(Command(command, source))


def detect(ws: Workspace) -> ProjectInfo:
    """Everything `project_info` reports, for the workspace's root."""
    info = ProjectInfo(ws.root)
    info.layout = _layout(ws.root)
    names = {entry.rstrip("/") for entry in info.layout}
    _make(ws, info, names)  # the project's own entry points first
    _python(ws, info, names)
    _node(ws, info, names)
    _simple(ws, info, names)
    info.languages = languages(ws, ws.root)
    return info


def _read(ws: Workspace, name: str, info: ProjectInfo) -> str | None:
    try:
        return ws.read_bytes(name, limit=MAX_MANIFEST).decode("utf-8", errors="replace")
    except WorkspaceError as exc:
        info.notes.append(str(exc))
        return None


def _layout(root: Path) -> list[str]:
    try:
        entries = sorted(root.iterdir(), key=lambda p: p.name)
    except OSError:
        return []
    shown = [p for p in entries if not p.name.startswith(".") or p.name in (".github", ".coder")]
    dirs = [p.name + "/" for p in shown if p.is_dir() and not p.is_symlink()]
    files = [p.name for p in shown if not (p.is_dir() and not p.is_symlink())]
    out = dirs + files
    return out[:MAX_LAYOUT] + (
        [f"... {len(out) - MAX_LAYOUT} more"] if len(out) > MAX_LAYOUT else []
    )


def languages(ws: Workspace, start: Path) -> list[tuple[str, int]]:
    """(language, files) under `start` by file extension, most files first (the first
    MAX_WALK files; SKIP_DIRS such as node_modules and .venv are not entered)."""
    counts: Counter[str] = Counter()
    for n, rel in enumerate(ws.walk_files(start)):
        if n >= MAX_WALK:
            break
        lang = EXTENSIONS.get(Path(rel).suffix.lower())
        if lang:
            counts[lang] += 1
    return counts.most_common()


_MAKE_TARGET = re.compile(r"^([A-Za-z0-9][A-Za-z0-9_.-]*)\s*:(?!=)", re.M)
_MAKE_KINDS = {
    "test": ("test", "tests", "check"),
    "lint": ("lint",),
    "format": ("format", "fmt"),
}


def _make(ws: Workspace, info: ProjectInfo, names: set[str]) -> None:
    name = next((n for n in ("GNUmakefile", "Makefile", "makefile") if n in names), None)
    if name is None:
        return
    info.build_systems.append(BuildSystem("Make", name))
    text = _read(ws, name, info) or ""
    targets = set(_MAKE_TARGET.findall(text))
    for kind, wanted in _MAKE_KINDS.items():
        for target in wanted:
            if target in targets:
                info.add(kind, f"make {target}", name)
                break


def _python(ws: Workspace, info: ProjectInfo, names: set[str]) -> None:
    manifests = [n for n in ("pyproject.toml", "setup.cfg", "setup.py") if n in names]
    if not manifests:
        return
    source = manifests[0]
    used: set[str] = set()  # tool tables, setup.cfg sections and dependency names
    backend = ""
    if "pyproject.toml" in names:
        try:
            data = tomllib.loads(_read(ws, "pyproject.toml", info) or "")
        except tomllib.TOMLDecodeError as exc:
            info.notes.append(f"pyproject.toml: not valid TOML ({exc})")
            data = {}
        backend = str((data.get("build-system") or {}).get("build-backend") or "")
        backend = backend.split(".")[0].split(":")[0]
        used |= set(data.get("tool") or {})
        used |= _requirement_names(data)
    for name in ("setup.cfg", "setup.py"):
        text = _read(ws, name, info) if name in names else None
        if text:  # read, never run; a requirement or [section] naming a tool is enough
            used |= {m.lower() for m in re.findall(r"^\[(?:tool:)?([\w.-]+)\]", text, re.M)}
            used |= {
                m.lower() for m in re.findall(r"[\"'\s]([A-Za-z][\w.-]*)\s*[<>=~!;\"',\n]", text)
            }
    what = ", ".join([source, *([backend] if backend else [])])
    info.build_systems.append(BuildSystem(f"Python ({what})", source))
    if "pytest" in used or names & {"pytest.ini", "conftest.py", "tests", "test"}:
        info.add("test", "pytest", "pytest.ini" if "pytest.ini" in names else source)
    if "tox.ini" in names:
        info.add("test", "tox", "tox.ini")
    ruff_file = next((n for n in ("ruff.toml", ".ruff.toml") if n in names), None)
    if ruff_file or "ruff" in used:
        info.add("lint", "ruff check .", ruff_file or source)
        info.add("format", "ruff format .", ruff_file or source)
    if "flake8" in used or ".flake8" in names:
        info.add("lint", "flake8", ".flake8" if ".flake8" in names else source)
    if "mypy" in used or "mypy.ini" in names:
        info.add("lint", "mypy .", "mypy.ini" if "mypy.ini" in names else source)
    if "black" in used:
        info.add("format", "black .", source)
    if "isort" in used:
        info.add("format", "isort .", source)


def _requirement_names(data: dict) -> set[str]:
    """Distribution names in a pyproject's dependency lists (PEP 621, PEP 735, Poetry)."""
    project = data.get("project") or {}
    lists: list = [project.get("dependencies") or []]
    lists += list((project.get("optional-dependencies") or {}).values())
    lists += list((data.get("dependency-groups") or {}).values())
    poetry = (data.get("tool") or {}).get("poetry") or {}
    lists.append(list(poetry.get("dependencies") or {}))
    lists.append(list(poetry.get("dev-dependencies") or {}))
    for group in (poetry.get("group") or {}).values():
        lists.append(list((group or {}).get("dependencies") or {}))
    out = set()
    for items in lists:
        for item in items if isinstance(items, list) else []:
            if isinstance(item, str):
                m = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9_.-]*)", item)
                if m:
                    out.add(m.group(1).lower())
    return out


_LOCKS = (
    ("pnpm-lock.yaml", "pnpm"),
    ("yarn.lock", "yarn"),
    ("bun.lockb", "bun"),
    ("bun.lock", "bun"),
)


def _node(ws: Workspace, info: ProjectInfo, names: set[str]) -> None:
    if "package.json" not in names:
        return
    try:
        data = json.loads(_read(ws, "package.json", info) or "{}")
    except json.JSONDecodeError as exc:
        info.notes.append(f"package.json: not valid JSON ({exc})")
        data = {}
    data = data if isinstance(data, dict) else {}
    runner = next((tool for lock, tool in _LOCKS if lock in names), "npm")
    info.build_systems.append(BuildSystem(runner, "package.json"))
    scripts = data.get("scripts") if isinstance(data.get("scripts"), dict) else {}
    deps: set[str] = set()
    for key in ("dependencies", "devDependencies"):
        if isinstance(data.get(key), dict):
            deps |= set(data[key])
    run = "npm run" if runner == "npm" else runner
    if "test" in scripts:
        info.add("test", "npm test" if runner == "npm" else f"{runner} test", "package.json")
    for kind, wanted in _MAKE_KINDS.items():
        for script in (*wanted, f"{kind}:check"):
            if script in scripts and kind != "test":
                info.add(kind, f"{run} {script}", "package.json")
                break
    if "eslint" in deps:
        info.add("lint", "npx eslint .", "package.json")
    if "prettier" in deps:
        info.add("format", "npx prettier --write .", "package.json")
    if "typescript" in deps or "tsconfig.json" in names:
        info.add(
            "lint",
            "npx tsc --noEmit",
            "tsconfig.json" if "tsconfig.json" in names else "package.json",
        )
    for runner_name in ("vitest", "jest"):
        if runner_name in deps and "test" not in scripts:
            info.add("test", f"npx {runner_name}", "package.json")


_SIMPLE = (  # file, build system, (test, lint, format)
    ("Cargo.toml", "Cargo", ("cargo test", "cargo clippy", "cargo fmt")),
    ("go.mod", "Go modules", ("go test ./...", "go vet ./...", "gofmt -l -w .")),
    ("CMakeLists.txt", "CMake", ("ctest --test-dir build", None, None)),
    ("meson.build", "Meson", ("meson test -C build", None, None)),
    ("pom.xml", "Maven", ("mvn test", None, None)),
    ("build.gradle", "Gradle", ("./gradlew test", None, None)),
    ("build.gradle.kts", "Gradle", ("./gradlew test", None, None)),
    ("Gemfile", "Bundler", ("bundle exec rake test", "bundle exec rubocop", None)),
    ("composer.json", "Composer", ("composer test", None, None)),
    ("mix.exs", "Mix", ("mix test", "mix credo", "mix format")),
)


def _simple(ws: Workspace, info: ProjectInfo, names: set[str]) -> None:
    for file, system, commands in _SIMPLE:
        if file not in names:
            continue
        info.build_systems.append(BuildSystem(system, file))
        for kind, command in zip(("test", "lint", "format"), commands, strict=True):
            if command:
                info.add(kind, command, file)
        if file == "CMakeLists.txt":
            info.notes.append("CMake builds with: cmake -S . -B build && cmake --build build")
        golangci = names & {".golangci.yml", ".golangci.yaml"}
        if file == "go.mod" and golangci:
            info.add("lint", "golangci-lint run", golangci.pop())


def summary(info: ProjectInfo) -> str:
    """The report as plain text, one fact a line (what the model and /project show)."""

    def commands(kind: str) -> str:
        found: list[Command] = getattr(info, kind)
        return "; ".join(f"{c.command} ({c.source})" for c in found) or "none found"

    langs = ", ".join(f"{lang} ({n} files)" for lang, n in info.languages[:6]) or "none found"
    systems = ", ".join(b.name for b in info.build_systems) or "none found"
    lines = [
        f"languages: {langs}",
        f"build: {systems}",
        f"test: {commands('test')}",
        f"lint: {commands('lint')}",
        f"format: {commands('format')}",
        f"layout: {' '.join(info.layout) or '(empty)'}",
    ]
    lines += [f"note: {n}" for n in info.notes]
    return "\n".join(lines)
