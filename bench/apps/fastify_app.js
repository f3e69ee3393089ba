// Fastify 5 (the fastest mainstream Node framework), the endpoints of Ember's bench app.
// Usage: node fastify_app.js PORT   (bench/run.py installs fastify@5 into bench/.node)
const fastify = require('fastify')({ logger: false });
fastify.get('/hello', async (req, reply) => { reply.type('text/plain; charset=utf-8'); return 'Hello, World!'; });
fastify.get('/json', async () => ({ message: 'Hello, World!' }));
fastify.get('/users/:id', async (req) => ({ id: parseInt(req.params.id, 10) }));
fastify.listen({ port: parseInt(process.argv[2], 10), host: '127.0.0.1', backlog: 4096 });
