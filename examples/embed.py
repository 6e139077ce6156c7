"""Embedding policydsl: ask "may I call this account now?" from Python.

Run from the repository root: python examples/embed.py
"""

import datetime as dt
from pathlib import Path

from policydsl import Contact, load_policy

policy = load_policy(Path(__file__).parent.parent / "policies" / "ecommerce_consumer_loan.policy")
now = dt.datetime(2025, 6, 4, 2, 0, tzinfo=dt.UTC)  # 10:00 in Shanghai; never the clock
account = {"id": "A1", "days_past_due": 45, "balance": "820.00", "timezone": "Asia/Shanghai"}
history = [Contact("A1", "agent_call", dt.datetime(2025, 6, 3, 9, 30, tzinfo=dt.UTC), "no_answer")]

decision = policy.evaluate(account, history, now=now)
print("stage:", decision.stage, "| next action:", decision.next_action)
print("may call now:", decision.is_allowed("agent_call"))
print(decision.explain())
