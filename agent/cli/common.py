"""What every command needs: its settings (with logging and tracing set up) and datasets.

Command modules import this, never ``agent.cli.app`` (the root imports them).
"""

from __future__ import annotations

from pathlib import Path

from core.errors import UserError
from core.settings import Settings, load_settings

EMBEDDED_DATASETS = Path(__file__).resolve().parents[2] / "data" / "recorded"


def settings(*, quiet: bool = False) -> Settings:
    """The validated settings (``core.settings.load_settings``), logging configured from them
    and the redacting tracing installed (a no-op unless LangSmith tracing is on).

    ``quiet``: INFO becomes WARNING, for commands whose output is the point (a per-decision
    INFO line for thousands of decisions would bury it); ``LOG_LEVEL=DEBUG`` still shows all.
    """
    from agent.tracing import install_redacting_tracing
    from core.logs import configure

    loaded = load_settings()
    level = "WARNING" if quiet and loaded.log_level == "INFO" else loaded.log_level
    configure(level, loaded.log_json)
    install_redacting_tracing(settings=loaded)
    return loaded


def resolve_dataset(name_or_dir: str) -> Path:
    """A dataset directory, or the name of one embedded under data/recorded."""
    path = Path(name_or_dir)
    if path.is_dir():
        return path
    embedded = EMBEDDED_DATASETS / name_or_dir
    if embedded.is_dir():
        return embedded
    raise UserError(f"dataset not found: {name_or_dir} (no such directory, and no embedded "
                    f"dataset of that name in {EMBEDDED_DATASETS})")
