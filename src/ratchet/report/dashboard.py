"""``ratchet dashboard``: a local web page that follows the runs of a repository as they go.

A small Starlette app over the same data as the report (:mod:`ratchet.report.data`): the page
polls a JSON view of each run it shows. It only reads: the ledger, the logs, git. It listens on
127.0.0.1 unless told otherwise, because it shows diffs and output to whoever can reach it.

A poll does not grow with the run: each run's read model is kept (a :class:`RunFollower`) and read
again only when the ledger's revision of the run moved; the page sends the cursor of its last
answer (``?after=<last id>&revision=R&token=T``) and gets only the rows it lacks, and it asks less
often while nothing changes (up to every ``MAX_REFRESH_S``).
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ratchet.ledger import Ledger
from ratchet.project import Project, ProjectError
from ratchet.report import require
from ratchet.report.data import RunFollower, experiment_diff, output_tail
from ratchet.report.html import environment, finite_json, json_for_script

if TYPE_CHECKING:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response

FEATURE = "ratchet dashboard"
# How often the page asks for news, in seconds; while nothing changes it waits twice as long after
# each quiet answer, up to MAX_REFRESH_S.
REFRESH_S = 1.0
MAX_REFRESH_S = 8.0


def create_app(root: Path, *, refresh: float = REFRESH_S, y_scale: str = "auto") -> Starlette:
    """The dashboard of the repository at ``root``; ``y_scale``: its plots' y axis (see ``Y_SCALES``)."""
    require("starlette", FEATURE)
    from starlette.applications import Starlette
    from starlette.responses import HTMLResponse, JSONResponse
    from starlette.routing import Route

    project = Project.find(root)
    followers: dict[str, RunFollower] = {}

    def follower(name: str) -> RunFollower:
        found = followers.get(name)
        if found is None:
            found = followers.setdefault(name, RunFollower(project.root, name, y_scale=y_scale))
        return found

    def open_ledger() -> Ledger | None:
        try:
            return project.ledger()
        except ProjectError:  # no run has started yet: the page waits for one
            return None

    def page(request: Request) -> Response:
        html = environment().get_template("dashboard.html.j2").render(
            repository=str(project.root),
            config=json_for_script({"refresh_ms": int(refresh * 1000), "max_refresh_ms": int(max(refresh, MAX_REFRESH_S) * 1000)}),
        )
        return HTMLResponse(html, headers={"Cache-Control": "no-store"})

    def runs(request: Request) -> Response:
        ledger = open_ledger()
        listed: list[dict[str, Any]] = []
        if ledger is not None:
            try:
                for info in ledger.runs():
                    view = follower(info.name).view(ledger, info)
                    listed.append({
                        "name": info.name, "branch": info.branch, "metric": info.metric_name,
                        "direction": info.direction, "created": info.created, "experiments": view.experiment_count,
                        "active": view.active,
                    })  # fmt: skip
            finally:
                ledger.close()
        return _json({"repository": str(project.root), "runs": listed})

    def run(request: Request) -> Response:
        ledger = open_ledger()
        if ledger is None:
            return _json({"error": "no run yet"}, 404)
        try:
            info = ledger.get_run(request.path_params["run"])
            if info is None:
                return _json({"error": f"no run named {request.path_params['run']!r}"}, 404)
            query = request.query_params
            poll = follower(info.name).poll(
                ledger, info, after=_int(query.get("after")), revision=_int(query.get("revision")), token=query.get("token")
            )
            return _json(poll.data, checked=True)
        finally:
            ledger.close()

    def experiment(request: Request) -> Response:
        ledger = open_ledger()
        if ledger is None:
            return _json({"error": "no run yet"}, 404)
        try:
            found = ledger.experiment(request.path_params["run"], request.path_params["id"])
        finally:
            ledger.close()
        if found is None:
            return _json({"error": "no such experiment"}, 404)
        return _json({**found.to_json(), "diff": experiment_diff(project.root, found), "output_tail": output_tail(found)})

    def _json(data: Any, status: int = 200, *, checked: bool = False) -> Response:
        # checked: a poll's rows are made JSON-safe once, when they are read, not at every answer.
        return JSONResponse(data if checked else finite_json(data), status_code=status, headers={"Cache-Control": "no-store"})

    return Starlette(
        routes=[
            Route("/", page),
            Route("/api/runs", runs),
            Route("/api/runs/{run:str}", run),
            Route("/api/runs/{run:str}/experiments/{id:int}", experiment),
        ]
    )


def _int(value: str | None) -> int | None:
    try:
        return None if value is None else int(value)
    except ValueError:
        return None  # a cursor that is no number: answer everything


def listen(host: str, port: int) -> socket.socket:
    """A listening socket; port 0 takes any free one (the URL printed says which)."""
    family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
        sock.listen(128)
    except OSError:
        sock.close()
        raise
    return sock


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"


def is_loopback(host: str) -> bool:
    """Whether every address ``host`` names is this machine's loopback (127.0.0.0/8, ::1)."""
    try:
        addresses = {str(info[4][0]) for info in socket.getaddrinfo(host, None)}
        return all(ipaddress.ip_address(address.split("%")[0]).is_loopback for address in addresses)
    except (OSError, ValueError):
        return False


def serve(
    root: Path, host: str, port: int, *, ready: Callable[[str], None], refresh: float = REFRESH_S, y_scale: str = "auto"
) -> None:
    """Serve the dashboard until Ctrl-C. ``ready`` gets the URL once the socket listens."""
    uvicorn = require("uvicorn", FEATURE)
    app = create_app(root, refresh=refresh, y_scale=y_scale)
    sock = listen(host, port)
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
    server = uvicorn.Server(config)
    ready(url_of(sock))
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
