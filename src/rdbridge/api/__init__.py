"""The read-only Results API: FastAPI over the registry and the catalog builders (GET and HEAD only).

`app.create_app(settings)` builds the app; `server.serve(...)` runs it under uvicorn, bound to 127.0.0.1 unless
asked otherwise. The API never imports or runs factor code and never serves a file the registry does not list.
Nothing is imported here, so the CLI can register `serve` without loading FastAPI.
"""
