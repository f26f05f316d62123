"""Every number of the README's results section comes from the committed result tables."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from handlib.experiments.summary import replace_section, summary

ROOT = Path(__file__).resolve().parents[1]


def test_the_readme_shows_what_the_committed_tables_give():
    readme = (ROOT / "README.md").read_text()
    expected = summary("quick", ROOT / "results")
    assert expected in readme, (
        "README.md's results section differs from results/quick/: run "
        "`python -m handlib.experiments.summary --profile quick --write README.md` and commit both."
    )


def test_the_summary_reads_the_tables(tmp_path):
    folder = tmp_path / "quick"
    (folder / "runs").mkdir(parents=True)
    pd.DataFrame(
        [
            {"benchmark": b, "eps_v_before": 5.0, "eps_v_after": a, "eps_v_floor": f, "seconds": 60.0}
            for b, a, f in (("ideal", 1.5, 0.0), ("ideal", 2.5, 0.0), ("realistic", 3.1, 1.8), ("realistic", 5.2, 1.7))
        ]
    ).to_csv(folder / "smvr_cases.csv", index=False)
    pd.DataFrame(
        [
            {
                "claim": "c | d",
                "paper": "p",
                "ours": "+1.00 mm",
                "verdict": "unsettled",
                "rule": "",
                "why it may differ": "",
            }
        ]
    ).to_csv(folder / "smvr_claims.csv", index=False)
    (folder / "runs" / "smvr.json").write_text(json.dumps({"handlib": "0.2, commit abc", "wall_time": "120 s"}))
    text = summary("quick", tmp_path)
    assert "| ideal | 2 | 5.00 | 2.00 | 0.00 | 2 of 2 | 60 |" in text
    assert "| realistic | 2 | 5.00 | 4.15 | 1.75 | 1 of 2 | 60 |" in text
    assert "| SMVR | c / d | p | +1.00 mm | **unsettled** |" in text  # a "|" in a cell cannot break the table
    assert "2 min in all, handlib 0.2, commit abc" in text
    page = f"intro\n{summary('quick', tmp_path / 'none')}\noutro\n"
    assert "No result tables" in page
    assert replace_section(page, text, "quick") == f"intro\n{text}\noutro\n"
    with pytest.raises(ValueError, match="markers"):
        replace_section("no markers here", text, "quick")


def test_the_book_runner_rewrites_the_section(tmp_path):
    from handlib.experiments.book import update_readme

    (tmp_path / "README.md").write_text(f"top\n{summary('quick', tmp_path / 'results')}\nbottom\n")
    folder = tmp_path / "results" / "quick"
    folder.mkdir(parents=True)
    pd.DataFrame(
        [{"benchmark": "realistic", "eps_v_before": 5.0, "eps_v_after": 3.0, "eps_v_floor": 1.5, "seconds": 9.0}]
    ).to_csv(folder / "smvr_cases.csv", index=False)
    update_readme(tmp_path, "quick")
    text = (tmp_path / "README.md").read_text()
    assert "| realistic | 1 | 5.00 | 3.00 | 1.50 | 1 of 1 | 9 |" in text and text.startswith("top\n")
    assert text.endswith("bottom\n")
