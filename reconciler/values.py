"""Pure: `Value`, the base of the typed values the stages hand up (the planner's reasons, the applier's outcomes).

A subclass is a frozen dataclass, as if decorated with `@dataclass(frozen=True)`: its own annotated fields come
after its bases' (type checkers know it through `dataclass_transform`). Only `present/` turns the values into words.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar, dataclass_transform


@dataclass_transform(frozen_default=True)
class Value:
    __dataclass_fields__: ClassVar[dict[str, dataclasses.Field[Any]]]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        dataclass(frozen=True)(cls)
