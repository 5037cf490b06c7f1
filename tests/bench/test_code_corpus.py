"""The code-search corpus builder (bench/code_corpus.py): which functions become queries and passages, and how
vendored copies are grouped with their originals (the sibling-tolerant metric's source packages)."""

from __future__ import annotations

import zipfile

from tests.bench import bench_script

SOURCE = '''
def short():
    """Too short."""
    return 1


class Box:
    @staticmethod
    def wrap(value, times):
        """Wrap a value in a box as many times as asked.

        More text that is not the query.
        """
        for _ in range(times):
            value = [value]
        return value

    def inner_owner(self):
        """Return the helper defined inside this method."""
        def helper(x):
            """Double the number given to it."""
            y = x * 2
            return y
        return helper
'''


def test_each_documented_function_gives_its_summary_line_and_its_source_without_the_docstring():
    found = list(bench_script("code_corpus").functions(SOURCE, "pkg.mod"))
    assert [(name, summary) for name, summary, _ in found] == [
        ("pkg.mod.Box.wrap", "Wrap a value in a box as many times as asked."),
        ("pkg.mod.Box.inner_owner", "Return the helper defined inside this method."),
        ("pkg.mod.Box.inner_owner.helper", "Double the number given to it.")]
    assert found[0][2] == ("    @staticmethod\n    def wrap(value, times):\n        for _ in range(times):\n"
                           "            value = [value]\n        return value")
    assert list(bench_script("code_corpus").functions("def broken(:\n", "pkg")) == []


def test_a_vendored_copy_shares_its_originals_group_and_a_wheels_metadata_is_skipped(tmp_path):
    module = bench_script("code_corpus")
    assert module.group_of("pip._vendor.requests.utils.quote") == "requests.utils.quote"
    assert module.group_of("setuptools._distutils.util.strtobool") == "distutils.util.strtobool"
    assert module.group_of("requests.utils.quote") == "requests.utils.quote"
    wheel = tmp_path / "pkg-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr("pip/_vendor/box/__init__.py", SOURCE)
        archive.writestr("pkg-1.0.dist-info/hook.py", SOURCE)
        archive.writestr("pkg/README.txt", SOURCE)
    assert [group for group, _, _ in module.collect([wheel])] == [
        "box.Box.wrap", "box.Box.inner_owner", "box.Box.inner_owner.helper"]
