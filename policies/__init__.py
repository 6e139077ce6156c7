"""The shipped baselines, installed as the package `policydsl.baselines`
(pyproject.toml maps this directory there; see policydsl/library.py), so that
a policy can `include "policydsl:us_reg_f"` from any installation."""
