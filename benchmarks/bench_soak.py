"""Soak: a real `cir serve` under mixed and hostile load while `cir index` rewrites the store and is killed.

    python benchmarks/bench_soak.py --minutes 1            # a quick check (about 2 minutes in all)
    python benchmarks/bench_soak.py --write                # 10 minutes; replaces the section in RESULTS.md

For ``--minutes``, ``--clients`` threads (16) send, each on its own keep-alive connection over loopback:

* searches (half): ``POST /search`` forms and ``POST /search/json``, strategies image / text / sum / arithmetic,
  on a random stored item (the id range read from ``/health``: a removal in between may make it a 404);
* thumbnails (a quarter): random items at sizes 64 / 128 / 256 (the first of each is rendered, later ones cached);
* hostile requests (a quarter): a foreign Host header, an unknown method, a lax id (``1_0``), an EPS declared as
  ``image/png``, a decompression-bomb PNG header, a missing API key, a Content-Length of 1 GB, broken JSON, a path
  traversal; each has the status it must get.

A slow-loris thread keeps opening connections that send a request header one byte a second: the server must close
each of them (its header deadline). Meanwhile a mutator adds, rewrites and removes image files and runs
``cir index`` after each change, SIGKILLing ``--kills`` of those runs (2) once they have committed a batch. At the
end one last ``cir index`` completes the store, and it is compared with a store built from scratch from the same
files (same paths, same content hashes, same vectors). The server's RSS is sampled every second.

Reported: requests by kind, 5xx (target 0), unexpected statuses, p50/p99 per kind, RSS over time (per tenth of the
run), slow connections closed, index runs and kills, ``/metrics`` size, and whether the store equals the clean run.
"""

from __future__ import annotations

import os

if __name__ == "__main__":  # (imported by a test, it leaves the test process's environment alone)
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # see bench_server.py: two OpenMP runtimes on few cores

import argparse  # noqa: E402
import io  # noqa: E402
import json  # noqa: E402
import random  # noqa: E402
import signal  # noqa: E402
import socket  # noqa: E402
import sqlite3  # noqa: E402
import struct  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
import zlib  # noqa: E402
from pathlib import Path  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # this checkout's cir, wherever it is run from

import numpy as np  # noqa: E402

from benchmarks._common import free_port, machine_description, percentiles, start_server, write_section  # noqa: E402

KEY = "soak-benchmark-key"
TEXTS = ("add a dog", "remove the cat", "the same but with an umbrella", "take out the laptop and add a basket",
         "a teddy bear instead", "add a cat", "without the dog", "make it red")
STRATEGIES = ("image", "text", "sum", "arithmetic")
THUMB_SIZES = (64, 128, 256)


# --- the files ----------------------------------------------------------------------------------------------------
def write_image(path: Path, seed: int, large: bool) -> None:
    from PIL import Image, ImageDraw

    rng = random.Random(seed)
    size = (1600, 1200) if large else (rng.randrange(96, 320), rng.randrange(96, 320))
    image = Image.new("RGB", size, tuple(rng.randrange(256) for _ in range(3)))
    draw = ImageDraw.Draw(image)
    for _ in range(6):
        x, y = rng.randrange(size[0]), rng.randrange(size[1])
        draw.rectangle([x, y, x + size[0] // 4, y + size[1] // 4], fill=tuple(rng.randrange(256) for _ in range(3)))
    if path.suffix == ".jpg":
        image.save(path, "JPEG", quality=85)
    else:
        image.save(path, "PNG")


class Files:
    """The indexed folder: adds, rewrites and removals with fresh seeds (one writer thread)."""

    def __init__(self, folder: Path, seed: int) -> None:
        self.folder = folder
        self.rng = random.Random(seed)
        self.next_seed = 0
        folder.mkdir(parents=True, exist_ok=True)

    def add(self, n: int) -> None:
        for _ in range(n):
            self.next_seed += 1
            ext = ".jpg" if self.next_seed % 2 else ".png"
            write_image(self.folder / f"img{self.next_seed:05d}{ext}", self.next_seed, large=self.next_seed % 10 == 0)

    def change(self, n: int) -> None:
        for path in self.rng.sample(sorted(self.folder.iterdir()), min(n, len(list(self.folder.iterdir())))):
            self.next_seed += 1
            write_image(path, 10_000 + self.next_seed, large=False)

    def remove(self, n: int) -> None:
        paths = sorted(self.folder.iterdir())
        for path in self.rng.sample(paths, min(n, max(len(paths) - 10, 0))):
            path.unlink()


def cir_env(cache: Path) -> dict:
    return {**os.environ, "CIR_CACHE_DIR": str(cache),
            "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}


def index_command(folder: Path, store: Path, backbone: str) -> list[str]:
    return [sys.executable, "-m", "cir.cli", "index", str(folder), "--store", str(store), "--backbone", backbone,
            "--batch-size", "8", "--workers", "1", "--no-progress"]


def committed_rows(store: Path) -> int:
    try:
        with sqlite3.connect(f"file:{store / 'items.sqlite'}?mode=ro", uri=True, timeout=1) as conn:
            return int(conn.execute("SELECT COUNT(*) FROM items").fetchone()[0])
    except sqlite3.Error:
        return -1


# --- the server ---------------------------------------------------------------------------------------------------




def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


# --- hostile requests: (name, function(http, url) -> status, the statuses it may get) -----------------------------
def eps_bytes() -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (16, 16), "red").save(buf, "EPS")
    return buf.getvalue()


def bomb_png(width: int = 100_000, height: int = 100_000) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b"")


def raw_request(url: str, data: bytes) -> int:
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(data)
        answer = b""
        while b"\r\n" not in answer:
            chunk = sock.recv(4096)
            if not chunk:
                break
            answer += chunk
    return int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/") else 0


def hostile_requests(eps: bytes, bomb: bytes):
    return [
        ("foreign Host", lambda h, u: h.get("/items/0", headers={"Host": "attacker.example"}).status_code, {421}),
        ("unknown method", lambda h, u: h.request("PROPFIND", "/search").status_code, {405}),
        ("method token", lambda h, u: h.request(f"X{random.randrange(10**6)}", "/items/0").status_code, {405}),
        ("random path", lambda h, u: h.get(f"/nowhere/{random.randrange(10**9)}").status_code, {404}),
        ("lax id", lambda h, u: h.get("/items/1_0").status_code, {422}),
        ("JSON true id", lambda h, u: h.post("/search/json", json={"item_id": True, "text": "x"}).status_code, {422}),
        ("EPS as PNG", lambda h, u: h.post("/search", files={"image": ("x.png", eps, "image/png")},
                                          data={"text": "add a dog"}).status_code, {415}),
        ("bomb header", lambda h, u: h.post("/search", files={"image": ("b.png", bomb, "image/png")},
                                           data={"text": "add a dog"}).status_code, {413}),
        ("no API key", lambda h, u: h.get("/items/0", headers={"X-API-Key": ""}).status_code, {401}),
        ("1 GB body", lambda h, u: raw_request(u, b"POST /search HTTP/1.1\r\nHost: 127.0.0.1\r\nX-API-Key: " + KEY.encode()
                                              + b"\r\nContent-Type: multipart/form-data; boundary=x\r\n"
                                              + b"Content-Length: 1000000000\r\n\r\n"), {413}),
        ("broken JSON", lambda h, u: h.post("/search/json", content=b'{"item_id": 1,', headers={"Content-Type": "application/json"}).status_code, {422}),
        ("traversal", lambda h, u: h.get("/items/..%2F..%2Fetc%2Fpasswd/image").status_code, {404, 422}),
    ]


# --- the run ------------------------------------------------------------------------------------------------------
class Tally:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.latency: dict[str, list[float]] = {"search": [], "thumbnail": [], "hostile": []}
        self.statuses: dict[str, dict[int, int]] = {"search": {}, "thumbnail": {}, "hostile": {}}
        self.unexpected: list[str] = []
        self.errors: list[str] = []  # transport errors (connection refused / reset)

    def record(self, kind: str, status: int, seconds: float, expected) -> None:
        with self.lock:
            self.latency[kind].append(seconds)
            self.statuses[kind][status] = self.statuses[kind].get(status, 0) + 1
            if status not in expected and len(self.unexpected) < 50:
                self.unexpected.append(f"{kind} {status}")


def client_loop(url: str, stop: threading.Event, tally: Tally, seed: int, items: list[int], hostile) -> None:
    import httpx

    rng = random.Random(seed)
    with httpx.Client(base_url=url, timeout=120, headers={"X-API-Key": KEY}) as http:
        while not stop.is_set():
            roll = rng.random()
            n = max(items[0], 1)
            start = time.perf_counter()
            try:
                if roll < 0.5:
                    strategy, item = rng.choice(STRATEGIES), rng.randrange(n)
                    text = rng.choice(TEXTS)
                    if rng.random() < 0.5:
                        body = {"strategy": strategy, "k": 10, **({"text": text} if strategy != "image" else {}),
                                **({"item_id": item} if strategy != "text" else {})}
                        status = http.post("/search/json", json=body).status_code
                    else:
                        form = {"strategy": strategy, "k": "10", **({"text": text} if strategy != "image" else {}),
                                **({"item_id": str(item)} if strategy != "text" else {})}
                        status = http.post("/search", data=form).status_code
                    tally.record("search", status, time.perf_counter() - start, {200, 404})
                elif roll < 0.75:
                    status = http.get(f"/items/{rng.randrange(n)}/thumbnail", params={"size": rng.choice(THUMB_SIZES)}).status_code
                    tally.record("thumbnail", status, time.perf_counter() - start, {200, 404})
                else:
                    _name, call, expected = rng.choice(hostile)
                    status = call(http, url)
                    tally.record("hostile", status, time.perf_counter() - start, expected)
            except (httpx.HTTPError, OSError) as exc:
                with tally.lock:
                    tally.errors.append(f"{type(exc).__name__}: {exc}"[:200])


def health_loop(url: str, stop: threading.Event, items: list[int], down: list[int]) -> None:
    import httpx

    with httpx.Client(base_url=url, timeout=60) as http:
        while not stop.wait(0.5):
            try:
                r = http.get("/health")
                if r.status_code == 200:
                    items[0] = r.json()["items"]
                else:
                    down[0] += 1
            except httpx.HTTPError:
                down[0] += 1


def slowloris_loop(url: str, stop: threading.Event, counts: dict, connections: int = 8, limit_s: float = 60.0) -> None:
    """Keep ``connections`` sockets trickling a header (a byte a second); count those the server closes."""
    host, port = url.removeprefix("http://").split(":")
    while not stop.is_set():
        socks = []
        for _ in range(connections):
            s = socket.create_connection((host, int(port)), timeout=5)
            s.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            s.settimeout(0.05)
            socks.append(s)
        opened = time.monotonic()
        alive = list(socks)
        while alive and not stop.is_set() and time.monotonic() - opened < limit_s:
            for s in list(alive):
                try:
                    s.sendall(b"X")
                    if s.recv(1) == b"":
                        raise ConnectionResetError()
                except socket.timeout:
                    continue
                except OSError:
                    alive.remove(s)
                    counts["closed"] += 1
            stop.wait(1.0)
        counts["opened"] += len(socks)
        counts["held_past_limit"] += len(alive) if time.monotonic() - opened >= limit_s else 0
        for s in socks:
            s.close()


def mutator_loop(files: Files, store: Path, backbone: str, env: dict, stop: threading.Event, kills: int,
                 log: dict) -> None:
    rng = random.Random(7)
    run = 0
    kill_runs = {2, 4} if kills >= 2 else ({2} if kills == 1 else set())
    extra = sorted(kill_runs)[kills:] if kills > 2 else []
    kill_runs |= {6 + 2 * i for i in range(len(extra))}
    while not stop.is_set() or log["killed"] + log["missed_kills"] < kills:  # the planned kills happen, even late
        run += 1
        kill = run in kill_runs
        files.add(40 if kill else rng.randrange(2, 6))  # a kill needs a run long enough to land mid-way
        files.change(rng.randrange(1, 4))
        files.remove(rng.randrange(1, 4))
        before = committed_rows(store)
        proc = subprocess.Popen(index_command(files.folder, store, backbone), env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        if kill:
            deadline = time.monotonic() + 120  # bounded: kill once a batch has committed (or at the deadline)
            while proc.poll() is None and time.monotonic() < deadline and committed_rows(store) in (before, -1):
                time.sleep(0.02)
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                log["killed"] += 1
            else:
                log["missed_kills"] += 1  # it finished before its first commit was seen
            proc.wait()
        else:
            _, err = proc.communicate()
            if proc.returncode != 0:
                log["failed"].append(err[-500:])
        log["runs"] += 1
        if not stop.is_set():
            stop.wait(rng.uniform(0.5, 2.0))


def store_contents(store_dir: Path) -> dict[str, tuple[str, np.ndarray]]:
    import cir

    with cir.open_store(store_dir) as store:
        vectors = dict(zip(store.ids().tolist(), np.array(store.vectors())))  # by stable id
        return {item.path: (item.sha256, vectors[item.id]) for item in store.items()}


def compare_stores(a: Path, b: Path) -> tuple[bool, str]:
    left, right = store_contents(a), store_contents(b)
    if set(left) != set(right):
        return False, f"paths differ: {len(set(left) ^ set(right))} of {len(set(left) | set(right))}"
    wrong_hash = [p for p in left if left[p][0] != right[p][0]]
    if wrong_hash:
        return False, f"{len(wrong_hash)} content hashes differ"
    worst = max((float(np.abs(left[p][1] - right[p][1]).max()) for p in left), default=0.0)
    if worst > 1e-4:
        return False, f"vectors differ (max abs {worst:.2e})"
    return True, f"{len(left)} items: same paths, hashes and vectors (max abs difference {worst:.1e})"


def run(args) -> dict:
    import httpx

    rng_seed = 12
    with tempfile.TemporaryDirectory(prefix="cir-soak-") as tmp:
        tmp = Path(tmp)
        env = cir_env(tmp / "cache")
        files = Files(tmp / "images", rng_seed)
        files.add(args.images)
        store = tmp / "store"
        subprocess.run(index_command(files.folder, store, args.backbone), env=env, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        server = start_server(store, port, {**env, "CIR_API_KEY": KEY})
        tally, stop = Tally(), threading.Event()
        items, down = [committed_rows(store)], [0]
        slow = {"opened": 0, "closed": 0, "held_past_limit": 0}
        index_log = {"runs": 0, "killed": 0, "missed_kills": 0, "failed": []}
        rss: list[tuple[float, int]] = []
        hostile = hostile_requests(eps_bytes(), bomb_png())
        threads = [threading.Thread(target=client_loop, args=(url, stop, tally, 100 + i, items, hostile), daemon=True)
                   for i in range(args.clients)]
        threads.append(threading.Thread(target=health_loop, args=(url, stop, items, down), daemon=True))
        threads.append(threading.Thread(target=slowloris_loop, args=(url, stop, slow), daemon=True))
        mutator = threading.Thread(target=mutator_loop, args=(files, store, args.backbone, env, stop, args.kills, index_log),
                                   daemon=True)
        load_start = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
        started = time.monotonic()
        try:
            for t in threads:
                t.start()
            mutator.start()
            deadline = started + args.minutes * 60
            while time.monotonic() < deadline:
                rss.append((time.monotonic() - started, rss_bytes(server.pid)))
                time.sleep(min(1.0, max(deadline - time.monotonic(), 0)))
                if server.poll() is not None:
                    raise RuntimeError(f"cir serve died: {server.stderr.read()[-2000:]}")
            stop.set()
            mutator.join(timeout=300)
            for t in threads:
                t.join(timeout=120)
            elapsed = time.monotonic() - started
            load_end = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
            final = subprocess.run(index_command(files.folder, store, args.backbone), env=env,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            metrics_bytes = len(httpx.get(f"{url}/metrics", headers={"X-API-Key": KEY}, timeout=60).content)
        finally:
            stop.set()
            server.terminate()
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
        clean = tmp / "clean"
        subprocess.run(index_command(files.folder, clean, args.backbone), env=env, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        equal, detail = compare_stores(store, clean) if final.returncode == 0 else (False, f"final index failed: {final.stderr[-500:]}")
    served = sum(len(v) for v in tally.latency.values())
    fives = sum(count for statuses in tally.statuses.values() for status, count in statuses.items() if status >= 500)
    return {
        "minutes": args.minutes, "elapsed_s": elapsed, "clients": args.clients, "backbone": args.backbone,
        "images": args.images, "served": served, "rps": served / elapsed, "fives": fives,
        "statuses": tally.statuses, "unexpected": tally.unexpected, "transport_errors": tally.errors,
        "latency": {k: percentiles(v) for k, v in tally.latency.items() if v}, "all_latency": percentiles(sum(tally.latency.values(), [])),
        "rss": rss, "slow": slow, "index": index_log, "health_down": down[0], "metrics_bytes": metrics_bytes,
        "equal": equal, "detail": detail, "load": (load_start, load_end), "final_items": items[0],
    }


def rss_profile(rss: list[tuple[float, int]], parts: int = 10) -> list[float]:
    """Median RSS (MiB) in each tenth of the run."""
    if not rss:
        return []
    end = rss[-1][0] or 1.0
    out = []
    for i in range(parts):
        chunk = [b for t, b in rss if i * end / parts <= t < (i + 1) * end / parts or (i == parts - 1 and t == end)]
        if chunk:
            out.append(float(np.median(chunk)) / 2**20)
    return out


def markdown(r: dict) -> str:
    profile = rss_profile(r["rss"])
    statuses = lambda kind: ", ".join(f"{s}: {n}" for s, n in sorted(r["statuses"][kind].items()))  # noqa: E731
    lines = [
        "## Soak: mixed and hostile load on `cir serve` while `cir index` rewrites the store (and is killed)",
        "",
        f"Machine: {machine_description()}. Load average {r['load'][0]:.2f} at the start of the soak, "
        f"{r['load'][1]:.2f} at its end (the machine is shared with other work).",
        "",
        f"{r['minutes']:g} minutes ({r['elapsed_s']:.0f} s) of {r['clients']} client threads over loopback against `cir serve` "
        f"(backbone `{r['backbone']}`, API key on): half searches (form and JSON; image / text / sum / arithmetic), "
        "a quarter thumbnails (64 / 128 / 256 px), a quarter hostile requests (foreign Host, unknown and random "
        "methods, random paths, lax ids, `item_id: true`, an EPS as `image/png`, a bomb PNG header, no key, a 1 GB "
        "Content-Length, broken JSON, traversal), plus a slow-loris thread trickling request headers. Meanwhile "
        f"`cir index` ran {r['index']['runs']} times on a folder of {r['images']}+ images that changed before each run "
        f"(adds, rewrites, removals), {r['index']['killed']} of the runs SIGKILLed after their first commit.",
        "",
        "| what | value |",
        "|---|---|",
        f"| requests answered | {r['served']} ({r['rps']:.1f}/s) |",
        f"| 5xx | **{r['fives']}** |",
        f"| statuses not the expected ones | {len(r['unexpected'])}{': ' + ', '.join(r['unexpected'][:10]) if r['unexpected'] else ''} |",
        f"| transport errors (connection refused / reset) | {len(r['transport_errors'])} |",
        f"| searches: statuses | {statuses('search')} |",
        f"| thumbnails: statuses | {statuses('thumbnail')} |",
        f"| hostile: statuses | {statuses('hostile')} |",
    ]
    for kind, lat in r["latency"].items():
        lines.append(f"| {kind}: p50 / p99 ms | {lat['p50']:.1f} / {lat['p99']:.1f} |")
    lines += [
        f"| all requests: p50 / p99 ms | {r['all_latency']['p50']:.1f} / {r['all_latency']['p99']:.1f} |",
        f"| server RSS, MiB, median per tenth of the run | {', '.join(f'{m:.0f}' for m in profile)} |",
        f"| server RSS: last tenth / first tenth | {profile[-1] / profile[0]:.2f} |" if len(profile) > 1 else "| server RSS | - |",
        f"| slow-header connections closed by the server / opened | {r['slow']['closed']} / {r['slow']['opened']} "
        f"(held past 60 s: {r['slow']['held_past_limit']}) |",
        f"| `/health` not ok (samples) | {r['health_down']} |",
        f"| `/metrics` size at the end | {r['metrics_bytes'] / 1024:.0f} KiB |",
        f"| index runs / SIGKILLed / failed | {r['index']['runs']} / {r['index']['killed']} / {len(r['index']['failed'])} |",
        f"| store after a last `cir index` vs a clean run | **{'equal' if r['equal'] else 'DIFFERENT'}**: {r['detail']} |",
        "",
        f"Command: `python benchmarks/bench_soak.py --minutes {r['minutes']:g}{' --write' if r['minutes'] == 10 else ''}`",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="length of the soak")
    parser.add_argument("--clients", type=int, default=16, help="client threads")
    parser.add_argument("--images", type=int, default=120, help="images in the folder at the start")
    parser.add_argument("--kills", type=int, default=2, help="index runs to SIGKILL")
    parser.add_argument("--backbone", default="cir:demo", help="backbone spec of the store")
    parser.add_argument("--write", action="store_true", help="replace the section in benchmarks/RESULTS.md")
    parser.add_argument("--json", type=Path, help="also write the raw figures here")
    args = parser.parse_args(argv)
    result = run(args)
    text = markdown(result)
    print(text)
    if args.json:
        args.json.write_text(json.dumps({k: v for k, v in result.items() if k != "rss"} | {"rss_mib": rss_profile(result["rss"])}, indent=1))
    if args.write:
        write_section("bench_soak", text)
    return 0 if result["fives"] == 0 and result["equal"] and not result["unexpected"] else 1


if __name__ == "__main__":
    sys.exit(main())
