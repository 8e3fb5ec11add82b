"""Files only their owner may read: the store, generated keys and the folder that holds them."""
from __future__ import annotations

import os
from pathlib import Path


def private_directory(path: Path) -> None:
    """Create ``path`` (and parents) with mode 0700; an existing folder is left as the operator made it."""
    if not path.exists():
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(path, 0o700)  # mkdir's mode is masked by the umask


def create_private_file(path: Path) -> None:
    """Create an empty file with mode 0600 in a private folder, unless it exists."""
    private_directory(path.parent)
    if not path.exists():
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
