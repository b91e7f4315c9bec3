"""Profile base-only traffic on the platform: py-spy on the engine core and the gateway replica during a closed
loop with no pauses at c=8."""
import asyncio, subprocess, sys, tempfile, threading, time
from pathlib import Path
import psutil
sys.path.insert(0, "/work/main")
from bench.loadgen import run_load
from bench.servers import MODEL_ID, platform

work = Path(tempfile.mkdtemp(prefix="prof-"))
out = Path(sys.argv[1])
out.mkdir(parents=True, exist_ok=True)

def find(fragment):
    for p in psutil.process_iter(["pid", "cmdline"]):
        if fragment in " ".join(p.info["cmdline"] or []):
            return p.info["pid"]

with platform(8400, work) as server:
    asyncio.run(run_load(server.url, MODEL_ID, concurrency=8, requests=16, pause_s=0))  # warm
    targets = {"engine-core": find("VLLM::EngineCore"), "engine-replica": find("ServeReplica:llm-platform:engine"),
               "gateway": find("ServeReplica:llm-platform:gateway")}
    print(targets, flush=True)
    spies = [subprocess.Popen(["/work/main/.venv/bin/py-spy", "record", "-p", str(pid), "-d", "40", "-r", "50", "-f", "raw",
                               "-o", str(out / f"{name}.txt"), "--nonblocking"], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
             for name, pid in targets.items() if pid]
    time.sleep(1)
    result = asyncio.run(run_load(server.url, MODEL_ID, concurrency=8, requests=96, pause_s=0))
    print(f"c=8 no pauses: {result.output_tokens_per_s:.1f} tok/s TTFT p50 {result.ttft_p50_ms:.0f} ms ITL p50 {result.itl_p50_ms:.1f} ms", flush=True)
    for spy in spies:
        spy.wait()
