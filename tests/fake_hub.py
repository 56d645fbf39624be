"""A loopback stand-in for the parts of the Hugging Face Hub HTTP API that a publish (and a download)
uses, so the upload path is tested end to end with the installed huggingface_hub and no network.

Answered (huggingface_hub 2.x):
- ``POST /api/repos/create``                        create_repo (409 when it exists: exist_ok handles it)
- ``POST /api/validate-yaml``                        the README front matter check made before an upload
- ``POST /api/{type}s/{repo}/branch/{branch}``       create_branch
- ``POST /api/{type}s/{repo}/preupload/{rev}``       every file gets ``uploadMode: "regular"``: the file is
  then sent base64-encoded inside the commit, so neither Xet nor LFS storage is negotiated. (With
  ``"lfs"``, huggingface_hub 2.x with hf_xet installed would upload through Xet storage, which a
  loopback stand-in cannot serve; the real Hub picks the mode per file and the client follows it.)
- ``POST /api/{type}s/{repo}/commit/{rev}``          the NDJSON commit: header, file, deletedFile lines
- ``GET  /api/{type}s/{repo}/tree/{rev}``            the file listing (delete_patterns, snapshot_download)
- ``GET  /api/{type}s/{repo}[/revision/{rev}]``      repo_info (snapshot_download)
- ``HEAD|GET /{type}s/{repo}/resolve/{rev}/{path}``  file downloads
Writes need ``Authorization: Bearer <token>``; every request is recorded for the test to inspect.
The server stops answering (HTTP 503) after ``max_requests`` so a client loop cannot run away.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import yaml
from loopback import LoopbackServer

__all__ = ["FakeHub", "Recorded", "Repo"]


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes


@dataclass
class Repo:
    repo_type: str
    repo_id: str
    private: bool
    branches: dict[str, dict[str, bytes]] = field(default_factory=lambda: {"main": {}})
    heads: dict[str, str] = field(default_factory=lambda: {"main": "0" * 40})
    commits: list[dict[str, Any]] = field(default_factory=list)


def _blob_oid(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


class FakeHub:
    """``with FakeHub(token) as hub: HfApi(endpoint=hub.endpoint) ...``"""

    def __init__(self, token: str, *, max_requests: int = 500):
        self.token = token
        self.max_requests = max_requests
        self.requests: list[Recorded] = []
        self.repos: dict[tuple[str, str], Repo] = {}
        self._lock = threading.Lock()
        self._loop: LoopbackServer | None = None

    # -- lifecycle ------------------------------------------------------------------------------
    def __enter__(self) -> FakeHub:
        hub = self

        class Handler(_Handler):
            fake = hub

        self._loop = LoopbackServer(Handler)
        return self

    def __exit__(self, *exc: Any) -> None:
        assert self._loop is not None
        self._loop.stop()

    @property
    def endpoint(self) -> str:
        assert self._loop is not None
        return self._loop.base_url

    def files(self, repo_id: str, repo_type: str = "dataset", branch: str = "main") -> dict[str, bytes]:
        return dict(self.repos[(repo_type, repo_id)].branches[branch])


class _Handler(BaseHTTPRequestHandler):
    fake: FakeHub
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:  # keep test output clean
        pass

    # -- plumbing -------------------------------------------------------------------------------
    def _send(self, status: int, payload: Any = None, *, headers: dict[str, str] | None = None,
              raw: bytes | None = None, head: bool = False) -> None:
        body = raw if raw is not None else json.dumps(payload if payload is not None else {}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json" if raw is None else "application/octet-stream")
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def _error(self, status: int, message: str) -> None:
        self._send(status, {"error": message}, headers={"X-Error-Message": message})

    def _record(self) -> Recorded:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        parts = urlsplit(self.path)
        rec = Recorded(self.command, unquote(parts.path), parse_qs(parts.query),
                       {k.lower(): v for k, v in self.headers.items()}, body)
        with self.fake._lock:
            self.fake.requests.append(rec)
        return rec

    def _authorised(self, rec: Recorded) -> bool:
        return rec.headers.get("authorization") == f"Bearer {self.fake.token}"

    def _unauthorised(self, rec: Recorded) -> None:
        # Echo the presented credential, as careless servers do: the client must scrub it from its errors.
        return self._error(401, f"Invalid credentials in Authorization header: {rec.headers.get('authorization')!r}")

    def _repo(self, repo_type: str, repo_id: str) -> Repo | None:
        return self.fake.repos.get((repo_type, repo_id))

    def do_HEAD(self) -> None:
        self._dispatch(head=True)

    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def _dispatch(self, head: bool = False) -> None:
        rec = self._record()
        if len(self.fake.requests) > self.fake.max_requests:
            return self._error(503, "fake hub: request budget exhausted")
        parts = rec.path.strip("/").split("/")
        try:
            if rec.method == "POST" and rec.path == "/api/repos/create":
                return self._create_repo(rec)
            if rec.method == "POST" and rec.path == "/api/validate-yaml":
                return self._validate_yaml(rec)
            if parts[0] == "api" and len(parts) >= 4 and parts[1] in ("datasets", "models", "spaces"):
                return self._api(rec, parts[1][:-1], f"{parts[2]}/{parts[3]}", parts[4:])
            if len(parts) >= 6 and parts[0] in ("datasets", "spaces") and parts[3] == "resolve":
                return self._resolve(rec, parts[0][:-1], f"{parts[1]}/{parts[2]}", parts[4], "/".join(parts[5:]), head)
            return self._error(404, f"fake hub: no route for {rec.method} {rec.path}")
        except Exception as exc:  # a bug in the fake must show up as a failing request, not a hang
            return self._error(500, f"fake hub: {type(exc).__name__}: {exc}")

    # -- endpoints ------------------------------------------------------------------------------
    def _create_repo(self, rec: Recorded) -> None:
        if not self._authorised(rec):
            return self._unauthorised(rec)
        payload = json.loads(rec.body or b"{}")
        repo_type = payload.get("type") or "model"
        repo_id = f"{payload['organization']}/{payload['name']}" if payload.get("organization") else payload["name"]
        key = (repo_type, repo_id)
        prefix = "" if repo_type == "model" else f"{repo_type}s/"
        url = f"{self.fake.endpoint}/{prefix}{repo_id}"
        if key in self.fake.repos:  # the Hub names the existing repo's url in its 409 reply
            return self._send(409, {"error": "You already created this repo", "url": url})
        private = payload.get("private", payload.get("visibility") == "private")
        self.fake.repos[key] = Repo(repo_type, repo_id, bool(private))
        return self._send(200, {"url": url, "name": repo_id})

    def _validate_yaml(self, rec: Recorded) -> None:
        """The README front matter must parse, and a dataset card's ``configs`` must name their files."""
        payload = json.loads(rec.body)
        text = payload.get("content", "")
        errors: list[str] = []
        if text.startswith("---\n"):
            try:
                meta = yaml.safe_load(text[4:text.index("\n---", 4)])
            except (ValueError, yaml.YAMLError) as exc:
                meta, errors = None, [f"front matter: {exc}"]
            if meta is not None and not isinstance(meta, dict):
                errors.append("front matter must be a mapping")
            elif isinstance(meta, dict) and payload.get("repoType") == "dataset":
                for cfg in meta.get("configs") or []:
                    if not cfg.get("config_name") or not cfg.get("data_files"):
                        errors.append(f"config {cfg!r} needs config_name and data_files")
        if errors:
            return self._send(400, {"errors": [{"message": m} for m in errors]})
        return self._send(200, {"errors": [], "warnings": []})

    def _api(self, rec: Recorded, repo_type: str, repo_id: str, rest: list[str]) -> None:
        repo = self._repo(repo_type, repo_id)
        if repo is None or (repo.private and not self._authorised(rec)):
            return self._send(404, {"error": "Repository not found"}, headers={"X-Error-Code": "RepoNotFound"})
        action = rest[0] if rest else "revision"
        rev = rest[1] if len(rest) > 1 else "main"
        if action in ("branch", "preupload", "commit") and not self._authorised(rec):
            return self._unauthorised(rec)
        if action == "branch" and rec.method == "POST":
            if rev in repo.branches:
                return self._error(409, "Reference already exists")
            repo.branches[rev] = dict(repo.branches["main"])
            repo.heads[rev] = repo.heads["main"]
            return self._send(200, {})
        branch = self._branch(repo, rev)
        if branch is None:
            return self._send(404, {"error": f"Revision Not Found for {rev}"}, headers={"X-Error-Code": "RevisionNotFound"})
        if action == "preupload" and rec.method == "POST":
            files = json.loads(rec.body)["files"]
            return self._send(200, {"files": [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False}
                                              for f in files]})
        if action == "commit" and rec.method == "POST":
            return self._commit(repo, branch, rec)
        if action == "tree" and rec.method == "GET":
            return self._send(200, [{"type": "file", "path": p, "size": len(d), "oid": _blob_oid(d)}
                                    for p, d in sorted(repo.branches[branch].items())])
        if action == "revision" and rec.method == "GET":
            return self._send(200, {
                "id": repo.repo_id, "sha": repo.heads[branch], "private": repo.private,
                "siblings": [{"rfilename": p} for p in sorted(repo.branches[branch])],
            })
        return self._error(404, f"fake hub: no route for {rec.method} {rec.path}")

    def _branch(self, repo: Repo, rev: str) -> str | None:
        rev = unquote(rev)
        if rev in repo.branches:
            return rev
        return next((b for b, sha in repo.heads.items() if sha == rev), None)

    def _commit(self, repo: Repo, branch: str, rec: Recorded) -> None:
        if rec.headers.get("content-type") != "application/x-ndjson":
            return self._error(400, "commit payload must be NDJSON")
        lines = [json.loads(line) for line in rec.body.splitlines() if line.strip()]
        if not lines or lines[0].get("key") != "header":
            return self._error(400, "commit payload must start with a header line")
        files = dict(repo.branches[branch])
        added, deleted = [], []
        for line in lines[1:]:
            key, value = line["key"], line["value"]
            if key == "file":
                if value.get("encoding") != "base64":
                    return self._error(400, "regular files must be base64-encoded")
                files[value["path"]] = base64.b64decode(value["content"])
                added.append(value["path"])
            elif key == "deletedFile":
                if value["path"] not in files:
                    return self._error(400, f"cannot delete missing file {value['path']}")
                del files[value["path"]]
                deleted.append(value["path"])
            else:  # lfsFile / deletedFolder were never offered by this stand-in
                return self._error(400, f"fake hub: unsupported commit operation {key!r}")
        repo.branches[branch] = files
        sha = hashlib.sha1(json.dumps([repo.heads[branch], sorted(added), sorted(deleted)]).encode()
                           + b"".join(files[p] for p in sorted(added))).hexdigest()
        repo.heads[branch] = sha
        repo.commits.append({"branch": branch, "summary": lines[0]["value"].get("summary"),
                             "description": lines[0]["value"].get("description"), "added": added, "deleted": deleted,
                             "oid": sha})
        prefix = "" if repo.repo_type == "model" else f"{repo.repo_type}s/"
        return self._send(200, {"commitUrl": f"{self.fake.endpoint}/{prefix}{repo.repo_id}/commit/{sha}",
                                "commitOid": sha, "pullRequestUrl": None})

    def _resolve(self, rec: Recorded, repo_type: str, repo_id: str, rev: str, path: str, head: bool) -> None:
        repo = self._repo(repo_type, repo_id)
        if repo is None or (repo.private and not self._authorised(rec)):
            return self._send(404, {"error": "Repository not found"}, headers={"X-Error-Code": "RepoNotFound"})
        branch = self._branch(repo, rev)
        if branch is None or path not in repo.branches[branch]:
            return self._send(404, {"error": "Entry not found"}, headers={"X-Error-Code": "EntryNotFound"})
        data = repo.branches[branch][path]
        return self._send(200, raw=data, head=head,
                          headers={"X-Repo-Commit": repo.heads[branch], "ETag": f'"{_blob_oid(data)}"'})
