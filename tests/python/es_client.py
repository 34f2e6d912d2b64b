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

print("official python client: ok")
sys.exit(0)
