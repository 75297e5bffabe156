"""`torchrun --nproc-per-node 2` on CPU (gloo): the same command, each rank its share of the
units, rank 0 merging, gives the polygons one process gives; a rank that fails ends the
job (torchrun stops the others) and a re-run resumes what was done."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from saymap.engine.collection_job import work_dir_for
from tests.engine.test_collection_job import (
    CLI_OPTIONS,
    SMALL_BOX,
    cli,
    cli_env,
    cut_in_four,
    damage_last_block,
    feature_rows,
    scene,
    tiny_checkpoint,  # noqa: F401  (a fixture)
)

TORCHRUN = Path(sys.executable).with_name("torchrun")


def torchrun(*args: str | Path, base: Path) -> subprocess.CompletedProcess:
    """`torchrun --standalone --nproc-per-node 2 -m saymap.engine.cli ARGS` (a free port)."""
    return subprocess.run(
        [str(TORCHRUN), "--standalone", "--nproc-per-node", "2", "-m", "saymap.engine.cli",
         *map(str, args)],
        capture_output=True, text=True, env=cli_env(base), timeout=400,
    )  # fmt: skip


@pytest.mark.slow
@pytest.mark.skipif(not TORCHRUN.exists(), reason="torchrun is not installed beside python")
def test_two_processes_give_the_polygons_of_one_and_a_failed_rank_resumes(
    tmp_path: Path,
    tiny_checkpoint: Path,  # noqa: F811
) -> None:
    tiles = cut_in_four(tmp_path / "tiles", scene(128, SMALL_BOX))
    command = ("segment", *tiles, "-p", "roof", "--checkpoint", tiny_checkpoint, *CLI_OPTIONS)
    single = cli(*command, "-o", tmp_path / "one.gpkg", base=tmp_path)
    assert single.returncode == 0, single.stderr
    expected = feature_rows(tmp_path / "one.gpkg")
    assert expected

    two = torchrun(*command, "-o", tmp_path / "two.gpkg", base=tmp_path)
    assert two.returncode == 0, two.stderr[-3000:]
    assert feature_rows(tmp_path / "two.gpkg") == expected
    assert two.stdout.count("wrote ") == 1  # rank 0 alone reports

    # Rank 1 owns units 1 and 3; the last block of tile 3 cannot be decoded.
    stat = tiles[3].stat()
    original = damage_last_block(tiles[3])
    output = tmp_path / "resumed.gpkg"
    failed = torchrun(*command, "-o", output, base=tmp_path)
    assert failed.returncode != 0
    assert "saymap: error:" in failed.stderr
    assert not output.exists()
    done = sorted(p.name for p in (work_dir_for(output) / "done").glob("unit_*.json"))
    assert "unit_00003.json" not in done and done  # rank 1 finished unit 1 first
    tiles[3].write_bytes(original)  # repaired: the same file as the job's manifest says
    os.utime(tiles[3], ns=(stat.st_atime_ns, stat.st_mtime_ns))
    again = torchrun(*command, "-o", output, base=tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    assert f"resumed {len(done)} of 4 unit(s)" in again.stdout, (done, again.stdout, again.stderr)
    assert feature_rows(output) == expected
    assert not work_dir_for(output).exists()
