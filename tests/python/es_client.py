"""Caravan against the official Elasticsearch Python client (8.x), unchanged.

Run by the Rust integration test `logs_clients::official_python_client` with CARAVAN_URL and
CARAVAN_TOKEN (a tenant token of `payments` with logs:write and logs:read) in the environment.
Exits non-zero, with the failing assertion, when something does not work as with Elasticsearch.
"""

import os
import sys

from elasticsearch import ConflictError, Elasticsearch, helpers

url = os.environ["CARAVAN_URL"]
token = os.environ["CARAVAN_TOKEN"]
es = Elasticsearch(url, basic_auth=("filebeat", token), request_timeout=30)

info = es.info()
assert info["version"]["number"].startswith("8."), info

actions = [
    {
        "_index": "payments-2026.11.22",
        "_id": f"py-{n}",
        "_source": {
            "@timestamp": "2026-11-22T10:00:00Z",
            "userId": n if n % 2 else str(n),
            "http": {"status": "abc" if n == 7 else 200},
            "message": f"payment {n}",
        },
    }
    for n in range(50)
]
ok, errors = helpers.bulk(es, actions, refresh=True, raise_on_error=False)
assert ok == 50 and errors == [], (ok, errors)

response = es.index(index="payments-2026.11.22", id="py-single", document={"message": "one"}, refresh=True)
assert response["result"] == "created", response

try:
    es.create(index="payments-2026.11.22", id="py-single", document={"message": "again"})
    raise AssertionError("create on an existing id must conflict")
except ConflictError:
    pass

doc = es.get(index="payments-2026.11.22", id="py-7")
assert doc["_source"]["userId"] == "7", doc
assert any(i["key"] == "http.status" for i in doc["_source"]["_ignored"]), doc

count = es.count(index="payments-2026.11.22")["count"]
assert count == 51, count

# Search: the query DSL, sort, aggregations, search_after, q=, count with a query.
day = {"gte": "2026-11-22T00:00:00Z", "lt": "2026-11-23T00:00:00Z"}
found = es.search(
    index="payments-*",
    query={"bool": {"must": [{"match": {"message": "payment"}}], "filter": [{"range": {"@timestamp": day}}]}},
    size=5,
    sort=[{"@timestamp": "desc"}],
    aggs={
        "per_hour": {"date_histogram": {"field": "@timestamp", "fixed_interval": "1h"}},
        "users": {"terms": {"field": "user_id", "size": 3}},
    },
)
assert found["hits"]["total"] == {"value": 50, "relation": "eq"}, found["hits"]["total"]
assert len(found["hits"]["hits"]) == 5, found
assert found["aggregations"]["per_hour"]["buckets"][0]["doc_count"] == 50, found["aggregations"]
assert len(found["aggregations"]["users"]["buckets"]) == 3, found["aggregations"]

by_alias = es.search(index="payments-*", q="user_id:7")
assert [h["_id"] for h in by_alias["hits"]["hits"]] == ["py-7"], by_alias

pages, after = [], None
while True:
    page = es.search(index="payments-2026.11.22", size=20, sort=[{"@timestamp": "asc"}],
                     search_after=after, source=["userId"])
    hits = page["hits"]["hits"]
    if not hits:
        break
    assert set(hits[0]["_source"]) <= {"userId"}, hits[0]
    pages.extend(h["_id"] for h in hits)
    after = hits[-1]["sort"]
assert len(pages) == 51 and len(set(pages)) == 51, pages

assert es.count(index="payments-*", query={"term": {"userId": "8"}})["count"] == 1

try:
    es.search(index="payments-*", q="usrId:1")
    raise AssertionError("an unknown field must be an error")
except Exception as error:  # BadRequestError
    assert "did you mean" in str(error) and "userId" in str(error), error

print("official python client: ok")
sys.exit(0)
