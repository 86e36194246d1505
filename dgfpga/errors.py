"""Exceptions shared across dgfpga (torch-free)."""


class DgfpgaError(Exception):
    """Base class: a clear, user-facing message naming what is wrong and what to do."""


class CheckpointError(DgfpgaError):
    """A checkpoint file is unreadable, not a checkpoint, or does not match the architecture."""


class FormatError(DgfpgaError):
    """A packed structure (work list, descriptor, bundle, quantized model) is malformed."""


class ConfigError(DgfpgaError):
    """An engine configuration is invalid or does not fit the target."""
