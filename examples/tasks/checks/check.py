"""Hidden checks for the example tasks: `python3 check.py NAME`, run in the attempt's
worktree. They live outside the task repos, so an attempt cannot edit its own grader.
Exit 0 passes; a failure says what it found."""

import importlib
import os
import subprocess
import sys
from pathlib import Path


def load(module):
    sys.path.insert(0, os.getcwd())
    return importlib.import_module(module)


def answer():
    path = os.environ.get("CODER_ANSWER_FILE")
    return Path(path).read_text() if path else ""


def fix_add():
    calc = load("calc")
    assert calc.add(2, 3) == 5 and calc.add(-1, 1) == 0, "add() still wrong"
    assert calc.mul(4, 5) == 20, "mul() broken"


def add_subtract():
    calc = load("calc")
    assert calc.subtract(7, 2) == 5 and calc.subtract(0, 3) == -3, "subtract() wrong"


def version_file():
    assert Path("VERSION").read_text().strip() == "1.0.0", "VERSION does not hold 1.0.0"


def rename_count_words():
    words = load("textutils.words")
    assert not hasattr(words, "count_words"), "count_words is still defined"
    assert words.word_count("a b c") == 3, "word_count() missing or wrong"
    out = subprocess.run([sys.executable, "main.py", "Hi", "there"], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.split()[0] == "2", f"main.py broken: {out.stderr}"


def fix_slugify():
    words = load("textutils.words")
    assert words.slugify("Hello World") == "hello-world", "slugify('Hello World')"
    assert words.slugify("A  b") == "a-b", "slugify('A  b')"


def find_slugify():
    assert "textutils/words.py" in answer(), (
        f"answer does not name textutils/words.py: {answer()!r}"
    )


def count_functions():
    assert "2" in answer().split() or answer().strip().rstrip(".") == "2", f"answer: {answer()!r}"


def gitignore_pycache():
    lines = Path(".gitignore").read_text().split()
    assert any(x.strip("/") == "__pycache__" for x in lines), ".gitignore lacks __pycache__/"


def readme_first_line():
    assert "Field notes" in answer(), f"answer: {answer()!r}"


def port_9000():
    text = Path("config.ini").read_text()
    assert "port = 9000" in text.replace("port=", "port = "), "port is not 9000"
    assert "host = 127.0.0.1" in text, "host line lost"


def todo_append():
    lines = [x.strip() for x in Path("todo.txt").read_text().splitlines() if x.strip()]
    assert lines[:2] == ["water the roses", "buy seeds"], "old items changed"
    assert lines[-1] == "write tests", f"last line is {lines[-1]!r}"


def hello_script():
    out = subprocess.run([sys.executable, "hello.py"], capture_output=True, text=True)
    assert out.stdout.strip() == "Hello, world!", f"hello.py printed {out.stdout!r}"


if __name__ == "__main__":
    try:
        globals()[sys.argv[1]]()
    except (AssertionError, OSError, ImportError, AttributeError, IndexError) as exc:
        sys.exit(f"FAIL {sys.argv[1]}: {type(exc).__name__}: {exc}")
    print(f"ok {sys.argv[1]}")
