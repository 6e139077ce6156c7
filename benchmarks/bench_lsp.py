"""Diagnostics latency of the language server after a one-character edit.

    PYTHONPATH=. python benchmarks/bench_lsp.py            # 30 edits per shipped policy
    PYTHONPATH=. python benchmarks/bench_lsp.py --edits 100

For each shipped policy (policies/*.policy), each edit inserts one space at
the end of a different line (so no two texts are alike and no cache of a
text can answer), then measures until the diagnostics are known:

  * in-process: `language_features.diagnostics_for(text, path)`: load with
    includes, check, lint (what the server runs per edit);
  * over stdio: `didChange` sent to `python -m policydsl lsp` until its
    `publishDiagnostics` for that version arrives, with the debounce set to
    0 (the work plus the transport), and with the default debounce
    (what an editor sees after the last keystroke).

Prints median and p95 in milliseconds per policy and setting.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from pathlib import Path

from lsprotocol import types
from pygls.lsp.client import LanguageClient

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from policydsl import language_features as lf  # noqa: E402
from policydsl.lsp import DEBOUNCE_SECONDS  # noqa: E402


def edits(text: str, count: int) -> list[str]:
    lines = text.split("\n")
    out = []
    for step in range(count):
        number = step % len(lines)
        changed = [*lines]
        changed[number] += " "
        out.append("\n".join(changed))
    return out


def summary(samples: list[float]) -> str:
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return f"median {statistics.median(ordered) * 1000:7.1f} ms   p95 {p95 * 1000:7.1f} ms"


def in_process(path: Path, count: int) -> list[float]:
    texts = edits(path.read_text(encoding="utf-8"), count)
    lf.diagnostics_for(texts[0], str(path))  # warm: grammar, calendars, zones
    samples = []
    for text in texts:
        start = time.perf_counter()
        lf.diagnostics_for(text, str(path))
        samples.append(time.perf_counter() - start)
    return samples


async def over_stdio(paths: list[Path], count: int, debounce_ms: float) -> dict[Path, list[float]]:
    client = LanguageClient("bench", "0")
    arrived: dict[str, asyncio.Future[None]] = {}

    @client.feature(types.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
    def published(params: types.PublishDiagnosticsParams) -> None:
        waiting = arrived.pop(f"{params.uri}#{params.version}", None)
        if waiting is not None and not waiting.done():
            waiting.set_result(None)

    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    await client.start_io(sys.executable, "-m", "policydsl", "lsp", env=env)
    await client.initialize_async(types.InitializeParams(
        capabilities=types.ClientCapabilities(),
        initialization_options={"diagnostics": {"debounce": debounce_ms}}))
    client.initialized(types.InitializedParams())
    loop = asyncio.get_running_loop()
    results: dict[Path, list[float]] = {}
    for path in paths:
        uri = path.resolve().as_uri()
        text = path.read_text(encoding="utf-8")
        opened: asyncio.Future[None] = loop.create_future()
        arrived[f"{uri}#1"] = opened
        client.text_document_did_open(types.DidOpenTextDocumentParams(
            text_document=types.TextDocumentItem(uri=uri, language_id="policy", version=1, text=text)))
        await asyncio.wait_for(opened, 30)
        samples = []
        for version, changed in enumerate(edits(text, count), start=2):
            done = loop.create_future()
            arrived[f"{uri}#{version}"] = done
            start = time.perf_counter()
            client.text_document_did_change(types.DidChangeTextDocumentParams(
                text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=version),
                content_changes=[types.TextDocumentContentChangeWholeDocument(text=changed)]))
            await asyncio.wait_for(done, 30)
            samples.append(time.perf_counter() - start)
        results[path] = samples
    await client.shutdown_async(None)
    client.exit(None)
    await client.stop()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--edits", type=int, default=30)
    args = parser.parse_args()
    paths = sorted((ROOT / "policies").glob("*.policy"))
    print(f"{args.edits} one-character edits per policy; python {sys.version.split()[0]}, {os.cpu_count()} cores")
    stdio0 = asyncio.run(over_stdio(paths, args.edits, 0))
    stdio_default = asyncio.run(over_stdio(paths, args.edits, DEBOUNCE_SECONDS * 1000))
    for path in paths:
        print(f"{path.name} ({len(path.read_text(encoding='utf-8').splitlines())} lines)")
        print(f"  in-process diagnostics_for        {summary(in_process(path, args.edits))}")
        print(f"  stdio, debounce 0                 {summary(stdio0[path])}")
        print(f"  stdio, debounce {DEBOUNCE_SECONDS * 1000:.0f} ms (default) {summary(stdio_default[path])}")


if __name__ == "__main__":
    main()
