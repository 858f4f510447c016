// todos-pg: a JSON API over PostgreSQL (postgres-nio) with one route to an upstream
// (AsyncHTTPClient), all on async routes of herdd's router. Configured by environment:
//
//   TODOS_PG_HOST=/run/postgresql (a unix socket directory) or 127.0.0.1, TODOS_PG_PORT=5432,
//   TODOS_PG_USER=todos, TODOS_PG_DATABASE=todos, TODOS_PG_POOL=8 (connections per worker),
//   TODOS_PG_POOL_MIN=TODOS_PG_POOL (kept open when idle), TODOS_PG_KEEPALIVE=0 (seconds; 0: off),
//   TODOS_UPSTREAM=127.0.0.1:8081 (for GET /proxy/**; optional)
//
//   todos-pg --listen 127.0.0.1:8080 --workers 2
//
// The master only checks the configuration; each worker opens its own pool (TodosServices.swift),
// on an event loop thread of its own: two busy threads per worker, so the default --workers is
// half the online CPUs (threadsPerWorker: 2; docs/postgres.md, "Sizing").
import Herd
import TodosPG

HerdServer.main(
    name: "todos-pg", version: "0.1.0", abstract: "Todos JSON API over PostgreSQL (postgres-nio), on herdd.",
    threadsPerWorker: 2,
    validate: { _ in _ = try TodosConfig.fromEnvironment() },
    router: { _ in makeTodosRouter(try TodosServices.start(TodosConfig.fromEnvironment())) })
