"""Whole-message envelope encryption (carnet.blobs.crypto) against streamed (carnet.blobs.stream), in one run.

For each size, seal and open a document both ways and print the throughput (MB/s of plaintext, best of ``--repeat``
runs), the ratio of the streamed speed to the whole one, and the peak memory that tracemalloc traces for each
operation (a separate run, since tracing slows allocation down).  The streamed runs take their input in 64 KiB chunks
and hand their output on chunk by chunk (the sealed blob is collected once, outside the timed part, to be opened).
Sealing includes the SHA-256 of the plaintext (the ``document.sha256`` column) and of the blob (today's blob key) both
ways: the streamed sealer computes them on the fly, the whole-message path as the document service does.

    .venv/bin/python benchmarks/stream_crypto.py                 # 1 MB and 100 MB
    .venv/bin/python benchmarks/stream_crypto.py --sizes 1 20 --repeat 5
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import time
import tracemalloc
from collections.abc import Callable, Iterator

from carnet.blobs.crypto import KeyRing, open_sealed, seal
from carnet.blobs.stream import DEFAULT_SEGMENT_SIZE, open_any, open_stream, seal_stream

MB = 1000 * 1000
CHUNK = 64 * 1024
AAD = b"dossier/document"


def chunks_of(data: bytes, size: int = CHUNK) -> Iterator[memoryview]:
    view = memoryview(data)
    for i in range(0, len(view), size):
        yield view[i:i + size]


def best_time(run: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times)


def peak_of(run: Callable[[], object]) -> int:
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        run()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def drain(chunks: Iterator[bytes]) -> int:
    n = 0
    for piece in chunks:
        n += len(piece)
    return n


def measure(ring: KeyRing, size_mb: int, repeat: int) -> None:
    plaintext = os.urandom(size_mb * MB)
    sealed = seal(ring, plaintext, AAD)
    sealer = seal_stream(ring, chunks_of(plaintext), AAD)
    blob = b"".join(sealer)
    assert sealer.plaintext_sha256 == hashlib.sha256(plaintext).hexdigest()

    def whole_seal() -> object:  # what the document service does today: hash the plaintext, seal, hash the blob
        hashlib.sha256(plaintext).hexdigest()
        return hashlib.sha256(seal(ring, plaintext, AAD).ciphertext).hexdigest()

    def stream_seal() -> object:  # the sealer hashes both on the fly
        return drain(iter(seal_stream(ring, chunks_of(plaintext), AAD)))

    def whole_open() -> object:
        return open_sealed(ring, sealed, AAD)

    def stream_open() -> object:
        return drain(open_stream(ring, chunks_of(blob), sealer.wrapped_key, sealer.key_id, AAD))

    def any_open_whole() -> object:  # an old blob read in chunks through open_any
        return drain(open_any(ring, chunks_of(sealed.ciphertext), sealed.wrapped_key, sealed.key_id, AAD))

    rows = [("seal (+ SHA-256 of plaintext and blob)", whole_seal, stream_seal), ("open", whole_open, stream_open),
            ("open an old blob: open_sealed / open_any", whole_open, any_open_whole)]
    for name, whole, streamed in rows:
        t_whole, t_stream = best_time(whole, repeat), best_time(streamed, repeat)
        p_whole, p_stream = peak_of(whole), peak_of(streamed)
        print(f"| {size_mb} MB | {name} | {size_mb / t_whole:,.0f} | {size_mb / t_stream:,.0f} | "
              f"{t_whole / t_stream:.2f} | {p_whole / 2 ** 20:.1f} | {p_stream / 2 ** 20:.1f} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 100], help="document sizes in MB (10^6 bytes)")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    ring = KeyRing.generate()
    print(f"Python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} CPUs; "
          f"segment {DEFAULT_SEGMENT_SIZE // 1024} KiB, input/output chunks {CHUNK // 1024} KiB; best of {args.repeat}")
    print()
    print("| size | operation | whole MB/s | streamed MB/s | streamed speed / whole | whole peak MiB "
          "| streamed peak MiB |")
    print("|---:|---|---:|---:|---:|---:|---:|")
    for size_mb in args.sizes:
        measure(ring, size_mb, args.repeat)


if __name__ == "__main__":
    main()
