// Caravan against the official Elasticsearch JavaScript client (8.x), unchanged.
//
// Run by the Rust integration test `shippers::official_javascript_client` with CARAVAN_URL and
// CARAVAN_TOKEN (a tenant token of `payments` with logs:write and logs:read) in the environment.
// Exits non-zero, with the failing assertion, when something does not work as with Elasticsearch.

import assert from 'node:assert/strict';

import { Client, errors } from '@elastic/elasticsearch';

const url = process.env.CARAVAN_URL;
const token = process.env.CARAVAN_TOKEN;
assert.ok(url && token, 'CARAVAN_URL and CARAVAN_TOKEN must be set');

// The client sends `Accept` and `Content-Type: application/vnd.elasticsearch+json;
// compatible-with=8` (and `+x-ndjson` for bulk), and checks `x-elastic-product` on every answer.
const client = new Client({
  node: url,
  auth: { username: 'node', password: token },
  requestTimeout: 30_000,
  maxRetries: 0,
});

const INDEX = 'payments-2026.11.22';
const SERVICES = ['checkout', 'ledger', 'refunds'];

const info = await client.info();
assert.ok(info.version.number.startsWith('8.'), JSON.stringify(info));

// 50 documents two minutes apart from 10:00: 30 in the 10 o'clock hour, 20 in the 11 o'clock one.
const documents = Array.from({ length: 50 }, (_, n) => ({
  id: `js-${n}`,
  '@timestamp': new Date(Date.UTC(2026, 10, 22, 10, 2 * n)).toISOString(),
  message: `payment ${n}`,
  service: SERVICES[n % 3],
  userId: String(n),
  http: { status: n % 10 === 0 ? 500 : 200 },
}));
const dropped = [];
// A small flushBytes makes several concurrent bulk requests; refreshOnCompletion calls
// `/{index}/_refresh` at the end.
const stats = await client.helpers.bulk({
  datasource: documents,
  onDocument: ({ id, ...source }) => [{ create: { _index: INDEX, _id: id } }, source],
  onDrop: (drop) => dropped.push(drop),
  flushBytes: 1024,
  concurrency: 3,
  refreshOnCompletion: INDEX,
});
assert.deepEqual(dropped, []);
assert.equal(stats.successful, 50, JSON.stringify(stats));
assert.equal(stats.failed, 0, JSON.stringify(stats));
assert.ok(!stats.aborted, JSON.stringify(stats));

const indexed = await client.index({
  index: INDEX,
  id: 'js-single',
  document: { '@timestamp': '2026-11-22T12:00:00Z', message: 'one', service: 'ledger' },
  refresh: true,
});
assert.equal(indexed.result, 'created', JSON.stringify(indexed));

await assert.rejects(
  client.create({ index: INDEX, id: 'js-single', document: { message: 'again' } }),
  (error) => error instanceof errors.ResponseError && error.statusCode === 409,
  'create on an existing id must conflict',
);

const single = await client.get({ index: INDEX, id: 'js-single' });
assert.equal(single._source.message, 'one', JSON.stringify(single));

assert.equal((await client.count({ index: INDEX })).count, 51);

// A bool query with a date histogram and a terms aggregation. Without `refunds` (n % 3 == 2),
// 34 of the 50 payments are left: 20 in the 10 o'clock hour and 14 in the 11 o'clock one.
const found = await client.search({
  index: 'payments-*',
  query: {
    bool: {
      must: [{ match: { message: 'payment' } }],
      filter: [{ range: { '@timestamp': { gte: '2026-11-22T00:00:00Z', lt: '2026-11-23T00:00:00Z' } } }],
      must_not: [{ term: { service: 'refunds' } }],
    },
  },
  size: 5,
  sort: [{ '@timestamp': 'desc' }],
  aggs: {
    per_hour: { date_histogram: { field: '@timestamp', fixed_interval: '1h' } },
    services: { terms: { field: 'service', size: 5 } },
  },
});
assert.deepEqual(found.hits.total, { value: 34, relation: 'eq' });
assert.deepEqual(
  found.hits.hits.map((hit) => hit._id),
  ['js-49', 'js-48', 'js-46', 'js-45', 'js-43'],
);
assert.deepEqual(
  found.aggregations.per_hour.buckets.map((b) => [b.key_as_string, b.doc_count]),
  [
    ['2026-11-22T10:00:00.000Z', 20],
    ['2026-11-22T11:00:00.000Z', 14],
  ],
  JSON.stringify(found.aggregations.per_hour),
);
assert.deepEqual(
  found.aggregations.services.buckets.map((b) => [b.key, b.doc_count]).sort(),
  [
    ['checkout', 17],
    ['ledger', 17],
  ],
  JSON.stringify(found.aggregations.services),
);

// Paging with search_after over the whole day, oldest first, keeping only one field. The sort
// values come back through JavaScript numbers: they must be exact (at most 2^53) or strings,
// or search_after repeats or skips hits.
const pages = [];
let after;
for (let round = 0; ; round += 1) {
  assert.ok(round <= 3, `search_after paging does not end; hits so far: ${pages}`);
  const page = await client.search({
    index: INDEX,
    size: 20,
    sort: [{ '@timestamp': 'asc' }],
    search_after: after,
    _source: ['userId'],
  });
  const hits = page.hits.hits;
  if (hits.length === 0) break;
  for (const hit of hits) {
    assert.ok(Object.keys(hit._source).every((key) => key === 'userId'), JSON.stringify(hit));
    assert.ok(
      hit.sort.every((value) => typeof value === 'string' || Number.isSafeInteger(value)),
      `the sort values of ${hit._id} are not exact in JavaScript (above 2^53): ${JSON.stringify(hit.sort)}`,
    );
  }
  pages.push(...hits.map((hit) => hit._id));
  after = hits[hits.length - 1].sort;
}
assert.deepEqual(pages, [...documents.map((d) => d.id), 'js-single']);

const ledger = await client.count({ index: 'payments-*', query: { term: { service: 'ledger' } } });
assert.equal(ledger.count, 18);

await assert.rejects(
  client.search({ index: 'payments-*', q: 'usrId:1' }),
  (error) =>
    error instanceof errors.ResponseError &&
    error.statusCode === 400 &&
    /did you mean/.test(error.message) &&
    /userId/.test(error.message),
  'an unknown field must be an error naming the right one',
);

console.log('official javascript client: ok');
