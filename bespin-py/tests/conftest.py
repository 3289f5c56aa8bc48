"""Fixtures: a fresh database per test (a temporary file, or a schema of its own of the
PostgreSQL database named by BESPIN_TEST_DB), a tenant with its admin and a member."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import bespin


def database(tmp_path: Path) -> str:
    """Where a test's database lives: a new redb file, or a new PostgreSQL schema."""
    url = os.environ.get("BESPIN_TEST_DB", "")
    if url.startswith(("postgres://", "postgresql://")):
        sep = "&" if "?" in url else "?"
        return f"{url}{sep}schema=py_{uuid.uuid4().hex[:16]}&pool=4"
    return str(tmp_path / "bespin.redb")


@pytest.fixture
def db(tmp_path: Path) -> Iterator[bespin.Bespin]:
    with bespin.open(database(tmp_path)) as handle:
        yield handle


@pytest.fixture
def tenant(db: bespin.Bespin) -> Any:
    return db.create_tenant(name="Acme", region="eu-west-1", admin_email="ada@acme.io")


@pytest.fixture
def admin(db: bespin.Bespin, tenant: Any) -> bespin.Session:
    return db.session(tenant["tenant_id"], tenant["admin"]["user_id"], tenant["api_key"])


@pytest.fixture
def member(db: bespin.Bespin, tenant: Any, admin: bespin.Session) -> bespin.Session:
    user = admin.create_user(email="max@acme.io", role="member")
    return db.session(tenant["tenant_id"], user["user_id"], tenant["api_key"])


def make_plan(db: bespin.Bespin, plan_id: str, credits: int, caps: list[str]) -> None:
    """A plan with `credits` included and the given capabilities."""
    db.admin.create_plan(
        plan_id=plan_id, name=plan_id.title(), included_credits=credits, overage_price_per_credit=0.1
    )
    db.admin.set_plan_capabilities(plan_id, caps)


@pytest.fixture
def postgres_url(tmp_path: Path) -> str:
    """A URL of a new PostgreSQL schema (the test is skipped unless BESPIN_TEST_DB names one)."""
    where = database(tmp_path)
    if not where.startswith(("postgres://", "postgresql://")):
        pytest.skip("BESPIN_TEST_DB names no PostgreSQL database")
    return where
