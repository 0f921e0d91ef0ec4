"""``--ray-place``: which cluster node a live stream runs on.

A rule is ``MATCH=KIND:WHAT``; the first rule whose MATCH is ``*`` or a substring of the
source (as typed) applies, and sources no rule matches are spread over the cluster:

* ``label:KEY=VALUE``: only on nodes started with ``ray start --labels KEY=VALUE`` (a camera
  analysed at its site, say ``--ray-place 10.1.=label:site=plant-a``); the stream waits while no
  such node is up.
* ``prefer:KEY=VALUE``: on such a node while one has room, elsewhere otherwise, which is also
  where the stream is restarted when its node is lost.
* ``resource:NAME[:AMOUNT]``: on nodes offering the custom resource NAME (``ray start
  --resources '{"NAME": 4}'``), reserving AMOUNT of it (default 1): a node then takes as many
  streams as it has units.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

from dfstream.errors import UsageError

_RULE = re.compile(r"^(?P<match>.+?)=(?P<kind>label|prefer|resource):(?P<what>.+)$")
PlaceKind = Literal["label", "prefer", "resource"]


@dataclass(frozen=True)
class PlaceRule:
    """One ``--ray-place`` rule (see the module docstring)."""

    match: str
    kind: PlaceKind
    key: str
    value: str = ""
    amount: float = 1.0

    def matches(self, source: str) -> bool:
        """True when this rule applies to ``source``."""
        return self.match == "*" or self.match in source

    def describe(self) -> str:
        """The rule's constraint in a few words, for messages."""
        if self.kind == "resource":
            return f"resource {self.key}"
        return f"{'label' if self.kind == 'label' else 'preferred label'} {self.key}={self.value}"

    def options(self) -> dict[str, Any]:
        """The Ray actor options that implement the rule."""
        if self.kind == "resource":
            return {"resources": {self.key: self.amount}}
        from ray.util.scheduling_strategies import In, NodeLabelSchedulingStrategy

        expression: dict[str, Any] = {self.key: In(self.value)}
        if self.kind == "label":
            return {"scheduling_strategy": NodeLabelSchedulingStrategy(hard=expression)}
        return {"scheduling_strategy": NodeLabelSchedulingStrategy(hard={}, soft=expression)}


def parse_rule(text: str) -> PlaceRule:
    """Parse ``MATCH=KIND:WHAT``; a malformed rule is a ``UsageError``."""
    found = _RULE.match(text.strip())
    usage = (
        f"--ray-place {text}: expected MATCH=label:KEY=VALUE, MATCH=prefer:KEY=VALUE or "
        "MATCH=resource:NAME[:AMOUNT] (MATCH: * or part of the source)"
    )
    if found is None:
        raise UsageError(usage)
    match, kind, what = found["match"], found["kind"], found["what"]
    if kind == "resource":
        name, _, amount = what.partition(":")
        try:
            value = float(amount) if amount else 1.0
        except ValueError:
            value = 0.0
        if not name or not value > 0:
            raise UsageError(usage)
        return PlaceRule(match, "resource", name, amount=value)
    key, sep, value_text = what.partition("=")
    if not sep or not key or not value_text:
        raise UsageError(usage)
    return PlaceRule(match, kind, key, value_text)  # type: ignore[arg-type]


def placement_for(source: str, rules: tuple[PlaceRule, ...]) -> PlaceRule | None:
    """The first rule that applies to ``source`` (None: spread over the cluster)."""
    return next((rule for rule in rules if rule.matches(source)), None)
