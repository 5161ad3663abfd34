"""Project exceptions: each carries one sentence a user can act on.

The CLI prints the message and exits non-zero; the explorer shows it in its status bar.
"""


class SGXLError(Exception):
    """Base class of every error this project raises on purpose."""


class CheckpointError(SGXLError):
    """A checkpoint is missing, corrupt, unsafe or does not match the expected architecture."""


class DatasetError(SGXLError):
    """A dataset cannot be read or converted."""


class UserInputError(SGXLError):
    """A command-line argument or a GUI value is invalid."""


class DiskFullError(SGXLError):
    """A write ran out of disk space (or quota, or the file-size limit); nothing half-written was kept."""
