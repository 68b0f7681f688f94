"""Interactive REPL: prompt-toolkit input, rich output, slash commands.

`app` runs the prompt and the turns, `commands` holds the slash commands (one
`cmd_<name>` method each), `input` the history file and Tab completion, `state`
what the REPL keeps besides the conversation.
"""

from coder.repl.app import Repl, main
from coder.repl.commands import Commands
from coder.repl.input import ReplCompleter, open_history
from coder.repl.state import ReplState, Stats

__all__ = ["Commands", "Repl", "ReplCompleter", "ReplState", "Stats", "main", "open_history"]
