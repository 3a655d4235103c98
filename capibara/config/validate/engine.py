"""The rule engine: findings, rules and their registry, and the helpers rule messages share."""

from __future__ import annotations

from typing import Any, Callable, Iterable, Mapping, Sequence

import msgspec

from capibara.config.decode import ALIAS_CONFLICT
from capibara.config.fieldtypes import format_value, join_words
from capibara.config.values import NOT_RUNTIME_MUTABLE
from capibara.diagnostics import Severity

ERROR, WARNING = Severity.ERROR, Severity.WARNING

#: The documented architecture tiers; advisory (tiny test models and migrated shapes fall outside).
DOCUMENTED_HIDDEN = (512, 768, 1024, 2048)
DOCUMENTED_LAYERS = (6, 12, 24, 36)
DOCUMENTED_HEADS = (8, 12, 16, 32)
#: Head dimensions that fill the matrix units (multiples of 128 fill a TPU MXU pass).
EFFICIENT_HEAD_DIMS = (64, 128)

TPU_DEVICES = ("tpu_v4", "tpu_v6")

#: Rules enforced outside the validator: rule number → (where, code).
ENFORCED_ELSEWHERE: dict[int, tuple[str, str]] = {
    57: ("ModularModelConfig.update_runtime_settings", NOT_RUNTIME_MUTABLE),
    58: ("the TOML and environment decoder (alias spellings)", ALIAS_CONFLICT),
}




class Finding(msgspec.Struct, frozen=True):
    """What a rule found: a message about ``fields`` (the most specific first).

    ``labels`` gives the text beside each field's span; ``severity`` overrides
    the rule's own for rules with an error part and a warning part.
    """

    message: str
    fields: tuple[str, ...]
    labels: Mapping[str, str] = msgspec.field(default_factory=dict)
    help: str | None = None
    notes: tuple[str, ...] = ()
    severity: Severity | None = None


class RuleContext:
    """What a rule may look at.

    ``device`` is the device the rules may assume: the config's explicit
    ``device``, or the one resolved on ``target`` in the hardware check;
    ``None`` when unknown (``"auto"`` without a target).  ``mode`` is
    ``"train"``, ``"inference"`` or ``None`` (not known: the training-only rule stays silent).
    """

    __slots__ = ("config", "device", "target", "mode", "explicit_fields")

    def __init__(self, config: Any, device: str | None = None, target: Any = None,
                 mode: str | None = None) -> None:
        self.config = config
        self.device = device
        self.target = target
        self.mode = mode
        #: ``config.explicit_fields``, computed once for all the rules
        self.explicit_fields: frozenset[str] = config.explicit_fields

    def __repr__(self) -> str:
        return (f"RuleContext(config={self.config!r}, device={self.device!r}, "
                f"target={self.target!r}, mode={self.mode!r})")

    def __getattr__(self, name: str) -> Any:
        # ctx.hidden_size reads the config: the rules read like the conditions they check.
        return getattr(self.config, name)

    def explicit(self, name: str) -> bool:
        return name in self.explicit_fields


Check = Callable[[RuleContext], Iterable[Finding]]


class Rule(msgspec.Struct, frozen=True):
    """One rule: ``number`` orders the registry, ``fields`` are what it reads."""

    number: int
    code: str
    severity: Severity
    fields: tuple[str, ...]
    check: Check
    scope: str = "config"  # "config" | "device" | "hardware"
    doc: str = ""

    @property
    def severities(self) -> frozenset[Severity]:
        """Severities its findings may have: its own, plus warning for mixed rules."""
        return frozenset({self.severity, WARNING})


RULES: dict[int, Rule] = {}


def rule(number: int, code: str, severity: Severity, fields: Sequence[str], *,
         scope: str = "config") -> Callable[[Check], Check]:
    """Register a rule function under its C-number (each number once)."""

    def register(check: Check) -> Check:
        if number in RULES:
            raise AssertionError(f"C{number} is registered twice")
        RULES[number] = Rule(number, code, severity, tuple(fields), check, scope,
                             (check.__doc__ or "").strip().split("\n")[0])
        return check

    return register




def field_path(name: str) -> str:
    """The field's canonical dotted path, as a file or ``--set`` spells it."""
    from capibara.config.fields import FIELD_BY_NAME

    return FIELD_BY_NAME[name].path


def default_of(name: str) -> Any:
    from capibara.config.fields import FIELD_BY_NAME

    return FIELD_BY_NAME[name].default


def assignment_text(name: str, value: Any) -> str:
    """```model.num_heads = 16```: what to write to set a field."""
    return f"`{field_path(name)} = {format_value(value)}`"


def field_names(names: Sequence[str]) -> str:
    return join_words([f"`{n}`" for n in names])


def verb_are(names: Sequence[str]) -> str:
    return "is" if len(names) == 1 else "are"


def fields_in(section: str, *, excluding: Sequence[str] = ()) -> tuple[str, ...]:
    from capibara.config.fields import FIELDS

    return tuple(f.name for f in FIELDS if f.section == section and f.name not in excluding)
