// The CRUD benchmark on Express + node-postgres.  argv: port database_url pool_size.
// Same queries and pool size as ember_app.py.
const express = require("express");
const { Pool, types } = require("pg");

// NOTE: bigint ids as JSON numbers, as asyncpg gives them (pg's default is a string)
types.setTypeParser(20, (v) => parseInt(v, 10));

const [port, dsn, poolSize] = process.argv.slice(2);
const pool = new Pool({ connectionString: dsn, max: Number(poolSize), min: Number(poolSize) });
const app = express();
app.disable("x-powered-by");
app.disable("etag");
app.use(express.json());

const COLS = "id, title, done, created_at";

app.get("/tasks/:id(\\d+)", async (req, res, next) => {
  try {
    const r = await pool.query(`SELECT ${COLS} FROM tasks WHERE id = $1`, [req.params.id]);
    if (r.rowCount === 0) return res.status(404).json({ error: "not found" });
    res.json(r.rows[0]);
  } catch (e) { next(e); }
});

app.get("/tasks", async (req, res, next) => {
  try {
    const page = parseInt(req.query.page || "1", 10), limit = parseInt(req.query.limit || "20", 10);
    const r = await pool.query(`SELECT ${COLS} FROM tasks ORDER BY id LIMIT $1 OFFSET $2`,
                               [limit, (page - 1) * limit]);
    res.json({ tasks: r.rows, page, limit });
  } catch (e) { next(e); }
});

app.post("/tasks", async (req, res, next) => {
  try {
    const { title, done = false } = req.body;
    if (typeof title !== "string") return res.status(422).json({ error: "title" });
    const r = await pool.query(`INSERT INTO tasks (title, done) VALUES ($1, $2) RETURNING ${COLS}`,
                               [title, done]);
    res.status(201).json(r.rows[0]);
  } catch (e) { next(e); }
});

app.put("/tasks/:id(\\d+)", async (req, res, next) => {
  try {
    const { title, done = false } = req.body;
    if (typeof title !== "string") return res.status(422).json({ error: "title" });
    const r = await pool.query(
      `UPDATE tasks SET title = $2, done = $3 WHERE id = $1 RETURNING ${COLS}`,
      [req.params.id, title, done]);
    if (r.rowCount === 0) return res.status(404).json({ error: "not found" });
    res.json(r.rows[0]);
  } catch (e) { next(e); }
});

app.listen(Number(port), "127.0.0.1");
