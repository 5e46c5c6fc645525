"""The one cursor paginator: empty pages, exact page multiples, loops, bad bodies,
and the progress rule (pages that can no longer be new)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
import responses
from responses import matchers

from tap_metronome.client import MetronomeClient, RetryPolicy
from tap_metronome.pagination import (
    CursorPage,
    MetronomeCursorPaginator,
    PaginationError,
    iter_pages,
)
from tests.conftest import run_tap, tap_config
from tests.fake_metronome import FakeData

API = "https://api.metronome.test"


def _client() -> MetronomeClient:
    return MetronomeClient(
        api_url=API,
        auth_token="t",
        timeout=5,
        user_agent="test",
        retry=RetryPolicy(max_retries=0),
    )


def _items(n: int, start: int = 0) -> list[dict]:
    return [{"id": str(i)} for i in range(start, start + n)]


def _serve(pages: list[tuple[str | None, list[dict], str | None]]) -> None:
    """Register pages as (cursor sent, data, next_page answered)."""
    for sent, data, nxt in pages:
        query = {"limit": "100"} | ({"next_page": sent} if sent else {})
        responses.get(
            f"{API}/v1/plans",
            json={"data": data, "next_page": nxt},
            match=[matchers.query_param_matcher(query)],
        )


def _all(stream: str = "plans") -> list[dict]:
    pages = iter_pages(_client(), "/v1/plans", stream=stream, page_size=100)
    return [record for page in pages for record in page.records]


@responses.activate
def test_no_items():
    _serve([(None, [], None)])
    assert _all() == []
    assert len(responses.calls) == 1


@responses.activate
def test_exactly_one_full_page_then_empty_last_page():
    _serve([(None, _items(100), "c1"), ("c1", [], None)])
    assert _all() == _items(100)
    assert len(responses.calls) == 2


@responses.activate
def test_three_pages_in_order():
    _serve(
        [
            (None, _items(100), "c1"),
            ("c1", _items(100, 100), "c2"),
            ("c2", _items(5, 200), None),
        ]
    )
    assert _all() == _items(205)


@responses.activate
def test_empty_middle_pages_do_not_end_the_listing():
    _serve(
        [
            (None, _items(3), "c1"),
            ("c1", [], "c2"),
            ("c2", [], "c3"),
            ("c3", _items(2, 3), None),
        ]
    )
    assert _all() == _items(5)


@responses.activate
def test_repeated_cursor_fails_naming_the_stream():
    _serve([(None, _items(1), "a"), ("a", _items(1, 1), "b"), ("b", _items(1, 2), "a")])
    with pytest.raises(
        PaginationError, match=r"Stream plans: .*cursor 'a' a second time"
    ):
        _all()


@responses.activate
def test_same_cursor_twice_in_a_row_fails():
    _serve([(None, _items(1), "a"), ("a", [], "a")])
    with pytest.raises(PaginationError, match="Stream plans"):
        _all()


@responses.activate
@pytest.mark.parametrize(
    "body", [{"data": []}, {"next_page": None}, {"data": {}, "next_page": None}, []]
)
def test_body_that_is_not_a_list_page_fails(body):
    responses.get(f"{API}/v1/plans", json=body)
    with pytest.raises(PaginationError, match="Stream plans: GET /v1/plans"):
        _all()


@pytest.mark.parametrize(
    ("customers", "page_size"),
    [
        (0, 100),
        # A sync of every stream of 100, 250 or 23 customers: `make test` only.
        pytest.param(100, 100, marks=pytest.mark.slow),
        pytest.param(250, 100, marks=pytest.mark.slow),
        pytest.param(23, 7, marks=pytest.mark.slow),
    ],
)
def test_fake_api_sizes_end_to_end(fake_api, tmp_path, customers, page_size):
    server = fake_api(FakeData.generate(customers=customers, archived=0))
    run = run_tap(
        tap_config(server, page_size=page_size, include_archived_customers=False),
        tmp_path,
    )
    assert run.returncode == 0, run.stderr
    assert run.records("customers") == server.app.data.customers


# -- progress: a listing that can no longer bring anything new stops ----------------

#: Repeated pages in a row, and pages in a row without a new item, that stop a
#: listing (docs/errors.md gives both).
REPEATS = 5
IDLE = 200


def test_the_limits_are_the_documented_ones():
    assert MetronomeCursorPaginator.MAX_REPEATED_PAGES == REPEATS
    assert MetronomeCursorPaginator.MAX_IDLE_PAGES == IDLE


def _ignoring_the_cursor(page: Callable[[int], list[dict]], last: int = 10**6) -> None:
    """An API that ignores the cursor it is sent: the n-th request (from 0) is
    answered `page(n)` with a cursor never sent before, until request `last`."""

    def callback(request: Any) -> tuple[int, dict[str, str], str]:
        n = len(responses.calls)
        if n > 1000:  # without the progress rule: fail, not page on for minutes
            return 418, {}, json.dumps({"message": "endless"})
        cursor = None if n >= last else f"fresh-{n}"
        return 200, {}, json.dumps({"data": page(n), "next_page": cursor})

    responses.add_callback(responses.GET, f"{API}/v1/plans", callback=callback)


def _pages(**options: Any) -> list[list[dict]]:
    pages = iter_pages(_client(), "/v1/plans", stream="plans", page_size=100, **options)
    return [page.records for page in pages]


@responses.activate
def test_the_same_page_under_fresh_cursors_stops_naming_stream_and_request():
    _ignoring_the_cursor(lambda n: _items(3))
    with pytest.raises(
        PaginationError,
        match=rf"^Stream plans: GET /v1/plans returned {REPEATS} pages in a row that "
        r"repeat a page .* stopping instead of paging forever$",
    ):
        _pages()
    # The page, its second sighting (a page can be listed twice), then the row.
    assert len(responses.calls) == 2 + REPEATS


@responses.activate
def test_the_same_page_stops_an_until_empty_listing_too():
    _ignoring_the_cursor(lambda n: _items(3))
    with pytest.raises(PaginationError, match="repeat a page"):
        _pages(until_empty=True)
    assert len(responses.calls) == 2 + REPEATS


@responses.activate
def test_pages_alternating_between_two_old_pages_stop():
    _ignoring_the_cursor(lambda n: _items(3, 100 * (n % 2)))
    with pytest.raises(PaginationError, match="repeat a page"):
        _pages()
    assert len(responses.calls) == 4 + REPEATS


@responses.activate
def test_empty_pages_between_repeated_pages_do_not_reset_the_count():
    _ignoring_the_cursor(lambda n: [] if n % 2 else _items(3))
    with pytest.raises(PaginationError, match="repeat a page"):
        _pages()
    assert len(responses.calls) == 3 + 2 * REPEATS


@responses.activate
def test_every_page_listed_twice_in_a_row_does_not_stop_the_listing(caplog):
    """An API listing each page twice (a customer both active and archived lists
    its usage series twice) is not endless: each second sighting is skipped."""
    _ignoring_the_cursor(lambda n: _items(3, 100 * (n // 2)), last=39)
    pages = _pages()
    assert [page for page in pages if page] == [_items(3, 100 * k) for k in range(20)]
    assert "returned 20 pages that repeat a page" in caplog.text


@responses.activate
def test_endless_empty_pages_stop_after_the_idle_limit():
    _ignoring_the_cursor(lambda n: [])
    with pytest.raises(
        PaginationError,
        match=rf"Stream plans: GET /v1/plans returned {IDLE} empty pages in a row",
    ):
        _pages()
    assert len(responses.calls) == IDLE


@responses.activate
def test_empty_and_repeated_pages_share_the_idle_limit():
    # A few repeats (fewer than REPEATS) spread over a long row of empty pages.
    spread = IDLE // (REPEATS - 1)
    _ignoring_the_cursor(lambda n: _items(3) if n % spread == 0 else [])
    with pytest.raises(
        PaginationError, match=rf"returned {IDLE} pages without a new item"
    ):
        _pages()
    assert len(responses.calls) == 1 + IDLE


@responses.activate
def test_a_page_with_one_new_item_among_repeats_is_progress():
    """Each page repeats the last one's items and adds one: never stopped. A
    legitimate API does not do this, but at this depth it cannot be told from a
    long listing with repeats, and each page brings a new record."""
    _ignoring_the_cursor(lambda n: _items(min(n + 1, 100), max(0, n - 99)), last=300)
    pages = _pages()
    assert len(pages) == 301
    assert pages[-1] == _items(100, 201)  # passed on whole, repeats included


@responses.activate
def test_an_item_listed_twice_across_pages_is_passed_on_as_before(caplog):
    _serve(
        [
            (None, _items(3), "c1"),
            ("c1", _items(3, 2), "c2"),  # item 2 again, and new ones
            ("c2", _items(1, 2), None),  # only item 2: a page not read before
        ]
    )
    assert _pages() == [_items(3), _items(3, 2), _items(1, 2)]
    assert "repeat" not in caplog.text


@responses.activate
def test_a_page_served_again_is_skipped_once_and_the_listing_goes_on(caplog):
    _serve(
        [
            (None, _items(2), "c1"),
            ("c1", _items(2, 2), "c2"),
            ("c2", _items(2, 2), "c3"),  # the last page again (an offset shifted)
            ("c3", _items(2, 4), "c4"),
            ("c4", _items(2, 4), None),  # and a last page that repeats
        ]
    )
    assert _pages() == [_items(2), _items(2, 2), [], _items(2, 4), []]
    warnings = [r for r in caplog.records if r.levelname == "WARNING"]
    assert [r.getMessage() for r in warnings] == [
        "Stream plans: GET /v1/plans returned 2 pages that repeat a page of this "
        "listing already read (the same items); they were skipped"
    ]


@responses.activate
def test_fewer_repeats_than_the_limit_do_not_stop_the_listing():
    _ignoring_the_cursor(lambda n: _items(3), last=REPEATS - 1)
    assert _pages() == [_items(3)] + [[]] * (REPEATS - 1)


@responses.activate
def test_a_cursor_in_the_body_is_held_to_the_same_rule():
    calls: list[Any] = []

    def callback(request: Any) -> tuple[int, dict[str, str], str]:
        calls.append(json.loads(request.body))
        if len(calls) > 1000:  # without the progress rule: fail, not page on
            return 418, {}, json.dumps({"message": "endless"})
        return 200, {}, json.dumps({"data": _items(2), "cursor": f"x{len(calls)}"})

    responses.add_callback(
        responses.POST, f"{API}/v2/contracts/list", callback=callback
    )
    pages = iter_pages(
        _client(),
        "/v2/contracts/list",
        stream="contracts",
        page_size=20,
        method="POST",
        body={"customer_id": "c"},
        cursor_in="body",
        cursor="cursor",
    )
    with pytest.raises(
        PaginationError, match="Stream contracts: POST /v2/contracts/list returned"
    ):
        list(pages)
    assert len(calls) == 2 + REPEATS
    assert calls[-1]["cursor"] == f"x{REPEATS + 1}"


def test_pages_not_items_are_remembered():
    """Memory: one 8-byte digest per page read, whatever the page's size."""
    paginator = MetronomeCursorPaginator("usage", "POST /v1/usage")
    for n in range(50):
        assert paginator.admit(CursorPage(_items(100, 100 * n), f"c{n}"))
    assert len(paginator._pages) == 50
