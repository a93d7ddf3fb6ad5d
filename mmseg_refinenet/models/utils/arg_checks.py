"""Checks of constructor arguments, shared by every model of the package.

Each function raises a ``ValueError`` that names the module, the argument,
what it must be and the value it got, e.g. ``FRRU: scale must be a positive
integer, got 0``, so that a bad config fails when the model is built, not
in the middle of a forward pass with a message that names no config field.
They cost nothing at run time: they look at Python values, never at
tensors. What can only be checked once data arrives (feature widths,
image sizes, labels, NaN) is in :mod:`.checks`.

``owner`` is the name of the module that checks (``'RefineNetHead'``),
``name`` the argument as the user wrote it (``'in_channels[2]'``).
Booleans are refused where an integer is expected (``True`` is an ``int``
in Python).
"""
from typing import Any, Sequence


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_positive_int(owner: str, name: str, value: Any,
                       hint: str = '') -> int:
    """Return ``value`` if it is an integer >= 1, else raise ValueError.

    ``hint``, if given, ends the message (e.g. how to drop the part).
    """
    if not _is_int(value) or value < 1:
        raise ValueError(
            f'{owner}: {name} must be a positive integer, got {value!r}'
            + (f'; {hint}' if hint else ''))
    return value


def check_non_negative_int(owner: str, name: str, value: Any) -> int:
    """Return ``value`` if it is an integer >= 0, else raise ValueError."""
    if not _is_int(value) or value < 0:
        raise ValueError(
            f'{owner}: {name} must be an integer >= 0, got {value!r}')
    return value


def check_channels(owner: str, name: str, value: Any) -> int:
    """Return ``value`` if it is a valid number of channels (>= 1)."""
    if not _is_int(value) or value < 1:
        raise ValueError(
            f'{owner}: {name} must be a positive integer number of '
            f'channels, got {value!r}')
    return value


def check_odd_kernel_size(owner: str, name: str, value: Any) -> int:
    """Return ``value`` if it is a positive odd integer.

    An odd kernel ``k`` with padding ``k // 2`` and stride 1 keeps the
    spatial size, which every residual and fusion block relies on.
    """
    if not _is_int(value) or value < 1 or value % 2 == 0:
        raise ValueError(
            f'{owner}: {name} must be a positive odd integer (1, 3, 5, ...) '
            f'so that the output keeps the input size, got {value!r}')
    return value


def check_one_of(owner: str, name: str, value: Any,
                 choices: Sequence[Any]) -> Any:
    """Return ``value`` if it is one of ``choices``, else raise ValueError.
    """
    if value not in tuple(choices):
        raise ValueError(
            f'{owner}: {name} must be one of {tuple(choices)}, got '
            f'{value!r}')
    return value
