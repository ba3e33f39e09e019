"""The hash chain: appends in the same transaction, no forks under concurrency, tampering detected."""

import asyncio

from tortoise.transactions import in_transaction

from models.ledger import LedgerEntry
from tests.support.cli import run_cli
from workflow import ledger


async def _append(n: int, subject: str = "test:1") -> None:
    async with in_transaction() as conn:
        await ledger.append(conn, actor="system", subject=subject, action=f"step{n}", payload={"n": n, "名称": "测试"})


async def test_chain_verifies_and_links(database_url, settings):
    from echain import db

    async with db.database(database_url):
        for i in range(5):
            await _append(i)
        result = await ledger.verify()
        assert result.ok and result.entries == 5
        rows = await LedgerEntry.all().order_by("seq")
        assert [r.seq for r in rows] == [1, 2, 3, 4, 5]
        assert all(b.prev_hash == a.hash for a, b in zip(rows, rows[1:], strict=False))
        assert [r.action for r in await ledger.entries_for("test:1")] == [f"step{i}" for i in range(5)]


async def test_concurrent_appends_never_fork(database_url, settings):
    from echain import db

    async with db.database(database_url):
        await asyncio.gather(*[_append(i, f"s:{i % 3}") for i in range(50)])
        result = await ledger.verify()
        assert result.ok and result.entries == 50
        assert len({r.prev_hash for r in await LedgerEntry.all()}) == 50


async def test_rolled_back_transaction_leaves_no_entry(database_url, settings):
    from echain import db

    async with db.database(database_url):
        await _append(1)
        try:
            async with in_transaction() as conn:
                await ledger.append(conn, actor="system", subject="x", action="doomed", payload={})
                raise RuntimeError("business step failed")
        except RuntimeError:
            pass
        await _append(2)
        result = await ledger.verify()
        assert result.ok and result.entries == 2
        assert not await LedgerEntry.filter(action="doomed").exists()


async def _tampered(database_url: str, change) -> tuple[int, str]:  # noqa: ANN001
    from echain import db

    async with db.database(database_url):
        for i in range(4):
            await _append(i)
        await change()
        result = await ledger.verify()
        assert not result.ok
        return result.bad_seq, result.reason


async def test_altered_payload_is_detected(database_url, settings):
    async def change():
        await LedgerEntry.filter(seq=2).update(payload={"n": 99, "名称": "测试"})

    bad, reason = await _tampered(database_url, change)
    assert bad == 2 and "篡改" in reason


async def test_altered_actor_is_detected(database_url, settings):
    async def change():
        await LedgerEntry.filter(seq=3).update(actor="user:666")

    bad, reason = await _tampered(database_url, change)
    assert bad == 3


async def test_removed_entry_is_detected(database_url, settings):
    async def change():
        await LedgerEntry.filter(seq=2).delete()

    bad, reason = await _tampered(database_url, change)
    assert bad == 3 and "不连续" in reason


async def test_removed_tail_is_detected(database_url, settings):
    async def change():
        await LedgerEntry.filter(seq=4).delete()

    bad, reason = await _tampered(database_url, change)
    assert "链尾缺失" in reason


async def test_reordered_entries_are_detected(database_url, settings):
    async def change():
        a, b = await LedgerEntry.get(seq=2), await LedgerEntry.get(seq=3)
        await LedgerEntry.filter(id=a.id).update(seq=-2)
        await LedgerEntry.filter(id=b.id).update(seq=2)
        await LedgerEntry.filter(id=a.id).update(seq=3)

    bad, reason = await _tampered(database_url, change)
    assert bad == 2


async def test_cli_ledger_verify_exit_codes(database_url, settings):
    from echain import db

    async with db.database(database_url):
        for i in range(3):
            await _append(i)
        ok = await run_cli(settings, "ledger", "verify")
        assert ok.returncode == 0 and "共 3 条记录" in ok.stdout
        await LedgerEntry.filter(seq=2).update(action="forged")
        bad = await run_cli(settings, "ledger", "verify")
        assert bad.returncode == 1 and "第 2 条" in bad.stderr
