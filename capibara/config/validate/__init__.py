"""Cross-field rules and the seed's ``ConfigValidator``.

Single values are checked when a config is built; this module checks how
fields combine.  Every rule is one small function in :data:`RULES`, in the
module of its section, registered with its number, its diagnostic code, its severity and the fields
it reads.  A rule yields :class:`Finding` values (a message about named
fields); this module turns each into a diagnostic whose primary span is the
first field that came from text (a file, ``--set`` or an environment
variable), with labels on the others, so one function owns the step from
field names to places.

Two kinds of rules:

- *config* rules (``V`` codes) need only the config.  A few of them are about
  the device (``scope="device"``): they use the config's ``device`` when it is
  explicit and, in the hardware check, the device actually resolved on a
  target.
- *hardware* rules (``H`` codes) compare the config
  with a :class:`capibara.targets.Target`: device count, memory, what is
  present.  Only :func:`check_hardware_compatibility` runs them.

The pure API pair (Fiddle's ``get_*_errors`` / ``check_*``)::

    diagnostics = get_validation_errors(config)   # everything, errors and warnings
    check_config(config)                          # raises ConfigError once if any error

and the seed's front door::

    result = ConfigValidator().validate_full_config(config)
    result.is_valid, result.errors, result.warnings
    check = ConfigValidator().check_hardware_compatibility(config, "tpu_v4-32")
    check.compatible, check.recommendations, check.detected_device

Two rules are enforced where the data is (runtime updates, ``S501``, and
alias conflicts, ``S301``): ``ModularModelConfig.update_runtime_settings`` and the TOML/env decoder
(:data:`ENFORCED_ELSEWHERE`).
"""

# Importing the rule modules registers their rules in RULES.
from capibara.config.validate import (architecture, deployment, enterprise, hardware,  # noqa: F401
                                       parallelism, sparsity, training, vq)
from capibara.config.validate.engine import Finding, Rule, RULES, ENFORCED_ELSEWHERE, RuleContext
from capibara.config.validate.parallelism import suggest_mesh
from capibara.config.validate.hardware import resolve_device
from capibara.config.validate.report import FieldDiagnostic, get_validation_errors, check_config
from capibara.config.validate.front import ValidationResult, HardwareCheck, ConfigValidator, check_hardware_compatibility

__all__ = ["Finding", "Rule", "RULES", "ENFORCED_ELSEWHERE", "RuleContext", "FieldDiagnostic", "get_validation_errors", "check_config", "ValidationResult", "HardwareCheck", "ConfigValidator", "check_hardware_compatibility", "resolve_device", "suggest_mesh"]
