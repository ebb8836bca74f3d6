"""When the KV mirror replaces its watch: judged from revisions alone (services/common/kv_mirror.py)."""

from services.common.kv_mirror import judge_watch


def test_a_mirror_at_the_last_revision_is_current() -> None:
    assert judge_watch(applied=7, last=7, awaited=None) == "current"


def test_a_mirror_behind_once_is_given_an_interval() -> None:
    assert judge_watch(applied=7, last=9, awaited=None) == "behind"


def test_a_mirror_that_progressed_since_the_last_check_is_not_stalled() -> None:
    assert judge_watch(applied=8, last=10, awaited=(7, 9)) == "behind"
    assert judge_watch(applied=9, last=9, awaited=(7, 9)) == "current"


def test_a_mirror_still_at_the_same_revision_an_interval_later_has_stalled() -> None:
    assert judge_watch(applied=7, last=9, awaited=(7, 9)) == "watch_stalled"


def test_a_bucket_whose_revisions_went_back_was_recreated() -> None:
    assert judge_watch(applied=7, last=1, awaited=None) == "bucket_revision_went_back"
    assert judge_watch(applied=7, last=0, awaited=(7, 9)) == "bucket_revision_went_back"
