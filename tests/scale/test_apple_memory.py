"""An Apple Health export of realistic size (200,000 CGM records, about 50 MB of XML) streams through
``carnet.measures.apple.readings`` with a bounded peak resident memory: measured in a fresh process (``ru_maxrss``),
the growth while reading stays a small fraction of the XML, where a parser holding the tree would need several times
its size."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

from tests.measures.apple_export import write_export

PROBE = """
import resource, sys
from carnet.measures import apple
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
archive, member = apple.open_export(sys.argv[1])
with archive, member:
    n = sum(1 for _ in apple.readings(member, apple.Report()))
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(n, (after - before) * 1024)
"""


def test_a_200k_record_export_streams_in_bounded_memory(tmp_path: Path) -> None:
    path = tmp_path / "export.zip"
    write_export(path, 200_000, extra=False)
    xml_size = zipfile.ZipFile(path).getinfo("apple_health_export/export.xml").file_size
    out = subprocess.run([sys.executable, "-c", PROBE, str(path)], capture_output=True, text=True, check=True,
                         timeout=300)
    n, growth = (int(x) for x in out.stdout.split())
    assert n == 200_000 and xml_size > 40_000_000
    assert growth < 20_000_000, (growth, xml_size)
