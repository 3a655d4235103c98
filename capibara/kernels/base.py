"""What every kernel family shares: the variant record and the refusal error.

A plan's kernel spec names a family, an implementation and static parameters
(tile sizes, chunk lengths); the runtime looks the implementation up in the
family's ``VARIANTS`` and binds the static parameters with ``functools.partial``
before ``jax.jit``. A variant that cannot handle an input raises
:class:`Unsupported` (a ``NotImplementedError``) saying why, and the loader
falls back to the family's ``reference`` variant or refuses, as the plan says.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

__all__ = ["Unsupported", "Variant", "lookup", "EVERYWHERE"]

#: The platforms of a variant written in plain JAX, which XLA compiles for each.
EVERYWHERE = ("cpu", "gpu", "tpu")


class Unsupported(NotImplementedError):
    """This variant cannot compute this input (shape, dtype, platform); the message says why."""


@dataclass(frozen=True)
class Variant:
    """One implementation of a kernel family.

    ``fn`` is a pure function (jit-, vmap- and grad-compatible) taking the
    family's array arguments first and the static parameters as keyword
    arguments. ``platforms`` are the JAX platforms it runs on (``"cpu"``,
    ``"gpu"``, ``"tpu"``); ``defaults`` are its static parameters' default
    values, so ``fn(*arrays, **defaults)`` always works where it applies.
    """

    family: str
    name: str
    fn: Callable[..., Any]
    platforms: tuple[str, ...]
    defaults: Mapping[str, Any] = field(default_factory=dict)
    doc: str = ""

    def __call__(self, *args: Any, **static: Any) -> Any:
        return self.fn(*args, **{**self.defaults, **static})


def lookup(variants: Mapping[str, Variant], function: str, implementation: str) -> Variant:
    """The variant named ``implementation``, or a ``ValueError`` naming ``function``'s choices."""
    try:
        return variants[implementation]
    except KeyError:
        raise ValueError(f"unknown {function} implementation {implementation!r}; "
                         f"expected one of {sorted(variants)}") from None
