"""Rollouts and eval: N verified attempts per task, logged as GRPO groups, and a report.

- tasks.py      task files (JSONL), checked whole before anything runs
- worktrees.py  a fresh git worktree per attempt; plain directories made repositories
- verify.py     verifier and setup commands: bounded, killed whole, graded rewards
- runner.py     attempts on W threads, each a logged session; resume from the logs
- progress.py   done / total, pass rate, tokens/s, ETA (rich on a terminal)
- report.py     pass@1, pass@k, means per task and overall, variants side by side
- command.py    `coder rollout` / `coder eval`: the server, the summary, the report
- flags.py      their command-line flags

See docs/rollouts.md.
"""
