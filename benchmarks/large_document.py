"""Peak memory of one large document through Carnet's HTTP API: ITI-105 publish, then ITI-68 retrieve.

Starts ``carnet serve`` (one process) on a fresh PostgreSQL database, publishes one PDF of ``--megabytes`` MB as a
client would (a DocumentReference with the content inline, base64) and retrieves it, and reads the server's peak
resident memory (``VmHWM``, reset before each phase through ``/proc/PID/clear_refs``) above its resident memory at
rest. With ``--blob-url s3://…`` the server keeps contents in that object store (the AWS settings of this process
are passed on); by default, local files in the var dir.

    python benchmarks/large_document.py --megabytes 100
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))
sys.path.insert(0, str(HERE))

import load  # noqa: E402  (the load benchmark's set-up helpers)

DB = "carnet_large_document"
MIB = 1024 * 1024


def rss_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} for process {pid}")


def reset_peak(pid: int) -> None:
    Path(f"/proc/{pid}/clear_refs").write_text("5")  # Linux: the peak RSS (VmHWM) starts again from the current RSS


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--megabytes", type=int, default=100, help="size of the document (MB of 10^6 bytes)")
    p.add_argument("--blob-url", default=None, help="CARNET_BLOB_URL for the server (default: local files)")
    p.add_argument("--output", default=None, help="write the figures as JSON there")
    a = p.parse_args(argv)

    from carnet.context import run
    from carnet.db.migrate import upgrade
    from carnet.dossier import service as dossiers

    size = a.megabytes * 1_000_000
    var_dir = Path(tempfile.mkdtemp(prefix="carnet-large-"))
    db_url = load.fresh_database(DB)
    upgrade(db_url)
    port = load.free_port()
    base = f"http://127.0.0.1:{port}"
    os.environ["CARNET_MAX_DOCUMENT_BYTES"] = str(size + MIB)
    if a.blob_url:
        os.environ["CARNET_BLOB_URL"] = a.blob_url
    services = load.make_services(db_url, var_dir, base)
    pro_id = load.ensure_reference_data(services)
    key = load.register_client(services)
    dossier_key, _ = run(services, load.pro_actor(), lambda ctx: dossiers.create(ctx, load.patient_resource(1)))
    services.engine.dispose()

    import httpx

    data = load.pdf_bytes("large", size)
    body = json.dumps(load.docref(f"urn:uuid:{uuid.uuid4()}", subject=f"Patient/{dossier_key}", data=data))
    server = load.start_server(db_url, var_dir, port, 1)
    try:
        pid = server.pid
        with httpx.Client(timeout=600) as http:
            import asyncio

            async def token() -> str:
                async with httpx.AsyncClient(timeout=60) as h:
                    return await load.get_token(h, key, base, pro_id)

            auth = {"Authorization": f"Bearer {asyncio.run(token())}"}
            http.get(f"{base}/fhir/metadata")  # warm: every module the requests below use is loaded
            rest = rss_kib(pid, "VmRSS")
            reset_peak(pid)
            t0 = time.perf_counter()
            r = http.post(f"{base}/fhir/DocumentReference", content=body,
                          headers={**auth, "Content-Type": "application/fhir+json"})
            publish_s = time.perf_counter() - t0
            r.raise_for_status()
            doc_id = r.json()["id"]
            publish_peak = rss_kib(pid, "VmHWM")
            del body
            server.terminate()  # a fresh process for the retrieval: freed memory is not always returned to the OS
            server.wait(15)
            server = load.start_server(db_url, var_dir, port, 1)
            pid = server.pid
            http.get(f"{base}/fhir/metadata")
            after_publish = rss_kib(pid, "VmRSS")
            reset_peak(pid)
            t0 = time.perf_counter()
            got = 0
            with http.stream("GET", f"{base}/fhir/Binary/{doc_id}", headers={**auth, "Accept": "application/pdf"}) as s:
                s.raise_for_status()
                for chunk in s.iter_bytes():
                    got += len(chunk)
            retrieve_s = time.perf_counter() - t0
            retrieve_peak = rss_kib(pid, "VmHWM")
    finally:
        server.terminate()
        server.wait(15)
    if got != size:
        raise SystemExit(f"retrieved {got} bytes, expected {size}")
    out: dict[str, Any] = {
        "document_mb": a.megabytes, "blob_store": a.blob_url or "local files",
        "server_rss_at_rest_mib": round(rest / 1024, 1),
        "publish_peak_above_rest_mib": round((publish_peak - rest) / 1024, 1),
        "retrieve_peak_above_rest_mib": round((retrieve_peak - after_publish) / 1024, 1),
        "request_body_mib": round(len(base64.b64encode(data)) / MIB, 1),
        "publish_s": round(publish_s, 2), "retrieve_s": round(retrieve_s, 2)}
    print(json.dumps(out, indent=2))
    if a.output:
        Path(a.output).write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
