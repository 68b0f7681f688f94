"""The training log: a leaf that writes what it is given and reads it back.

- writer.py    the bounded, non-blocking JSONL writer thread (Logger)
- files.py     log file names, write order, which files to read (log_files)
- recorder.py  the Recorder the agent loop calls (message ids, blobs, tokens)
- schema.py    the v1 encoding both sides share (ranges, hashes, packed logprobs)
- reader.py    the streaming reader that rebuilds every request (read_sessions)

See docs/log-format.md.
"""

from coder.log.files import NoLogs, list_log_files, log_file_name, log_files
from coder.log.reader import ModelCall, ReadStats, SessionLog, iter_records, read_sessions
from coder.log.recorder import Recorder
from coder.log.schema import (
    SCHEMA_VERSION,
    canonical,
    compact_logprobs,
    content_hash,
    decode_logprobs,
    decode_prompt_ids,
    encode_prompt_ids,
    from_ranges,
    to_ranges,
)
from coder.log.writer import Logger
from coder.redact import REDACTED, scrub  # coder/redact.py: config and server use it too

__all__ = [
    "REDACTED",
    "SCHEMA_VERSION",
    "Logger",
    "ModelCall",
    "NoLogs",
    "ReadStats",
    "Recorder",
    "SessionLog",
    "canonical",
    "compact_logprobs",
    "content_hash",
    "decode_logprobs",
    "decode_prompt_ids",
    "encode_prompt_ids",
    "from_ranges",
    "iter_records",
    "list_log_files",
    "log_file_name",
    "log_files",
    "read_sessions",
    "scrub",
    "to_ranges",
]
