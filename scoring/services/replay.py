"""Decision replay: recompute a stored score from its model version, its stored input
and the policy version it was decided under (not today's): a decline made before a
cutoff change replays as that decline. A score from before policies were versioned
names none and is replayed under the policy in force, which the replay says."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from scoring.models import ModelVersion, Score
from scoring.services.datasets import PortfolioData, static_frame
from scoring.services.policy import Policy, policy_in_force, policy_of
from scoring.services.scoring import decide_rows, history_from_bytes, input_hash


@dataclass
class Replay:
    score: Score
    pd: float
    points: float
    decision: str
    reasons: list[dict]
    input_hash_ok: bool
    policy: Policy | None = None

    @property
    def policy_note(self) -> str:
        """Which policy the replay applied, in words."""
        if self.policy is None or self.policy.id is None or self.score.policy_version_id is None:
            return "under the policy in force now (the score predates versioned policies)"
        return f"under policy v{self.policy.version} (id {self.policy.id}), the one it was decided under"

    @property
    def identical(self) -> bool:
        return (
            self.input_hash_ok
            and self.pd == self.score.pd
            and self.points == self.score.score
            and self.decision == self.score.decision
            and self.reasons == self.score.reasons
        )

    def differences(self) -> dict:
        return {
            "pd": self.pd - self.score.pd,
            "score": self.points - self.score.score,
            "decision": (self.score.decision, self.decision) if self.decision != self.score.decision else None,
            "reasons_equal": self.reasons == self.score.reasons,
            "input_hash_ok": self.input_hash_ok,
        }


def replay_many(scores: list[Score]) -> list[Replay]:
    """Replay scores of one model version together (one explainer pass per policy version)."""
    if not scores:
        return []
    version: ModelVersion = scores[0].model_version
    assert all(s.model_version_id == version.pk for s in scores)
    by_policy: dict[int | None, list[int]] = {}
    for i, s in enumerate(scores):
        by_policy.setdefault(s.policy_version_id, []).append(i)
    out: list[Replay | None] = [None] * len(scores)
    for policy_id, index in by_policy.items():
        policy = policy_of(policy_id) if policy_id is not None else policy_in_force(version.portfolio)
        for i, replay in zip(index, _replay_group([scores[i] for i in index], version, policy), strict=True):
            out[i] = replay
    return [r for r in out if r is not None]


def _replay_group(scores: list[Score], version: ModelVersion, policy: Policy) -> list[Replay]:
    data = PortfolioData(
        applicant_ids=np.array([s.applicant_id or 0 for s in scores], dtype=np.int64),
        external_ids=[str(s.applicant_id) for s in scores],
        static=static_frame(version.schema, [s.input_features for s in scores]),
        features=[s.input_features for s in scores],
    )
    if version.family.needs_history:
        first = scores[0].input_history
        if first is None:
            raise ValueError(f"score {scores[0].pk} of a CNN has no stored history")
        months = len(np.frombuffer(bytes(first), dtype=np.float32)) // 3
        arrays = [history_from_bytes(s.input_history, months) for s in scores]
        data.history = np.concatenate([a[0] for a in arrays])
        data.history_mask = np.concatenate([a[1] for a in arrays])
    _, rows = decide_rows(version=version, data=data, policy=policy)
    out = []
    for stored, row in zip(scores, rows, strict=True):
        history = bytes(stored.input_history) if stored.input_history is not None else None
        ok = input_hash(version.pk, stored.input_features, history) == stored.input_hash
        out.append(Replay(stored, row.pd, row.score, row.decision, row.reasons, ok, policy))
    return out
