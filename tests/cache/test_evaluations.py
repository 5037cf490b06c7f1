"""The probe's untouched-student metrics through the cache: the same student and dev set hit, any change misses."""

from prep.cache.evaluations import cached_evaluation
from prep.cache.store import Cache
from prep.evaluation.student import DevSet
from prep.io.paths import SAMPLE_TRAIN

DEV = DevSet(queries={"q0": "a query", "q1": "another"}, corpus={"c0": "a passage", "c1": "another passage"},
             relevant={"q0": {"c0"}, "q1": {"c1"}})


def test_the_same_student_and_dev_set_hit_and_any_change_misses(tmp_path):
    calls = []

    def evaluate(value):
        def run():
            calls.append(value)
            return {"ndcg@10": value, "mrr@10": 0.25}
        return run

    cache = Cache(tmp_path)
    student = str(SAMPLE_TRAIN)  # any file: the identity is its content
    assert cached_evaluation(cache, student, 128, "cpu", DEV, evaluate(0.5)) == ({"ndcg@10": 0.5, "mrr@10": 0.25},
                                                                                False)
    assert cached_evaluation(cache, student, 128, "cpu", DEV, evaluate(0.9)) == ({"ndcg@10": 0.5, "mrr@10": 0.25},
                                                                                True)
    changed = [
        (student, 64, "cpu", DEV),
        (student, 128, "cuda", DEV),
        (student, 128, "cpu", DevSet({**DEV.queries, "q1": "changed"}, DEV.corpus, DEV.relevant)),
        (student, 128, "cpu", DevSet(DEV.queries, {**DEV.corpus, "c2": "a distractor"}, DEV.relevant)),
        (student, 128, "cpu", DevSet(DEV.queries, DEV.corpus, {"q0": {"c0"}, "q1": {"c0"}})),
        (str(tmp_path / "other-model"), 128, "cpu", DEV),
    ]
    (tmp_path / "other-model").write_text("other weights")
    for number, (name, max_length, device, dev) in enumerate(changed, start=1):
        assert cached_evaluation(cache, name, max_length, device, dev, evaluate(number)) == (
            {"ndcg@10": number, "mrr@10": 0.25}, False)
    assert calls == [0.5, 1, 2, 3, 4, 5, 6]
    off = Cache(tmp_path, enabled=False)
    assert cached_evaluation(off, student, 128, "cpu", DEV, evaluate(0.7))[1] is False
    assert cached_evaluation(off, student, 128, "cpu", DEV, evaluate(0.7))[1] is False
