"""The mutation driver's choice of mutants for `--since`: the lines a branch added or changed."""

import subprocess

from ml_assets_tests.mutation.driver import changed_lines


def git(repo, *args):
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=repo, check=True, capture_output=True)


def test_changed_lines_are_the_added_and_changed_ones_and_the_line_before_a_deletion(tmp_path):
    git(tmp_path, "init", "-q")
    module = tmp_path / "gate.py"
    module.write_text("".join(f"line {n}\n" for n in range(1, 11)))
    git(tmp_path, "add", "gate.py")
    git(tmp_path, "commit", "-qm", "base")

    lines = module.read_text().splitlines()
    lines[1] = "line 2 changed"  # line 2
    del lines[5]  # "line 6": now line 5 is "line 5", line 6 is "line 7"
    lines.append("line 11 added")  # line 10 of the new file
    module.write_text("\n".join(lines) + "\n")

    assert changed_lines("gate.py", "HEAD", repo=tmp_path) == {2, 5, 10}
    git(tmp_path, "add", "gate.py")
    git(tmp_path, "commit", "-qm", "change")
    assert changed_lines("gate.py", "HEAD", repo=tmp_path) == set()
    assert changed_lines("gate.py", "HEAD~1", repo=tmp_path) == {2, 5, 10}
