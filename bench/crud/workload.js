// The CRUD benchmark's mixed workload (k6): 60% reads by id, 20% paged lists,
// 10% inserts, 10% updates, over a ramp of virtual users given in STAGES.
import http from "k6/http";
import { check } from "k6";

const BASE = __ENV.BASE;
const ROWS = parseInt(__ENV.ROWS, 10);
const PAGES = 100;

export const options = {
  stages: JSON.parse(__ENV.STAGES),
  summaryTrendStats: ["avg", "min", "med", "p(95)", "p(99)", "max"],
  discardResponseBodies: true,
  noConnectionReuse: false,
};

const JSON_HEADERS = { headers: { "Content-Type": "application/json" } };

function rid() {
  return 1 + Math.floor(Math.random() * ROWS);
}

export default function () {
  const r = Math.random();
  let res;
  if (r < 0.6) {
    res = http.get(`${BASE}/tasks/${rid()}`, { tags: { name: "get" } });
    check(res, { "get 200": (x) => x.status === 200 });
  } else if (r < 0.8) {
    const page = 1 + Math.floor(Math.random() * PAGES);
    res = http.get(`${BASE}/tasks?page=${page}&limit=20`, { tags: { name: "list" } });
    check(res, { "list 200": (x) => x.status === 200 });
  } else if (r < 0.9) {
    const body = JSON.stringify({ title: `new task ${__VU}-${__ITER}`, done: false });
    res = http.post(`${BASE}/tasks`, body, Object.assign({ tags: { name: "insert" } }, JSON_HEADERS));
    check(res, { "insert 201": (x) => x.status === 201 });
  } else {
    const body = JSON.stringify({ title: `updated ${__VU}-${__ITER}`, done: __ITER % 2 === 0 });
    res = http.put(`${BASE}/tasks/${rid()}`, body, Object.assign({ tags: { name: "update" } }, JSON_HEADERS));
    check(res, { "update 200": (x) => x.status === 200 });
  }
}

export function handleSummary(data) {
  return { [__ENV.OUT]: JSON.stringify(data) };
}
