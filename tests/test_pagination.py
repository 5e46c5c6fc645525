"""The one cursor paginator: empty pages, exact page multiples, loops, bad bodies."""

from __future__ import annotations

import pytest
import responses
from responses import matchers

from tap_metronome.client import MetronomeClient, RetryPolicy
from tap_metronome.pagination import PaginationError, iter_pages
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
