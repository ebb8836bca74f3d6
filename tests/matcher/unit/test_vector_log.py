import uuid

from services.matcher.adapters.vector_log import KEPT_CHANGES, VectorLogState


def test_a_copy_a_few_writes_behind_re_reads_only_what_they_wrote() -> None:
    a, b, c = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    state = VectorLogState().appended([a]).appended([b, c]).appended([a])
    assert state.seq == 3
    assert state.changed_since(3) == set()
    assert state.changed_since(2) == {a}
    assert state.changed_since(0) == {a, b, c}


def test_a_copy_further_behind_than_the_log_reaches_reloads_whole() -> None:
    state = VectorLogState()
    for _ in range(KEPT_CHANGES + 3):
        state = state.appended([uuid.uuid4()])
    assert len(state.changes) == KEPT_CHANGES
    assert state.changed_since(2) is None
    assert state.changed_since(3) is not None and len(state.changed_since(3) or ()) == KEPT_CHANGES
    assert state.changed_since(state.seq + 1) is None  # a copy ahead of the log (the log was reset): reload
