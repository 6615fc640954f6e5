"""Result of a queue declaration."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class QueueDeclarationResult:
    """`queue`: the queue's name (the broker's choice for an unnamed queue); `messageCount`,
    `consumerCount`: as reported by the broker."""

    queue: str
    messageCount: int
    consumerCount: int
