"""Every shell command the README shows is one that works: the cheap ones run, the rest parse."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def _shell_lines() -> list[str]:
    blocks = re.findall(r"```bash\n(.*?)```", README, flags=re.S)
    return [line.split("  #", 1)[0].strip() for b in blocks for line in b.splitlines() if line.strip() and not line.startswith("#")]


def test_the_readme_is_a_front_page():
    assert len(README.split()) <= 2000  # the details live in docs/, linked
    for link in re.findall(r"\]\((docs/[^)#]+|notebooks/[^)#]+|figures/[^)#]+)", README):
        assert (ROOT / link).is_file(), link


def test_every_mexpr_command_in_the_readme_parses():
    from mexpr import cli

    lines = [ln for ln in _shell_lines() if " -m mexpr " in ln]
    assert len(lines) >= 6
    for ln in lines:
        args = shlex.split(ln.split(" -m mexpr ", 1)[1])
        try:
            cli.build_parser().parse_args(args)
        except SystemExit as exc:  # argparse's way of saying no
            pytest.fail(f"README: `{ln}` does not parse (exit {exc.code})")


def test_every_command_answers_help_and_info_reads_synthetic_data(casme1_root, capsys):
    from mexpr import cli

    commands = sorted(cli.build_parser()._subparsers._group_actions[0].choices)
    assert {"analyze", "spot", "evaluate", "info", "reproduce"} <= set(commands)
    for c in commands:
        with pytest.raises(SystemExit) as exc:
            cli.main([c, "--help"])
        assert exc.value.code == 0 and f"usage: mexpr {c}" in capsys.readouterr().out, c
    assert cli.main(["info", str(casme1_root)]) == 0
    assert "casme1" in capsys.readouterr().out


def test_make_and_benchmark_lines_in_the_readme_exist():
    for ln in _shell_lines():
        if ln.startswith("make "):
            words = shlex.split(ln)
            res = subprocess.run(["make", "-n", *words[1:]], capture_output=True, text=True, cwd=ROOT)
            assert res.returncode == 0, (ln, res.stderr)
        elif "benchmarks/" in ln:
            script, *args = shlex.split(ln.split("python ", 1)[1])
            res = subprocess.run([sys.executable, str(ROOT / script), "--help"], capture_output=True, text=True, cwd=ROOT)
            assert res.returncode == 0, (ln, res.stderr[-500:])
            for opt in (a for a in args if a.startswith("--")):
                assert opt in res.stdout, (ln, opt)
