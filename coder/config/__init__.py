"""Configuration: the keys (schema.py), where their values come from (load.py), and
reading or setting one key (keys.py). See load.py for the precedence."""

from coder.config.keys import as_dict, get_key, log_dir, set_config_text, set_key, yaml_inline
from coder.config.load import PROJECT_KEYS, load, project_config_path, user_config_path
from coder.config.schema import (
    AgentConfig,
    Config,
    ConfigError,
    LLMConfig,
    LoggingConfig,
    ReplConfig,
    Sampling,
    ServerConfig,
    ShellConfig,
    ToolsConfig,
)

__all__ = [
    "PROJECT_KEYS",
    "AgentConfig",
    "Config",
    "ConfigError",
    "LLMConfig",
    "LoggingConfig",
    "ReplConfig",
    "Sampling",
    "ServerConfig",
    "ShellConfig",
    "ToolsConfig",
    "as_dict",
    "get_key",
    "load",
    "log_dir",
    "project_config_path",
    "set_config_text",
    "set_key",
    "user_config_path",
    "yaml_inline",
]
