"""The flip's lease where the state lives: a gs:// object created only if absent, or a file beside file:// state."""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.fakes.fake_gcs import FakeGcs
from tools.flip.lease import FileStore, GcsStore, LeaseError, LeaseHeld, acquire, open_store, read_lease


@pytest.fixture
def gcs(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeGcs]:
    fake = FakeGcs().start()
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", fake.url)
    yield fake
    fake.stop()


def test_the_backend_picks_the_store_and_names_where_the_lease_lives(tmp_path: Path, gcs: FakeGcs,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PULUMI_BACKEND_URL", "gs://mesh-state-prod/stacks")
    store = open_store(tmp_path)
    assert isinstance(store, GcsStore) and store.where == "gs://mesh-state-prod/stacks"
    monkeypatch.setenv("PULUMI_BACKEND_URL", f"file://{tmp_path}")
    assert isinstance(open_store(tmp_path), FileStore)
    monkeypatch.setenv("PULUMI_BACKEND_URL", "https://api.pulumi.com")
    with pytest.raises(LeaseError, match="live beside the state on a gs:// or file:// backend"):
        open_store(tmp_path)


@pytest.mark.parametrize("kind", ["gs", "file"])
def test_exactly_one_of_many_concurrent_flips_gets_the_lease(kind: str, tmp_path: Path, gcs: FakeGcs) -> None:
    store = GcsStore("mesh-state-dev", "p") if kind == "gs" else FileStore(tmp_path)

    def try_take(_: int) -> str:
        try:
            return acquire(store, "dev").holder
        except LeaseHeld as held:
            return "refused: " + held.holder

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(try_take, range(16)))
    assert len([r for r in results if not r.startswith("refused")]) == 1
    held = read_lease(store, "dev")
    assert held is not None and held["since"].endswith("Z")
    with pytest.raises(LeaseHeld) as refused:
        acquire(store, "dev")
    assert (refused.value.holder, refused.value.since) == (held["holder"], held["since"])
    if kind == "gs":
        assert json.loads(gcs.objects[("mesh-state-dev", "p/.pulumi-flip/gke-istio-mesh/dev/lease.json")][0])
    store.delete(".pulumi-flip/gke-istio-mesh/dev/lease.json")
    assert acquire(store, "dev").stack == "dev"  # released: the next flip takes it
