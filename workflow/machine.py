"""Transition tables declared as data, and the checks every use case runs against them."""

from __future__ import annotations

from dataclasses import dataclass, field

from workflow.errors import Conflict


@dataclass(frozen=True)
class Transition:
    """One allowed action: from which states, to which state, and who may take it.

    `sources` empty means the action creates the record (there is no state before it). The fields after
    `member_roles` are optional so small tables (onboarding) stay one line per transition.
    """

    action: str
    label: str  # Chinese, shown to users
    sources: tuple[str, ...]
    target: str
    party: str  # which side acts: enterprise / supplier / core / funder / platform / system / signatories
    member_roles: tuple[str, ...] = ()  # member roles inside the acting enterprise that may act
    # States the action may leave the record in before its goal is met (approve below quorum stays
    # "claimed"; sign before the last party goes to "signing").
    interim: tuple[str, ...] = ()
    guards: tuple[str, ...] = ()  # names of the extra checks the use case runs (documented with the table)
    body: str | None = None  # name of the request body model, None when the action takes no input
    # True when nobody is waiting for this action (withdraw, reject, decline): it never shows up as a to-do.
    optional: bool = False

    @property
    def creates(self) -> bool:
        """True when the action creates the record rather than moving it."""
        return not self.sources

    @property
    def targets(self) -> tuple[str, ...]:
        """Every state the action can end in: the goal first, then the interim states."""
        return (self.target, *(s for s in self.interim if s != self.target))


@dataclass
class Machine:
    """A named set of states and the transitions between them."""

    name: str
    state_labels: dict[str, str]  # state → Chinese label
    transitions: list[Transition] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._by_action = {t.action: t for t in self.transitions}
        if len(self._by_action) != len(self.transitions):
            raise ValueError(f"{self.name} declares an action twice")
        for t in self.transitions:
            unknown = {*t.sources, *t.targets} - set(self.state_labels)
            if unknown:
                raise ValueError(f"{self.name}.{t.action} names unknown states {sorted(unknown)}")

    @property
    def actions(self) -> list[str]:
        """Every action name, in declaration order."""
        return [t.action for t in self.transitions]

    @property
    def terminal_states(self) -> list[str]:
        """States no transition leaves."""
        left = {s for t in self.transitions for s in t.sources}
        return [s for s in self.state_labels if s not in left]

    def transition(self, action: str) -> Transition:
        """The declared transition for an action (KeyError if none)."""
        return self._by_action[action]

    def allowed_from(self, state: str) -> list[Transition]:
        """Every transition that may start in `state`."""
        return [t for t in self.transitions if state in t.sources]

    def check(self, action: str, state: str) -> Transition:
        """The transition, or a 409 naming the current state and what is allowed next."""
        t = self.transition(action)
        if state not in t.sources:
            nexts = "、".join(x.label for x in self.allowed_from(state)) or "无"
            raise Conflict(
                f"当前状态为“{self.state_labels[state]}”，不能{t.label}；当前可进行的操作：{nexts}",
                code="invalid_state",
                details={"state": state, "allowed": [x.action for x in self.allowed_from(state)]},
            )
        return t

    def markdown(self) -> str:
        """The table as Markdown (docs are generated from the declaration)."""
        rows = ["| 操作 | action | 从 | 到 | 执行方 | 成员角色 |", "|---|---|---|---|---|---|"]
        for t in self.transitions:
            src = ", ".join(t.sources) or "（新建）"
            dst = " / ".join(t.targets)
            rows.append(f"| {t.label} | `{t.action}` | {src} | {dst} | {t.party} | {', '.join(t.member_roles) or '—'} |")
        return "\n".join(rows)
