"""Every server the tests, benchmarks and scripts start listens on a port the operating system chose (bind to port 0 and
read it back: ``free_port()``), so two test runs can share a machine. A syntax-tree scan of their sources fails on a
port written as a number where a server is started or reached: a ``port=``/``*_port=`` argument, a ``bind((host,
port))``, a ``--port``/``-p`` command-line value, or a ``port``/``PORT`` name set to a number."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCANNED = ("tests", "benchmarks", "scripts", "examples")
PORT_FLAGS = ("--port", "-p")
# Deliberate, with the reason: a benchmark's server keeps one base URL across runs (its fill writes it into the data).
ALLOWED = {("benchmarks/pro_portal.py", "--port default 18471")}


def _number(node: ast.AST | None) -> int | None:
    """The port a literal names (an int, or a string of digits), None for anything else; 0 means "any" and passes."""
    if isinstance(node, ast.Constant):
        value = node.value
        if isinstance(value, bool):
            return None
        if isinstance(value, int):
            return value or None
        if isinstance(value, str) and value.isdigit():
            return int(value) or None
    return None


def _is_port_name(name: str) -> bool:
    return name.lower() == "port" or name.lower().endswith("_port")


def _command_line(items: list[ast.expr], line: int) -> list[str]:
    found = []
    for flag, value in zip(items, items[1:], strict=False):
        if isinstance(flag, ast.Constant) and flag.value in PORT_FLAGS and _number(value):
            found.append(f"line {line}: {flag.value} {_number(value)}")
    for item in items:
        if isinstance(item, ast.Constant) and isinstance(item.value, str) and item.value.startswith("--port=") and \
                _number(ast.Constant(item.value[7:])):
            found.append(f"line {line}: {item.value}")
    return found


def fixed_ports(source: str) -> list[str]:
    """Where ``source`` writes a fixed port: ``"line N: what"`` for each."""
    found: list[str] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call):
            for kw in node.keywords:
                if kw.arg and _is_port_name(kw.arg) and _number(kw.value):
                    found.append(f"line {node.lineno}: {kw.arg}={_number(kw.value)}")
            func = node.func
            if isinstance(func, ast.Attribute) and func.attr in ("bind", "connect", "connect_ex") and node.args:
                address = node.args[0]
                if isinstance(address, ast.Tuple) and len(address.elts) >= 2 and _number(address.elts[1]):
                    found.append(f"line {node.lineno}: {func.attr}(..., {_number(address.elts[1])})")
            if isinstance(func, ast.Attribute) and func.attr == "add_argument" and node.args:
                flag = node.args[0]
                if isinstance(flag, ast.Constant) and flag.value == "--port":
                    default = next((kw.value for kw in node.keywords if kw.arg == "default"), None)
                    if _number(default):
                        found.append(f"line {node.lineno}: --port default {_number(default)}")
        if isinstance(node, ast.List | ast.Tuple | ast.Call):  # a command line, as a list or as arguments
            found += _command_line(node.elts if isinstance(node, ast.List | ast.Tuple) else node.args, node.lineno)
        if isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                name = target.id if isinstance(target, ast.Name) else \
                    target.attr if isinstance(target, ast.Attribute) else None
                if name and _is_port_name(name) and _number(node.value):
                    found.append(f"line {node.lineno}: {name} = {_number(node.value)}")
    return found


@pytest.mark.parametrize("snippet", [
    "uvicorn.Config(app, host='127.0.0.1', port=8000)",
    "Controller(handler, hostname='127.0.0.1', port=1025)",
    "s.bind(('127.0.0.1', 9000))",
    "subprocess.Popen(['moto_server', '-H', '127.0.0.1', '-p', '5000'])",
    "subprocess.Popen(carnet('serve', '--port', '8000'))",
    "subprocess.run(['carnet', 'serve', '--port=8001'])",
    "PORT = 8025",
    "self.port = 1025",
    "port: int = 8000",
    "Settings(smtp_port=2525)",
    "p.add_argument('--port', type=int, default=8000)",
])
def test_the_scan_finds_a_fixed_port(snippet: str) -> None:
    assert fixed_ports(snippet), snippet


@pytest.mark.parametrize("snippet", [
    "s.bind(('127.0.0.1', 0))",
    "uvicorn.Config(app, host='127.0.0.1', port=free_port())",
    "Controller(inbox, hostname=inbox.host, port=inbox.port)",
    "subprocess.Popen(carnet('serve', '--port', str(port)))",
    "self.port = 0",
    "pytest.main(['-p', 'no:cacheprovider'])",
])
def test_the_scan_passes_a_port_chosen_by_the_system(snippet: str) -> None:
    assert fixed_ports(snippet) == []


def test_no_server_in_the_tests_listens_on_a_fixed_port() -> None:
    found = []
    for folder in SCANNED:
        for path in sorted((ROOT / folder).rglob("*.py")):
            where = path.relative_to(ROOT).as_posix()
            found += [f"{where} {hit}" for hit in fixed_ports(path.read_text(encoding="utf-8"))
                      if (where, hit.split(": ", 1)[1]) not in ALLOWED]
    assert found == [], "bind to port 0 / use free_port() instead of:\n" + "\n".join(found)
